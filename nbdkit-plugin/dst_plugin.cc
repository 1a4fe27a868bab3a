// nbdkit-dst-plugin: presents a dst gateway volume as an NBD export.
//
//   nbdkit dst gateway=ADDR[,ADDR...] volume=NAME  through gateways (HA:
//                                            the volume's leader followed)
//   nbdkit dst config=FILE volume=NAME       embedded: the gateway engine
//                                            runs in this process
//
// A thin client: each NBD connection negotiates with the gateway (Open) and
// carries its requests on its own Io stream; nbdkit's worker threads block
// on their own transaction while many are in flight (PARALLEL model). The
// gRPC channel is made in .after_fork, never before nbdkit daemonises.
#define NBDKIT_API_VERSION 2
#include <malloc.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cstring>
#include <future>
#include <memory>
#include <random>
#include <string>
#include <utility>

#include <nbdkit-plugin.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

#include "nbdkit-plugin/embedded_volume.h"
#include "nbdkit-plugin/errno_map.h"
#include "nbdkit-plugin/gateway_client.h"
#include "services/common/base/limits.h"
#include "services/common/base/process_tuning.h"
#include "services/common/protocol/checksum.h"
#include "services/common/security/tls.h"
#include "services/common/transport/transaction_stream.h"

#define THREAD_MODEL NBDKIT_THREAD_MODEL_PARALLEL

namespace {

std::string g_gateway;
std::string g_config;  // config=: the embedded mode
std::string g_volume;
// Where the volume is: a gateway (gateway=) or this process (config=).
// Made in .after_fork, never before nbdkit daemonises, and never released:
// dropping gRPC's last object at unload runs its global teardown, which can
// hold nbdkit's exit for 10 s on an idle timer (gRPC 1.51). A heap object,
// so no static destructor releases it either.
dst::VolumeBackend* g_backend = nullptr;
// How long a request waits for the gateway to come back (timeout=).
int g_timeout_seconds = 60;
// This nbdkit's write lease on the volume (shared by its connections) and
// its name in the gateway's logs; made in .after_fork.
std::string g_lease_token;
std::string g_client_id;
// TLS to the gateway: tls=, tls-cert=, tls-key=, tls-ca=, tls-server-name=.
dst::TlsOptions g_tls_options;
std::string g_tls_mode;
std::shared_ptr<dst::Tls>* g_tls = nullptr;  // made in .after_fork, leaked

int DstConfig(const char* key, const char* value) {
  if (std::strcmp(key, "gateway") == 0) {
    g_gateway = value;
  } else if (std::strcmp(key, "config") == 0) {
    g_config = value;
  } else if (std::strcmp(key, "volume") == 0) {
    g_volume = value;
  } else if (std::strcmp(key, "timeout") == 0) {
    if (nbdkit_parse_int("timeout", value, &g_timeout_seconds) == -1) return -1;
    if (g_timeout_seconds < 1 || g_timeout_seconds > 86400) {
      nbdkit_error("timeout must be 1..86400 seconds, not %d",
                   g_timeout_seconds);
      errno = EINVAL;
      return -1;
    }
  } else if (std::strcmp(key, "tls") == 0) {
    g_tls_mode = value;
  } else if (std::strcmp(key, "tls-cert") == 0) {
    g_tls_options.cert = value;
  } else if (std::strcmp(key, "tls-key") == 0) {
    g_tls_options.key = value;
  } else if (std::strcmp(key, "tls-ca") == 0) {
    g_tls_options.ca = value;
  } else if (std::strcmp(key, "tls-server-name") == 0) {
    g_tls_options.server_name = value;
  } else {
    nbdkit_error(
        "unknown parameter '%s' (known: gateway, config, volume, timeout, "
        "tls, tls-cert, tls-key, tls-ca, tls-server-name)",
        key);
    errno = EINVAL;
    return -1;
  }
  return 0;
}

int DstConfigComplete() {
  absl::StatusOr<dst::TlsMode> mode =
      dst::TlsModeOrDefault(g_tls_mode, g_tls_options, /*server=*/false);
  if (!mode.ok()) {
    nbdkit_error("tls=%s: %s", g_tls_mode.c_str(),
                 std::string(mode.status().message()).c_str());
    errno = EINVAL;
    return -1;
  }
  g_tls_options.mode = *mode;
  if (g_gateway.empty() == g_config.empty() || g_volume.empty()) {
    nbdkit_error(
        "volume=NAME and one of gateway=ADDR or config=FILE (embedded) are "
        "required");
    errno = EINVAL;
    return -1;
  }
  if (!g_config.empty() &&
      (!g_tls_mode.empty() || !g_tls_options.cert.empty() ||
       !g_tls_options.ca.empty())) {
    nbdkit_error(
        "tls parameters are for gateway=; with config=, TLS to the exporters "
        "is the configuration's tls section");
    errno = EINVAL;
    return -1;
  }
  return 0;
}

// The staged copies of the TLS files go; the backend makes what it keeps
// durable.
void DstUnload() {
  if (g_tls != nullptr) (*g_tls)->RemoveStagedFiles();
  if (g_backend != nullptr) g_backend->Shutdown();
}

int DstAfterFork() {
  // Large reads arrive as gRPC messages of up to 4 MiB, kept on the heap as
  // in the services. This process is nbdkit serving dst alone.
  dst::TuneProcessForDataPath();
  // nbdkit runs a thread per request in flight (64 with --threads=64); with
  // an arena each, every one would keep its own freed 1 MiB buffers (peak
  // RSS 224-330 MiB against 69 for nbdkit's file plugin). A few arenas
  // share them.
  mallopt(M_ARENA_MAX, 4);
  // Validates and stages the TLS files (a temporary directory: after the
  // fork, so that the daemon owns it).
  absl::StatusOr<std::shared_ptr<dst::Tls>> tls =
      dst::Tls::Load(g_tls_options, /*server=*/false);
  if (!tls.ok()) {
    nbdkit_error("tls: %s", std::string(tls.status().message()).c_str());
    errno = EINVAL;
    return -1;
  }
  g_tls = new std::shared_ptr<dst::Tls>(*std::move(tls));
  std::random_device random;
  g_lease_token = absl::StrCat(absl::Hex(random()), absl::Hex(random()),
                               absl::Hex(random()), absl::Hex(random()));
  char host[256] = "?";
  gethostname(host, sizeof(host) - 1);
  g_client_id = absl::StrCat("nbdkit pid ", getpid(), " on ", host);
  absl::StatusOr<std::unique_ptr<dst::VolumeBackend>> backend;
  if (!g_config.empty()) {
    backend = dst::EmbeddedVolume::Start(g_config, g_volume, g_client_id);
  } else {
    backend = dst::GatewayBackend::Connect(g_gateway, g_volume, *g_tls);
  }
  if (!backend.ok()) {
    nbdkit_error("%s=%s: %s", g_config.empty() ? "gateway" : "config",
                 g_config.empty() ? g_gateway.c_str() : g_config.c_str(),
                 std::string(backend.status().message()).c_str());
    errno = EINVAL;
    return -1;
  }
  g_backend = backend->release();
  return 0;
}

void* DstOpen(int readonly) {
  dst::ClientOpenOptions options;
  options.read_only = readonly != 0;
  options.client_id = g_client_id;
  options.lease_token = g_lease_token;
  options.timeout = absl::Seconds(g_timeout_seconds);
  absl::StatusOr<std::unique_ptr<dst::VolumeClient>> client =
      g_backend->Open(options);
  if (!client.ok()) {
    nbdkit_error("cannot open volume '%s' %s: %s", g_volume.c_str(),
                 g_backend->Where().c_str(),
                 client.status().ToString().c_str());
    errno =
        client.status().code() == absl::StatusCode::kNotFound ? ENOENT : EIO;
    return nullptr;
  }
  return client->release();
}

void DstClose(void* handle) { delete static_cast<dst::VolumeClient*>(handle); }

dst::VolumeClient* Client(void* handle) {
  return static_cast<dst::VolumeClient*>(handle);
}

int64_t DstGetSize(void* handle) {
  return static_cast<int64_t>(Client(handle)->geometry().size());
}

int DstBlockSize(void* handle, uint32_t* minimum, uint32_t* preferred,
                 uint32_t* maximum) {
  const dst::v1::Geometry& g = Client(handle)->geometry();
  *minimum = g.logical_block_size();
  *preferred = g.physical_block_size();
  *maximum = g.max_transfer();
  return 0;
}

bool Has(void* handle, dst::v1::Feature feature) {
  return (Client(handle)->geometry().features() & feature) != 0;
}

int DstCanWrite(void* handle) {
  return !Client(handle)->geometry().read_only();
}
int DstCanFlush(void* handle) { return Has(handle, dst::v1::FEATURE_FLUSH); }
int DstCanTrim(void* handle) { return Has(handle, dst::v1::FEATURE_TRIM); }
int DstCanZero(void* handle) {
  return Has(handle, dst::v1::FEATURE_WRITE_ZEROES);
}
int DstCanFua(void* handle) {
  return Has(handle, dst::v1::FEATURE_FUA) ? NBDKIT_FUA_NATIVE
                                           : NBDKIT_FUA_NONE;
}
// A flush reaches fdatasync on every replica, covering writes completed on
// any connection: the guarantee multi-conn asks for.
int DstCanMultiConn(void* handle) { return DstCanFlush(handle); }
int DstCanFastZero(void* handle) {
  return Has(handle, dst::v1::FEATURE_FAST_ZERO);
}
int DstCanExtents(void* handle) {
  return Has(handle, dst::v1::FEATURE_BLOCK_STATUS);
}

// Attempts of a request whose data arrives damaged (DATA_LOSS from the
// gateway, or a read whose checksum does not match here).
constexpr int kIntegrityAttempts = 3;

// Runs one transaction with its data (a write's); returns 0 or -1 with
// nbdkit's error set. A read's data is copied into `read_into`
// (request.length() bytes): the one copy of a read here. An attempt
// repeated after damaged data sends the same payload again.
int Run(void* handle, const dst::v1::Request& request,
        const dst::Payload& data = dst::Payload(), void* read_into = nullptr,
        dst::v1::Reply* reply_out = nullptr) {
  const dst::v1::Op op = request.op();
  const uint64_t offset = request.offset();
  const uint32_t length = request.length();
  dst::v1::Reply reply;
  dst::Payload reply_data;
  for (int attempt = 1; attempt <= kIntegrityAttempts; ++attempt) {
    reply = Client(handle)->Call(request, data, &reply_data);
    if (reply.status() == 0 && op == dst::v1::OP_READ &&
        request.checksum_algorithm() != dst::v1::CHECKSUM_NONE) {
      absl::Status intact =
          dst::VerifyChecksum(request.checksum_algorithm(), reply_data,
                              reply.checksum(), "the data read");
      if (!intact.ok()) reply = dst::ErrorReply(request.id(), intact);
    }
    if (reply.status() != static_cast<int>(grpc::StatusCode::DATA_LOSS)) break;
    nbdkit_debug("%s at %" PRIu64 ": %s (attempt %d of %d)",
                 dst::v1::Op_Name(op).c_str(), offset, reply.message().c_str(),
                 attempt, kIntegrityAttempts);
  }
  if (reply.status() != 0) {
    int error = dst::StatusToErrno(reply.status(), op);
    nbdkit_error("%s at %" PRIu64 "+%" PRIu32 ": %s",
                 dst::v1::Op_Name(op).c_str(), offset, length,
                 reply.message().c_str());
    nbdkit_set_error(error);
    return -1;
  }
  if (read_into != nullptr) {
    if (reply_data.size() != length) {
      nbdkit_error("read at %" PRIu64
                   ": gateway returned %zu bytes, not %" PRIu32,
                   offset, reply_data.size(), length);
      nbdkit_set_error(EIO);
      return -1;
    }
    reply_data.CopyTo(static_cast<char*>(read_into));
  }
  if (reply_out != nullptr) *reply_out = std::move(reply);
  return 0;
}

dst::v1::Request MakeRequest(dst::v1::Op op, uint32_t count, uint64_t offset,
                             uint32_t flags) {
  dst::v1::Request request;
  request.set_op(op);
  request.set_offset(offset);
  request.set_length(count);
  if (flags & NBDKIT_FLAG_FUA) request.set_flags(dst::v1::REQUEST_FLAG_FUA);
  return request;
}

// End-to-end integrity: crc32c on every read and write when the volume
// offers it, checked here and at each hop.
bool Crc32c(void* handle) {
  return Has(handle, dst::v1::FEATURE_CHECKSUM_CRC32C);
}

int DstPread(void* handle, void* buf, uint32_t count, uint64_t offset,
             uint32_t flags) {
  dst::v1::Request request = MakeRequest(dst::v1::OP_READ, count, offset, 0);
  if (Crc32c(handle)) request.set_checksum_algorithm(dst::v1::CHECKSUM_CRC32C);
  return Run(handle, request, dst::Payload(), buf);
}

// nbdkit's buffer of a write, lent to its transaction instead of copied:
// nbdkit reuses the buffer once pwrite returns, so the destructor waits
// until no copy of the payload is left (the stream and gRPC let go of it
// once it is sent, normally before the reply comes).
class LentBuffer {
 public:
  LentBuffer(const void* data, size_t size)
      : returned_future_(returned_.get_future()),
        payload_(dst::Payload::Borrow(data, size,
                                      [this] { returned_.set_value(); })) {}
  ~LentBuffer() {
    payload_ = dst::Payload();
    returned_future_.wait();
  }
  LentBuffer(const LentBuffer&) = delete;
  LentBuffer& operator=(const LentBuffer&) = delete;

  const dst::Payload& payload() const { return payload_; }

 private:
  std::promise<void> returned_;
  std::future<void> returned_future_;
  dst::Payload payload_;  // last: its release sets returned_
};

int Write(void* handle, dst::v1::Request& request, const dst::Payload& data) {
  if (Crc32c(handle)) {
    request.set_checksum_algorithm(dst::v1::CHECKSUM_CRC32C);
    request.set_checksum(dst::ComputeChecksum(dst::v1::CHECKSUM_CRC32C, data));
  }
  return Run(handle, request, data);
}

int DstPwrite(void* handle, const void* buf, uint32_t count, uint64_t offset,
              uint32_t flags) {
  dst::v1::Request request =
      MakeRequest(dst::v1::OP_WRITE, count, offset, flags);
  // A large write lends nbdkit's buffer (a 1 MiB copy saved) where the
  // backend allows it. A small one is copied: it goes into a batch by copy
  // anyway, and a lent one would make its thread wait for the stream to
  // let go of it.
  if (count < dst::kSlicedPayloadBytes || !g_backend->LendsWriteBuffers()) {
    return Write(handle, request, dst::Payload::Copy(buf, count));
  }
  LentBuffer lent(buf, count);
  return Write(handle, request, lent.payload());
}

int DstFlush(void* handle, uint32_t flags) {
  return Run(handle, MakeRequest(dst::v1::OP_FLUSH, 0, 0, 0));
}

int DstTrim(void* handle, uint32_t count, uint64_t offset, uint32_t flags) {
  return Run(handle, MakeRequest(dst::v1::OP_TRIM, count, offset, flags));
}

int DstZero(void* handle, uint32_t count, uint64_t offset, uint32_t flags) {
  dst::v1::Request request =
      MakeRequest(dst::v1::OP_WRITE_ZEROES, count, offset, flags);
  if (!(flags & NBDKIT_FLAG_MAY_TRIM)) {
    request.set_flags(request.flags() | dst::v1::REQUEST_FLAG_NO_HOLE);
  }
  if (flags & NBDKIT_FLAG_FAST_ZERO) {
    // Zeroed cheaply on every replica, or ENOTSUP with nothing written.
    request.set_flags(request.flags() | dst::v1::REQUEST_FLAG_FAST_ZERO);
  }
  return Run(handle, request);
}

// Block status (base:allocation). The range asked of the volume is
// widened to whole logical blocks (nbdkit ignores extents before `offset`)
// and kept within one request's 32-bit length; the volume may answer for
// less of it, which NBD allows. NBDKIT_FLAG_REQ_ONE is not passed on: the
// whole answer costs the same query.
int DstExtents(void* handle, uint32_t count, uint64_t offset, uint32_t flags,
               struct nbdkit_extents* extents) {
  const dst::v1::Geometry& g = Client(handle)->geometry();
  const uint64_t block = std::max<uint64_t>(g.logical_block_size(), 1);
  const uint64_t start = offset - offset % block;
  uint64_t end = std::min<uint64_t>(offset + count, g.size());
  end = std::min(end + (block - end % block) % block, g.size());
  const uint64_t longest = UINT32_MAX - UINT32_MAX % block;
  dst::v1::Request request = MakeRequest(
      dst::v1::OP_BLOCK_STATUS,
      static_cast<uint32_t>(std::min(end - start, longest)), start, 0);
  dst::v1::Reply reply;
  if (Run(handle, request, dst::Payload(), nullptr, &reply) != 0) return -1;
  uint64_t at = start;
  for (const dst::v1::BlockExtent& e : reply.extents()) {
    uint32_t type = 0;
    if (e.flags() & dst::v1::EXTENT_HOLE) type |= NBDKIT_EXTENT_HOLE;
    if (e.flags() & dst::v1::EXTENT_ZERO) type |= NBDKIT_EXTENT_ZERO;
    if (nbdkit_add_extent(extents, at, e.length(), type) == -1) return -1;
    at += e.length();
  }
  if (at <= offset) {
    nbdkit_error("block status at %" PRIu64 ": the answer ends at %" PRIu64,
                 offset, at);
    nbdkit_set_error(EIO);
    return -1;
  }
  return 0;
}

nbdkit_plugin MakePlugin() {
  nbdkit_plugin plugin{};
  plugin.name = "dst";
  plugin.longname = "dst network block storage gateway client";
  plugin.version = DST_VERSION;
  plugin.description = "Serves a volume of a dst gateway.";
  plugin.config = DstConfig;
  plugin.config_complete = DstConfigComplete;
  plugin.config_help =
      "gateway=ADDR[,ADDR...]  gateway address(es): host:port, [v6]:port or\n"
      "               unix:/path; with several (HA mode), the one leading the\n"
      "               volume is found and followed\n"
      "config=FILE    embedded mode, instead of gateway=: run the gateway "
      "engine\n"
      "               here, with this gateway configuration file\n"
      "volume=NAME    (required) the volume to serve\n"
      "timeout=SECS   how long a request waits for a restarting gateway, or "
      "an\n"
      "               embedded volume's open for its replicas (default 60)\n"
      "tls=MODE       off, on (TLS on TCP) or require (default: on with "
      "tls-cert/tls-ca)\n"
      "tls-cert=FILE  client certificate (mutual TLS), with tls-key=FILE\n"
      "tls-ca=FILE    CA that signed the gateway's certificate\n"
      "tls-server-name=NAME  name in the gateway's certificate (default: the "
      "host; localhost for unix:)";
  plugin.after_fork = DstAfterFork;
  plugin.unload = DstUnload;
  plugin.open = DstOpen;
  plugin.close = DstClose;
  plugin.get_size = DstGetSize;
  plugin.block_size = DstBlockSize;
  plugin.can_write = DstCanWrite;
  plugin.can_flush = DstCanFlush;
  plugin.can_trim = DstCanTrim;
  plugin.can_zero = DstCanZero;
  plugin.can_fua = DstCanFua;
  plugin.can_multi_conn = DstCanMultiConn;
  plugin.can_extents = DstCanExtents;
  plugin.can_fast_zero = DstCanFastZero;
  plugin.pread = DstPread;
  plugin.pwrite = DstPwrite;
  plugin.flush = DstFlush;
  plugin.trim = DstTrim;
  plugin.zero = DstZero;
  plugin.extents = DstExtents;
  plugin.errno_is_preserved = 0;
  return plugin;
}

nbdkit_plugin g_plugin = MakePlugin();

}  // namespace

NBDKIT_REGISTER_PLUGIN(g_plugin)
