// dst-exporter: serves a file or block device over the Exporter service.
// Wiring only: flags -> storage -> service -> server -> wait -> drain.

#include <cstdio>
#include <cstdlib>
#include <optional>

#include <grpcpp/health_check_service_interface.h>
#include <sys/stat.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

#include "services/common/base/address.h"
#include "services/common/base/flags.h"
#include "services/common/base/log.h"
#include "services/common/base/process_tuning.h"
#include "services/common/base/signals.h"
#include "services/common/observability/metrics.h"
#include "services/common/protocol/request_validation.h"
#include "services/common/rpc/server.h"
#include "services/common/security/acl.h"
#include "services/common/security/reload.h"
#include "services/common/security/tls.h"
#include "services/exporter/exporter_service.h"
#include "services/exporter/metadata_store.h"
#include "services/exporter/storage.h"

namespace dst {
namespace {

int Fail(const std::string& message) {
  std::fprintf(stderr, "dst-exporter: %s\n", message.c_str());
  return 2;
}

int Main(int argc, char** argv) {
  Flags flags(
      "dst-exporter",
      "Serves byte ranges of a file or block device to dst gateways.",
      {
          {"listen", "ADDR", "host:port, [v6]:port or unix:/path (required)",
           true},
          {"backing", "PATH", "file or block device to serve (required)"},
          {"size", "BYTES",
           "create the file with this size if missing; "
           "if present it must be at least this large (a file grown by "
           "dstctl resize is served at its size; K/M/G/T suffixes)"},
          {"read-only", "", "refuse writes, trims and zeroes (default off)"},
          {"block-size", "BYTES",
           "logical block size, power of two (default 512)"},
          {"max-transfer", "BYTES", "largest read or write (default 4M)"},
          {"io-threads", "N",
           "threads doing disk I/O (default 4; 0: on the gRPC thread, no "
           "hand-off)"},
          {"inline-io", "on|off",
           "on storage in memory (tmpfs, ramfs), run reads, writes and "
           "flushes of up to 1 MiB on the gRPC thread, without the I/O "
           "pool (default on)"},
          {"max-in-flight", "N", "requests in flight per stream (default 64)"},
          {"max-in-flight-bytes", "BYTES",
           "payload bytes in flight per stream before it stops reading "
           "(default 256M)"},
          {"max-streams-per-client", "N",
           "streams one client (certificate identity, else address) may "
           "open (default 32; 0: no limit)"},
          {"id", "NAME",
           "replica identity reported to gateways (default: the backing path)"},
          {"tls", "MODE",
           "off, on (TLS on TCP, plaintext on Unix sockets) or require "
           "(default: on with --tls-cert, else off)"},
          {"tls-cert", "FILE", "PEM certificate (chain) of this exporter"},
          {"tls-key", "FILE", "PEM private key of --tls-cert"},
          {"tls-ca", "FILE",
           "PEM CA: clients must present a certificate it signed (mutual "
           "TLS)"},
          {"acl", "FILE",
           "who may read or write (YAML, see docs/security.md); default deny "
           "for "
           "anyone not listed. Without it every client may read and write"},
          {"state", "PATH",
           "file keeping the fencing epoch and generations (default "
           "BACKING.dst-state; required for a block device)"},
          {"drain-seconds", "N",
           "how long SIGTERM waits for in-flight work (default 30)"},
          {"metrics", "HOST:PORT",
           "serve Prometheus metrics at http://HOST:PORT/metrics (default "
           "off)"},
          {"log-level", "LEVEL",
           "debug, info, warning or error (default info)"},
          {"help", "", "print this help"},
      });
  if (std::optional<int> exit_code =
          flags.ParseCommandLine(argc, argv, /*positional=*/false)) {
    return *exit_code;
  }
  if (!flags.Has("listen")) return Fail("--listen=ADDR is required");
  if (!flags.Has("backing")) return Fail("--backing=PATH is required");

  FileStorageOptions storage_options;
  storage_options.path = flags.Get("backing");
  storage_options.read_only =
      flags.Has("read-only") && flags.Get("read-only") == "true";
  ExporterOptions options;
  options.read_only = storage_options.read_only;
  options.identity = flags.Get("id", storage_options.path);
  uint64_t value = 0;
  if (flags.Has("size")) {
    if (absl::Status s = ParseBytes("size", flags.Get("size"), &value);
        !s.ok()) {
      return Fail(std::string(s.message()));
    }
    if (value == 0) return Fail("--size must be positive");
    storage_options.size = value;
  }
  struct UintFlag {
    const char* name;
    uint64_t min, max;
    std::function<void(uint64_t)> set;
  };
  const UintFlag uint_flags[] = {
      {"block-size", 1, 65536,
       [&](uint64_t v) { options.block_size = static_cast<uint32_t>(v); }},
      {"max-transfer", 512, 64u << 20,
       [&](uint64_t v) { options.max_transfer = static_cast<uint32_t>(v); }},
      {"io-threads", 0, 256,
       [&](uint64_t v) { options.io_threads = static_cast<int>(v); }},
      {"max-in-flight", 1, 4096,
       [&](uint64_t v) { options.stream.max_in_flight = static_cast<int>(v); }},
      {"max-in-flight-bytes", 1u << 20, uint64_t{64} << 30,
       [&](uint64_t v) {
         options.stream.max_in_flight_bytes = static_cast<int64_t>(v);
       }},
      {"max-streams-per-client", 0, 65536,
       [&](uint64_t v) {
         options.max_streams_per_client = static_cast<int>(v);
       }},
      {"drain-seconds", 1, 3600, [](uint64_t) {}},
  };
  for (const UintFlag& f : uint_flags) {
    if (!flags.Has(f.name)) continue;
    if (absl::Status s = ParseBytes(f.name, flags.Get(f.name), &value);
        !s.ok() || value < f.min || value > f.max) {
      return Fail(absl::StrCat("--", f.name, "=", flags.Get(f.name),
                               ": expected a number in ", f.min, "..", f.max));
    }
    f.set(value);
  }
  if (flags.Has("inline-io")) {
    const std::string inline_io = flags.Get("inline-io");
    if (inline_io != "on" && inline_io != "off") {
      return Fail(
          absl::StrCat("--inline-io=", inline_io, ": expected on or off"));
    }
    options.inline_io = inline_io == "on";
  }
  // Checked before the backing file is touched: a refused start changes
  // nothing.
  for (const std::string& listen : flags.GetAll("listen")) {
    if (absl::StatusOr<Address> a = ParseAddress(listen); !a.ok()) {
      return Fail(
          absl::StrCat("--listen=", listen, ": ", a.status().message()));
    }
  }
  if ((options.block_size & (options.block_size - 1)) != 0) {
    return Fail(absl::StrCat("--block-size=", options.block_size,
                             ": must be a power of two"));
  }
  if (options.max_transfer % options.block_size != 0) {
    return Fail(absl::StrCat("--max-transfer=", options.max_transfer,
                             ": must be a multiple of the block size (",
                             options.block_size, ")"));
  }
  uint64_t drain_seconds = 30;
  if (flags.Has("drain-seconds")) {
    (void)absl::SimpleAtoi(flags.Get("drain-seconds"), &drain_seconds);
  }

  options.metrics = std::make_shared<prometheus::Registry>();
  std::unique_ptr<MetricsServer> metrics;
  if (flags.Has("metrics")) {
    auto started = MetricsServer::Start(flags.Get("metrics"), options.metrics);
    if (!started.ok()) return Fail(std::string(started.status().message()));
    metrics = std::move(*started);
  }

  TlsOptions tls_options;
  tls_options.cert = flags.Get("tls-cert");
  tls_options.key = flags.Get("tls-key");
  tls_options.ca = flags.Get("tls-ca");
  {
    absl::StatusOr<TlsMode> mode =
        TlsModeOrDefault(flags.Get("tls"), tls_options, /*server=*/true);
    if (!mode.ok()) {
      return Fail(absl::StrCat("--tls=", flags.Get("tls"), ": ",
                               mode.status().message()));
    }
    tls_options.mode = *mode;
  }
  absl::StatusOr<std::shared_ptr<Tls>> tls =
      Tls::Load(tls_options, /*server=*/true);
  if (!tls.ok()) return Fail(std::string(tls.status().message()));
  AclHolder acl(flags.Get("acl"));
  if (absl::Status s = acl.Reload(); !s.ok()) {
    return Fail(absl::StrCat("--acl: ", s.message()));
  }
  if (acl.enabled()) options.acl = &acl;

  std::string state_path = flags.Get("state");
  if (state_path.empty()) {
    struct stat st;
    if (::stat(storage_options.path.c_str(), &st) == 0 && S_ISBLK(st.st_mode)) {
      return Fail(
          "--state=PATH is required with a block device (the replica's epoch "
          "and generations must persist on a file system)");
    }
    state_path = storage_options.path + ".dst-state";
  }
  absl::StatusOr<std::unique_ptr<MetadataStore>> metadata =
      MetadataStore::Open(state_path);
  if (!metadata.ok()) {
    return Fail(absl::StrCat("--state=", state_path, ": ",
                             metadata.status().message()));
  }
  options.metadata = metadata->get();

  absl::StatusOr<std::unique_ptr<Storage>> storage =
      OpenFileStorage(storage_options);
  if (!storage.ok()) return Fail(storage.status().ToString());
  ExporterService service(storage->get(), options);
  if (absl::Status s = service.Init(); !s.ok()) {
    return Fail(
        absl::StrCat("--backing=", storage_options.path, ": ", s.message()));
  }

  ServerSpec spec;
  spec.listen = flags.GetAll("listen");
  spec.tls = *tls;
  (*tls)->CountRefusalsIn(*options.metrics, "dst_exporter");
  spec.services = {&service};
  spec.max_message_bytes = MaxMessageBytes(service.geometry());
  absl::StatusOr<RunningServer> server = StartServer(spec);
  if (!server.ok()) return Fail(server.status().ToString());
  DST_LOG(Info, "exporter: serving %s (%d bytes, %s) on %s%s",
          storage_options.path, service.geometry().size(),
          options.read_only ? "read-only" : "read-write",
          absl::StrJoin(server->bound, ", "),
          metrics ? absl::StrCat("; metrics on http://", flags.Get("metrics"),
                                 "/metrics")
                  : "");

  if (!acl.enabled()) {
    DST_LOG(Warning,
            "exporter: no --acl: every client that reaches it may read and "
            "write");
  }
  int signal_number =
      WaitForTerminationSignal(ReloadOnHangup(*tls, &acl, "exporter"),
                               ReloadableFiles(tls->get(), &acl));
  DST_LOG(Info, "exporter: signal %d, draining in-flight work", signal_number);
  server->health->SetServingStatus(false);
  bool drained = service.Drain(absl::Now() + absl::Seconds(drain_seconds));
  server->Shutdown(absl::Now() + absl::Seconds(1));
  if (absl::Status s = (*storage)->Flush(); !s.ok() && !options.read_only) {
    DST_LOG(Error, "exporter: final flush failed: %s", s.ToString());
    (*tls)->RemoveStagedFiles();
    ExitNow(1);
  }
  DST_LOG(Info, "exporter: stopped%s", drained ? "" : " (drain timed out)");
  (*tls)->RemoveStagedFiles();
  ExitNow(0);
}

}  // namespace
}  // namespace dst

int main(int argc, char** argv) {
  dst::BlockTerminationSignals();
  dst::TuneProcessForDataPath();
  return dst::Main(argc, argv);
}
