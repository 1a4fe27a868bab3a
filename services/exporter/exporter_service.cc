// The Exporter gRPC service: see exporter_service.h.
#include "services/exporter/exporter_service.h"

#include <algorithm>
#include <cctype>
#include <random>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

#include "services/common/base/atomic_file.h"
#include "services/common/base/log.h"
#include "services/common/base/status.h"
#include "services/common/protocol/checksum.h"
#include "services/common/protocol/request_validation.h"
#include "services/common/transport/transaction_stream.h"

namespace dst {

namespace {
// What identifies the page cache the exporter's writes wait in before a
// flush: the kernel's boot id, which changes when the host restarts (and
// not when only the exporter does). Random when it cannot be read: every
// start then counts as one that may have lost unflushed writes.
uint64_t NewInstance() {
  absl::StatusOr<std::string> boot =
      ReadWholeFile("/proc/sys/kernel/random/boot_id");
  uint64_t id = 0;
  if (boot.ok()) {
    for (char c : *boot) {
      if (std::isxdigit(static_cast<unsigned char>(c))) {
        id = (id << 4 | (id >> 60)) ^
             static_cast<uint64_t>(std::isdigit(static_cast<unsigned char>(c))
                                       ? c - '0'
                                       : std::tolower(c) - 'a' + 10);
      }
    }
  }
  std::random_device random;
  while (id == 0) id = (uint64_t{random()} << 32) | random();
  return id;
}
}  // namespace

// One stream's requests: validated on the gRPC thread, executed on the pool
// (or right there when RunsInline says so).
class ExporterService::Handler : public StreamHandler {
 public:
  Handler(ExporterService* service, StreamGrant grant,
          std::unique_ptr<ClientLimiter::Slot> slot)
      : service_(service), grant_(std::move(grant)), slot_(std::move(slot)) {}

  void Handle(v1::Request&& request, Payload data, Done reply_done) override {
    // Every reply is counted and timed on its way out.
    Done done = [metrics = service_->op_metrics_.get(), op = request.op(),
                 written = data.size(), start = absl::Now(),
                 reply_done = std::move(reply_done)](v1::Reply&& reply,
                                                     Payload&& reply_data) {
      metrics->Record(op, reply.status() == 0, written + reply_data.size(),
                      absl::Now() - start);
      reply_done(std::move(reply), std::move(reply_data));
    };
    absl::Status status = service_->Check(grant_, request, data.size());
    if (!status.ok()) {
      DST_LOG(Debug, "exporter: refused %s: %s", v1::Op_Name(request.op()),
              status.ToString());
      done(ErrorReply(request.id(), status), Payload());
      return;
    }
    if (request.op() == v1::OP_PING) {
      done(v1::Reply(), Payload());
      return;
    }
    const bool on_pool = !service_->RunsInline(request);
    auto execute = [service = service_, grant = &grant_,
                    request = std::move(request), data = std::move(data),
                    done = std::move(done), on_pool]() {
      Payload reply_data;
      v1::Reply reply = service->Run(*grant, request, data, &reply_data);
      if (on_pool) service->pool_queued_->Decrement();
      if (service->options_.reply_filter) {
        service->options_.reply_filter(&reply, &reply_data);
      }
      done(std::move(reply), std::move(reply_data));
    };
    if (on_pool) {
      service_->pool_queued_->Increment();
      service_->pool_->Schedule(std::move(execute));
    } else {
      service_->inline_requests_->Increment();
      execute();
    }
  }

 private:
  ExporterService* const service_;
  const StreamGrant grant_;
  const std::unique_ptr<ClientLimiter::Slot> slot_;  // the client's stream
};

ExporterService::StreamGrant ExporterService::Grant(bool read_only,
                                                    uint64_t epoch, Peer peer) {
  StreamGrant grant;
  grant.read_only = read_only;
  grant.epoch = epoch;
  grant.ticket = fence_->OpenStream(read_only ? 0 : epoch);
  grant.peer = std::move(peer);
  return grant;
}

v1::Reply ExporterService::Run(const StreamGrant& grant,
                               const v1::Request& request, const Payload& data,
                               Payload* reply_data) {
  if (!IsModifying(request.op())) return Execute(request, data, reply_data);
  // Fencing, again and for good, when it runs: a claim or a newer stream
  // since it was read means it must not land.
  absl::Status admitted = fence_->Enter(grant.epoch, grant.ticket);
  if (!admitted.ok()) {
    DST_LOG(Debug, "exporter: refused %s at %d: %s", v1::Op_Name(request.op()),
            request.offset(), admitted.message());
    fenced_requests_->Increment();
    return ErrorReply(request.id(), admitted);
  }
  v1::Reply reply = Execute(request, data, reply_data);
  fence_->Exit(grant.ticket);
  return reply;
}

absl::StatusOr<v1::ReplicaMetadata> ExporterService::ClaimEpoch(
    const v1::ClaimRequest& request) {
  if (options_.metadata == nullptr) {
    return absl::UnimplementedError("this exporter keeps no metadata");
  }
  return fence_->Claim(request);
}

absl::Status ExporterService::Check(const StreamGrant& grant,
                                    const v1::Request& request,
                                    size_t data_size) {
  RETURN_IF_ERROR(ValidateRequest(request, data_size, geometry_, ExportSize(),
                                  grant.read_only));
  if (request.op() == v1::OP_PING) return absl::OkStatus();
  // The ACL, on every request: a reload (SIGHUP) applies to open streams.
  const Access access = AccessOf(grant.peer);
  if (access == Access::kNone ||
      (access == Access::kRead && IsModifying(request.op()))) {
    return RefusedPeer(grant.peer, access,
                       IsModifying(request.op()) ? "write" : "read");
  }
  // Fencing is checked per request: a newer claim stops open streams too.
  if (IsModifying(request.op()) && options_.metadata != nullptr) {
    if (absl::Status s = options_.metadata->CheckWriter(grant.epoch); !s.ok()) {
      fenced_requests_->Increment();
      return s;
    }
  }
  return absl::OkStatus();
}

bool ExporterService::RunsInline(const v1::Request& request) const {
  if (pool_ == nullptr) return true;  // --io-threads=0
  if (!options_.inline_io || !storage_->in_memory()) return false;
  // A write's length is its data's size (validated).
  const uint64_t bytes = request.length();
  switch (request.op()) {
    case v1::OP_READ:
    case v1::OP_WRITE:
    case v1::OP_FLUSH:
      return bytes <= kInlineIoMaxBytes;
    default:  // zeroes and trims of any size, checksums of whole ranges
      return false;
  }
}

ExporterService::ExporterService(Storage* storage,
                                 const ExporterOptions& options)
    : storage_(storage),
      options_(options),
      acceptor_(this, kExporterStreamMethod, &ExporterService::Admit,
                &streams_) {}

ExporterService::~ExporterService() {
  streams_.DrainAll();
  streams_.WaitEmpty(absl::InfiniteFuture());
  pool_.reset();
}

absl::Status ExporterService::Init() {
  geometry_.set_size(storage_->size());
  geometry_.set_logical_block_size(options_.block_size);
  geometry_.set_physical_block_size(
      std::max<uint32_t>(4096, options_.block_size));
  geometry_.set_max_transfer(options_.max_transfer);
  geometry_.set_read_only(options_.read_only);
  uint32_t features = v1::FEATURE_FLUSH | v1::FEATURE_FUA |
                      v1::FEATURE_WRITE_ZEROES | v1::FEATURE_CHECKSUM_CRC32C |
                      v1::FEATURE_CHECKSUM_SHA256 | v1::FEATURE_BLOCK_STATUS;
  if (storage_->can_trim()) features |= v1::FEATURE_TRIM;
  if (storage_->can_fast_zero()) features |= v1::FEATURE_FAST_ZERO;
  geometry_.set_features(features);
  geometry_.set_identity(options_.identity);
  RETURN_IF_ERROR(ValidateGeometry(geometry_));
  options_.stream.max_batch_bytes = MaxBatchBytes(geometry_);
  if (options_.io_threads > 0) {
    pool_ = std::make_unique<ThreadPool>(options_.io_threads);
  }
  fence_ = std::make_unique<WriteFence>(options_.metadata);
  if (options_.instance == 0) options_.instance = NewInstance();
  limiter_ = std::make_unique<ClientLimiter>(options_.max_streams_per_client);
  if (options_.metrics == nullptr) {
    options_.metrics = std::make_shared<prometheus::Registry>();
  }
  op_metrics_ = std::make_unique<OpMetrics>(
      *options_.metrics, "dst_exporter", std::map<std::string, std::string>{});
  pool_queued_ = &prometheus::BuildGauge()
                      .Name("dst_exporter_io_requests_queued")
                      .Help(
                          "Requests handed to the I/O thread pool and not "
                          "yet executed (queued or running): pool usage.")
                      .Register(*options_.metrics)
                      .Add({});
  inline_requests_ =
      &prometheus::BuildCounter()
           .Name("dst_exporter_inline_requests_total")
           .Help(
               "Requests executed on the gRPC thread that read them, not "
               "handed to the I/O pool (--inline-io on storage in memory, "
               "or --io-threads=0).")
           .Register(*options_.metrics)
           .Add({});
  prometheus::BuildGauge()
      .Name("dst_exporter_io_threads")
      .Help("Threads in the I/O pool.")
      .Register(*options_.metrics)
      .Add({})
      .Set(options_.io_threads);
  acl_refusals_ = &prometheus::BuildCounter()
                       .Name("dst_exporter_acl_refusals_total")
                       .Help("Calls and requests refused by the ACL.")
                       .Register(*options_.metrics)
                       .Add({});
  checksum_mismatches_ =
      &prometheus::BuildCounter()
           .Name("dst_exporter_checksum_mismatches_total")
           .Help(
               "Writes refused because their data did not match their "
               "checksum (damaged in transit); nothing was written.")
           .Register(*options_.metrics)
           .Add({});
  fenced_requests_ =
      &prometheus::BuildCounter()
           .Name("dst_exporter_fenced_requests_total")
           .Help(
               "Modifications refused when they were to run because a newer "
               "gateway (a higher epoch, or a newer stream of the same one) "
               "claimed this exporter: a stale gateway still sending.")
           .Register(*options_.metrics)
           .Add({});
  return absl::OkStatus();
}

bool ExporterService::Drain(absl::Time deadline) {
  streams_.DrainAll();
  return streams_.WaitEmpty(deadline);
}

grpc::Status ExporterService::Negotiate(grpc::ServerContext* context,
                                        const v1::NegotiateRequest& request,
                                        v1::NegotiateReply* reply) {
  const Peer peer = PeerOf(*context);
  const Access access = AccessOf(peer);
  if (access == Access::kNone) {
    return ToGrpcStatus(RefusedPeer(peer, access, "connect"));
  }
  *reply->mutable_geometry() = geometry();
  if (request.read_only() || access == Access::kRead) {
    reply->mutable_geometry()->set_read_only(true);
  }
  if (options_.metadata != nullptr) {
    *reply->mutable_metadata() = options_.metadata->Get();
  }
  reply->set_instance(options_.instance);
  DST_LOG(Info, "exporter: negotiated with %s (%s) from %s",
          request.client_id().empty() ? "?" : request.client_id(),
          reply->geometry().read_only() ? "read-only" : "read-write",
          peer.text);
  return grpc::Status::OK;
}

StreamStart ExporterService::Admit(grpc::ServerContext* context) {
  std::string access = ClientMetadata(context, "dst-access");
  if (!access.empty() && access != "ro" && access != "rw") {
    return RejectStream(grpc::Status(
        grpc::StatusCode::INVALID_ARGUMENT,
        absl::StrCat("dst-access must be ro or rw, not '", access, "'")));
  }
  bool read_only = access == "ro" || options_.read_only;
  if (access == "rw" && options_.read_only) {
    return RejectStream(grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                                     "the export is read-only"));
  }
  uint64_t epoch = 0;
  std::string epoch_text = ClientMetadata(context, "dst-epoch");
  if (!epoch_text.empty() && !absl::SimpleAtoi(epoch_text, &epoch)) {
    return RejectStream(grpc::Status(
        grpc::StatusCode::INVALID_ARGUMENT,
        absl::StrCat("dst-epoch must be a number, not '", epoch_text, "'")));
  }
  Peer peer = PeerOf(*context);
  if (AccessOf(peer) == Access::kNone) {
    return RejectStream(
        ToGrpcStatus(RefusedPeer(peer, Access::kNone, "connect")));
  }
  absl::StatusOr<std::unique_ptr<ClientLimiter::Slot>> slot =
      limiter_->Acquire(peer);
  if (!slot.ok()) return RejectStream(ToGrpcStatus(slot.status()));
  return ServeStream(
      std::make_unique<Handler>(this, Grant(read_only, epoch, std::move(peer)),
                                *std::move(slot)),
      options_.stream);
}

void ExporterService::StartServing(const ServerQueue& queue) {
  ServeUnary(queue, this, &ExporterService::RequestNegotiate,
             &ExporterService::Negotiate);
  ServeUnary(queue, this, &ExporterService::RequestPing,
             &ExporterService::Ping);
  ServeUnary(queue, this, &ExporterService::RequestClaim,
             &ExporterService::Claim);
  ServeUnary(queue, this, &ExporterService::RequestGrow,
             &ExporterService::Grow);
  acceptor_.Start(queue);
}

grpc::Status ExporterService::Ping(grpc::ServerContext* context,
                                   const v1::PingRequest& request,
                                   v1::PingReply* reply) {
  reply->set_nonce(request.nonce());
  return grpc::Status::OK;
}

Access ExporterService::AccessOf(const Peer& peer) const {
  return options_.acl == nullptr ? Access::kReadWrite
                                 : options_.acl->Check(peer);
}

absl::Status ExporterService::RefusedPeer(const Peer& peer, Access have,
                                          const std::string& wanted) {
  acl_refusals_->Increment();
  DST_LOG(Debug, "exporter: acl refused %s to %s", wanted, peer.text);
  std::string who = peer.text;
  for (const std::string& identity : peer.identities) {
    who += absl::StrCat(" '", identity, "'");
  }
  return absl::PermissionDeniedError(
      have == Access::kNone
          ? absl::StrCat("acl: no entry allows ", who)
          : absl::StrCat("acl: ", who, " may only read (wanted to ", wanted,
                         ")"));
}

grpc::Status ExporterService::Claim(grpc::ServerContext* context,
                                    const v1::ClaimRequest& request,
                                    v1::ClaimReply* reply) {
  if (options_.metadata == nullptr) {
    return grpc::Status(grpc::StatusCode::UNIMPLEMENTED,
                        "this exporter keeps no metadata");
  }
  if (options_.read_only) {
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                        "the export is read-only");
  }
  const Peer peer = PeerOf(*context);
  if (const Access access = AccessOf(peer); access != Access::kReadWrite) {
    return ToGrpcStatus(RefusedPeer(peer, access, "claim an epoch"));
  }
  absl::StatusOr<v1::ReplicaMetadata> claimed = ClaimEpoch(request);
  if (claimed.ok()) *reply->mutable_metadata() = *claimed;
  return ToGrpcStatus(claimed.status());
}

uint64_t ExporterService::ExportSize() const {
  const uint64_t size = storage_->size();
  return size - size % options_.block_size;
}

v1::Geometry ExporterService::geometry() const {
  v1::Geometry geometry = geometry_;
  geometry.set_size(ExportSize());
  return geometry;
}

absl::StatusOr<uint64_t> ExporterService::GrowExport(
    const v1::GrowRequest& request) {
  if (request.size() % options_.block_size != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "size ", request.size(), " is not a multiple of the block size ",
        options_.block_size));
  }
  // A stale gateway must not act on the export any more, growth included.
  if (options_.metadata != nullptr) {
    RETURN_IF_ERROR(options_.metadata->CheckWriter(request.epoch()));
  }
  const uint64_t before = ExportSize();
  RETURN_IF_ERROR(storage_->Grow(request.size()).status());
  const uint64_t after = ExportSize();
  if (after != before) {
    DST_LOG(Info, "exporter: grew from %d to %d bytes", before, after);
  }
  return after;
}

grpc::Status ExporterService::Grow(grpc::ServerContext* context,
                                   const v1::GrowRequest& request,
                                   v1::GrowReply* reply) {
  if (options_.read_only) {
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                        "the export is read-only");
  }
  const Peer peer = PeerOf(*context);
  if (const Access access = AccessOf(peer); access != Access::kReadWrite) {
    return ToGrpcStatus(RefusedPeer(peer, access, "grow the export"));
  }
  absl::StatusOr<uint64_t> size = GrowExport(request);
  if (size.ok()) reply->set_size(*size);
  return ToGrpcStatus(size.status());
}

v1::Reply ExporterService::Execute(const v1::Request& request,
                                   const Payload& data, Payload* reply_data) {
  v1::Reply reply;
  reply.set_id(request.id());
  const bool fua = request.flags() & v1::REQUEST_FLAG_FUA;
  absl::Status status;
  switch (request.op()) {
    case v1::OP_READ: {
      // Read straight into the reply's payload: no zero-filling first, and
      // gRPC sends it from there.
      char* bytes = nullptr;
      Payload read = Payload::Uninitialized(request.length(), &bytes);
      status = storage_->Read(request.offset(), request.length(), bytes);
      if (!status.ok()) break;
      if (request.checksum_algorithm() != v1::CHECKSUM_NONE) {
        reply.set_checksum(ComputeChecksum(request.checksum_algorithm(), read));
      }
      *reply_data = std::move(read);
      break;
    }
    case v1::OP_WRITE:
      if (request.checksum_algorithm() != v1::CHECKSUM_NONE) {
        status = VerifyChecksum(request.checksum_algorithm(), data,
                                request.checksum(), "the write's data");
        if (!status.ok()) {
          checksum_mismatches_->Increment();
          break;
        }
      }
      status = storage_->Write(request.offset(), data, fua);
      break;
    case v1::OP_WRITE_ZEROES:
      status = (request.flags() & v1::REQUEST_FLAG_FAST_ZERO)
                   ? storage_->FastZero(
                         request.offset(), request.length(),
                         !(request.flags() & v1::REQUEST_FLAG_NO_HOLE), fua)
                   : storage_->WriteZeroes(
                         request.offset(), request.length(),
                         !(request.flags() & v1::REQUEST_FLAG_NO_HOLE), fua);
      break;
    case v1::OP_TRIM:
      status = storage_->Trim(request.offset(), request.length(), fua);
      break;
    case v1::OP_FLUSH:
      status = storage_->Flush();
      break;
    case v1::OP_CHECKSUM: {
      std::string range(request.length(), '\0');
      status = storage_->Read(request.offset(), request.length(), range.data());
      if (status.ok()) {
        *reply_data = Payload(ComputeChecksum(v1::CHECKSUM_SHA256, range));
      }
      break;
    }
    case v1::OP_BLOCK_STATUS: {
      absl::StatusOr<std::vector<Extent>> extents = storage_->Extents(
          request.offset(), request.length(), kMaxExtentsPerReply);
      if (!extents.ok()) {
        status = extents.status();
        break;
      }
      for (const Extent& e : *extents) {
        v1::BlockExtent* out = reply.add_extents();
        out->set_length(e.length);
        out->set_flags(e.flags);
      }
      break;
    }
    case v1::OP_PING:
      break;
    default:
      status = absl::InvalidArgumentError("unknown operation");
  }
  if (!status.ok()) {
    DST_LOG(Warning, "exporter: %s at %d+%d failed: %s",
            v1::Op_Name(request.op()), request.offset(), request.length(),
            status.ToString());
    return ErrorReply(request.id(), status);
  }
  return reply;
}

}  // namespace dst
