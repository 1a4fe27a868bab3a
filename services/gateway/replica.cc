// The gateway's session with one exporter: see replica.h.
#include "services/gateway/replica.h"

#include <random>
#include <utility>

#include "absl/strings/str_cat.h"

#include "services/common/address.h"
#include "services/common/log.h"
#include "services/common/request_validation.h"
#include "services/common/server.h"
#include "services/common/status.h"

namespace dst {

Replica::Replica(const ReplicaOptions& options) : options_(options) {}

Replica::~Replica() {
  Stop();
  std::shared_ptr<TransactionStream> stream;
  {
    absl::MutexLock lock(&mu_);
    stream = std::move(stream_);
  }
  stream.reset();  // closes, waits for the stream to end
}

void Replica::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (connector_.joinable()) connector_.join();
}

void Replica::Start(std::function<void()> on_change) {
  on_change_ = std::move(on_change);
  connector_ = std::thread([this] { ConnectLoop(); });
}

void Replica::Submit(v1::Request request, TransactionDone done) {
  std::shared_ptr<TransactionStream> stream;
  {
    absl::MutexLock lock(&mu_);
    stream = stream_;
  }
  if (stream == nullptr) {
    done(ErrorReply(request.id(),
                    absl::UnavailableError(absl::StrCat(
                        "replica ", options_.address, " is not connected"))));
    return;
  }
  stream->Submit(std::move(request), std::move(done));
}

bool Replica::connected() const {
  absl::MutexLock lock(&mu_);
  return stream_ != nullptr && !stream_->broken();
}

v1::Geometry Replica::geometry() const {
  absl::MutexLock lock(&mu_);
  return geometry_;
}

v1::ReplicaStatus Replica::Status() const {
  absl::MutexLock lock(&mu_);
  v1::ReplicaStatus status;
  status.set_address(options_.address);
  status.set_identity(geometry_.identity());
  status.set_state(state_);
  status.set_last_error(last_error_);
  status.set_in_flight(stream_ ? stream_->in_flight() : 0);
  return status;
}

absl::Status Replica::Connect() {
  ASSIGN_OR_RETURN(Address address, ParseAddress(options_.address));
  auto channel = grpc::CreateCustomChannel(
      address.GrpcTarget(), grpc::InsecureChannelCredentials(),
      ClientChannelArguments(options_.max_message_bytes));
  auto stub =
      std::shared_ptr<v1::Exporter::Stub>(v1::Exporter::NewStub(channel));
  grpc::ClientContext context;
  context.set_deadline(
      absl::ToChronoTime(absl::Now() + options_.negotiate_timeout));
  context.set_wait_for_ready(true);
  v1::NegotiateRequest request;
  request.set_client_id(options_.client_id);
  request.set_read_only(options_.read_only);
  v1::NegotiateReply reply;
  RETURN_IF_ERROR(FromGrpcStatus(stub->Negotiate(&context, request, &reply)));
  const v1::Geometry& geometry = reply.geometry();
  RETURN_IF_ERROR(ValidateGeometry(geometry));
  {
    absl::MutexLock lock(&mu_);
    if (geometry_.size() != 0 && geometry.size() != geometry_.size()) {
      return absl::FailedPreconditionError(
          absl::StrCat("exporter size changed from ", geometry_.size(), " to ",
                       geometry.size(), " bytes; refusing it"));
    }
  }
  if (!options_.read_only && geometry.read_only()) {
    return absl::FailedPreconditionError(
        "the export is read-only but the volume is read-write");
  }
  const std::string access = options_.read_only ? "ro" : "rw";
  TransactionStreamOptions stream_options = options_.stream;
  stream_options.max_batch_bytes =
      std::min(stream_options.max_batch_bytes, MaxBatchBytes(geometry));
  auto stream = std::make_shared<TransactionStream>(
      [stub, access](grpc::ClientContext* ctx, ClientStreamReactor* reactor) {
        ctx->AddMetadata("dst-access", access);
        stub->async()->Stream(ctx, reactor);
      },
      stream_options);
  absl::MutexLock lock(&mu_);
  stub_ = stub;
  geometry_ = geometry;
  stream_ = std::move(stream);
  state_ = "connected";
  last_error_.clear();
  return absl::OkStatus();
}

void Replica::ConnectLoop() {
  std::mt19937_64 random(std::random_device{}());
  absl::Duration backoff = options_.min_backoff;
  for (;;) {
    std::shared_ptr<TransactionStream> old;
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) return;
      if (stream_ != nullptr && !stream_->broken()) {
        // Connected: check again shortly (or at once when stopping).
        auto stop = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
          return stopping_;
        };
        mu_.AwaitWithTimeout(absl::Condition(&stop), absl::Milliseconds(100));
        continue;
      }
      if (stream_ != nullptr) {
        last_error_ = stream_->status().ToString();
        state_ = "failed";
        old = std::move(stream_);
        DST_LOG(Warning, "gateway: replica %s stream ended: %s",
                options_.address, last_error_);
      }
    }
    if (old != nullptr) {
      old.reset();  // waits for the old stream's end
      if (on_change_) on_change_();
    }
    absl::Status status = Connect();
    if (status.ok()) {
      DST_LOG(Info, "gateway: replica %s connected", options_.address);
      backoff = options_.min_backoff;
      if (on_change_) on_change_();
      continue;
    }
    {
      absl::MutexLock lock(&mu_);
      if (last_error_ != status.ToString()) {
        DST_LOG(Warning, "gateway: replica %s: %s", options_.address,
                status.ToString());
      }
      last_error_ = status.ToString();
      state_ = "failed";
      // Exponential backoff with full jitter in [backoff/2, backoff].
      std::uniform_real_distribution<double> jitter(0.5, 1.0);
      absl::Duration wait = backoff * jitter(random);
      backoff = std::min(backoff * 2, options_.max_backoff);
      auto stop = [this]()
                      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_; };
      mu_.AwaitWithTimeout(absl::Condition(&stop), wait);
    }
  }
}

}  // namespace dst
