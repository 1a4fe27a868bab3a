// The gateway's session with one exporter: see replica.h.
#include "services/gateway/replica.h"

#include <utility>

#include "absl/strings/str_cat.h"

#include "services/common/base/address.h"
#include "services/common/base/status.h"
#include "services/common/protocol/request_validation.h"
#include "services/common/rpc/channel_args.h"
#include "services/common/rpc/completion_loop.h"

namespace dst {

namespace {
TransactionSessionOptions Named(TransactionSessionOptions options,
                                const std::string& address) {
  if (options.name.empty()) options.name = absl::StrCat("replica ", address);
  return options;
}
}  // namespace

Replica::Replica(const ReplicaOptions& options)
    : options_(options),
      session_([this](const TransactionStreamOptions& o) { return Connect(o); },
               Named(options.session, options.address)) {}

void Replica::Start(std::function<void()> on_change, Admission admission) {
  admission_ = std::move(admission);
  session_.Start(std::move(on_change));
}

Replica::~Replica() { Close(); }

void Replica::Close() {
  Stop();
  session_.Close();
}

void Replica::Stop() {
  {
    absl::MutexLock lock(&pings_->mu);
    pings_->closed = true;
  }
  session_.Stop();
}

void Replica::Ping(std::function<void(absl::Duration)> done) {
  std::shared_ptr<v1::Exporter::Stub> stub;
  {
    absl::MutexLock lock(&mu_);
    stub = stub_;
  }
  if (stub == nullptr) return;
  // On the process's loop, like the streams (a callback-API call would
  // bring gRPC's callback threads, which poll beside the loop).
  struct Call final : CompletionLoop::Tag {
    void Proceed(bool /*ok*/) override {
      {
        absl::MutexLock lock(&gate->mu);
        if (status.ok() && !gate->closed) done(absl::Now() - start);
      }
      delete this;
    }
    std::shared_ptr<PingGate> gate;
    grpc::ClientContext context;
    v1::PingRequest request;
    v1::PingReply reply;
    grpc::Status status;
    absl::Time start = absl::Now();
    std::function<void(absl::Duration)> done;
    std::shared_ptr<v1::Exporter::Stub> stub;  // keeps the channel
    std::unique_ptr<grpc::ClientAsyncResponseReader<v1::PingReply>> reader;
  };
  auto* call = new Call;
  call->gate = pings_;
  call->done = std::move(done);
  call->stub = stub;
  call->context.set_deadline(
      absl::ToChronoTime(absl::Now() + options_.keepalive_timeout));
  call->reader = stub->PrepareAsyncPing(&call->context, call->request,
                                        CompletionLoop::Shared().cq());
  call->reader->StartCall();
  call->reader->Finish(&call->reply, &call->status, CompletionLoop::Hand(call));
}

absl::StatusOr<std::shared_ptr<v1::Exporter::Stub>> Replica::NegotiatedStub()
    const {
  absl::MutexLock lock(&mu_);
  if (stub_ == nullptr) {
    return absl::UnavailableError(
        absl::StrCat("replica ", options_.address, " never negotiated"));
  }
  return stub_;
}

absl::StatusOr<v1::ReplicaMetadata> Replica::Claim(
    const v1::ClaimRequest& request) {
  ASSIGN_OR_RETURN(std::shared_ptr<v1::Exporter::Stub> stub, NegotiatedStub());
  grpc::ClientContext context;
  context.set_deadline(
      absl::ToChronoTime(absl::Now() + options_.negotiate_timeout));
  v1::ClaimReply reply;
  RETURN_IF_ERROR(FromGrpcStatus(stub->Claim(&context, request, &reply)));
  return reply.metadata();
}

absl::StatusOr<uint64_t> Replica::Grow(const v1::GrowRequest& request) {
  ASSIGN_OR_RETURN(std::shared_ptr<v1::Exporter::Stub> stub, NegotiatedStub());
  grpc::ClientContext context;
  // A file grows at once; the deadline is a negotiation's.
  context.set_deadline(
      absl::ToChronoTime(absl::Now() + options_.negotiate_timeout));
  v1::GrowReply reply;
  RETURN_IF_ERROR(FromGrpcStatus(stub->Grow(&context, request, &reply)));
  return reply.size();
}

v1::Geometry Replica::geometry() const {
  absl::MutexLock lock(&mu_);
  return geometry_;
}

v1::ReplicaStatus Replica::Status() const {
  v1::ReplicaStatus status;
  status.set_address(options_.address);
  status.set_identity(geometry().identity());
  bool connected = session_.connected();
  std::string error = session_.last_error();
  status.set_state(connected       ? "connected"
                   : error.empty() ? "connecting"
                                   : "failed");
  status.set_last_error(error);
  status.set_in_flight(session_.pending());
  status.set_resends(session_.resends());
  status.set_timeouts(session_.timeouts());
  status.set_reconnects(session_.reconnects());
  return status;
}

absl::StatusOr<std::unique_ptr<TransactionStream>> Replica::Connect(
    const TransactionStreamOptions& stream_options) {
  ASSIGN_OR_RETURN(Address address, ParseAddress(options_.address));
  grpc::ChannelArguments args = ClientChannelArguments(
      options_.max_message_bytes,
      static_cast<int>(absl::ToInt64Milliseconds(options_.keepalive)),
      static_cast<int>(absl::ToInt64Milliseconds(options_.keepalive_timeout)));
  std::shared_ptr<grpc::ChannelCredentials> credentials =
      options_.tls != nullptr ? options_.tls->ChannelCredentials(address, &args)
                              : grpc::InsecureChannelCredentials();
  auto channel =
      grpc::CreateCustomChannel(address.GrpcTarget(), credentials, args);
  auto stub =
      std::shared_ptr<v1::Exporter::Stub>(v1::Exporter::NewStub(channel));
  grpc::ClientContext context;
  context.set_deadline(
      absl::ToChronoTime(absl::Now() + options_.negotiate_timeout));
  // Fail fast when the exporter is unreachable: the session's thread also
  // expires waiting requests, so it must not sit in a connect attempt.
  v1::NegotiateRequest request;
  request.set_client_id(options_.client_id);
  request.set_read_only(options_.read_only);
  v1::NegotiateReply reply;
  RETURN_IF_ERROR(FromGrpcStatus(stub->Negotiate(&context, request, &reply)));
  const v1::Geometry& geometry = reply.geometry();
  RETURN_IF_ERROR(ValidateGeometry(geometry));
  if (!options_.read_only && geometry.read_only()) {
    return absl::FailedPreconditionError(
        "the export is read-only but the volume is read-write");
  }
  {
    // The same replica must come back: same identity, never smaller (it
    // grows with `dstctl resize`).
    absl::MutexLock lock(&mu_);
    if (geometry_.size() != 0) {
      if (geometry.size() < geometry_.size()) {
        return absl::FailedPreconditionError(
            absl::StrCat("exporter shrank from ", geometry_.size(), " to ",
                         geometry.size(), " bytes; refusing it"));
      }
      if (geometry.identity() != geometry_.identity()) {
        return absl::FailedPreconditionError(absl::StrCat(
            "exporter identity changed from '", geometry_.identity(), "' to '",
            geometry.identity(), "'; refusing it"));
      }
    }
  }
  {
    absl::MutexLock lock(&mu_);
    stub_ = stub;
  }
  uint64_t epoch = 0;
  if (admission_) {
    ASSIGN_OR_RETURN(epoch, admission_(reply));
  }
  TransactionStreamOptions options = stream_options;
  options.max_batch_bytes =
      std::min(options.max_batch_bytes, MaxBatchBytes(geometry));
  const std::string access = options_.read_only ? "ro" : "rw";
  auto stream = std::make_unique<TransactionStream>(
      [channel, access, epoch](grpc::ClientContext* ctx,
                               grpc::CompletionQueue* cq) {
        ctx->AddMetadata("dst-access", access);
        if (epoch != 0) ctx->AddMetadata("dst-epoch", absl::StrCat(epoch));
        return PrepareTransactionStream(channel.get(), kExporterStreamMethod,
                                        ctx, cq);
      },
      options);
  absl::MutexLock lock(&mu_);
  geometry_ = geometry;
  return stream;
}

}  // namespace dst
