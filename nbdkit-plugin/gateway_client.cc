// A client of one gateway volume: see gateway_client.h.
#include "nbdkit-plugin/gateway_client.h"

#include <utility>

#include "absl/strings/str_cat.h"

#include "services/common/base/address.h"
#include "services/common/base/status.h"
#include "services/common/protocol/request_validation.h"
#include "services/common/rpc/channel_args.h"
#include "services/common/security/tls.h"

namespace dst {

namespace {

absl::StatusOr<v1::Geometry> OpenVolume(v1::Gateway::Stub& stub,
                                        const GatewayClientOptions& options) {
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + options.open_timeout));
  v1::OpenRequest request;
  request.set_volume(options.volume);
  request.set_read_only(options.read_only);
  request.set_client_id(options.client_id);
  request.set_lease_token(options.lease_token);
  v1::OpenReply reply;
  RETURN_IF_ERROR(FromGrpcStatus(stub.Open(&context, request, &reply)));
  RETURN_IF_ERROR(ValidateGeometry(reply.geometry()));
  return reply.geometry();
}

}  // namespace

absl::StatusOr<std::shared_ptr<grpc::Channel>> GatewayChannel(
    const std::string& address, int max_message_bytes,
    const std::shared_ptr<Tls>& tls) {
  ASSIGN_OR_RETURN(Address parsed, ParseAddress(address));
  grpc::ChannelArguments args = ClientChannelArguments(max_message_bytes);
  std::shared_ptr<grpc::ChannelCredentials> credentials =
      tls != nullptr ? tls->ChannelCredentials(parsed, &args)
                     : grpc::InsecureChannelCredentials();
  return grpc::CreateCustomChannel(parsed.GrpcTarget(), credentials, args);
}

absl::StatusOr<std::unique_ptr<GatewayClient>> GatewayClient::Open(
    const std::shared_ptr<grpc::Channel>& channel,
    const GatewayClientOptions& options) {
  auto stub = std::shared_ptr<v1::Gateway::Stub>(v1::Gateway::NewStub(channel));
  ASSIGN_OR_RETURN(v1::Geometry geometry, OpenVolume(*stub, options));
  return std::unique_ptr<GatewayClient>(new GatewayClient(
      channel, std::move(stub), options, std::move(geometry)));
}

GatewayClient::GatewayClient(std::shared_ptr<grpc::Channel> channel,
                             std::shared_ptr<v1::Gateway::Stub> stub,
                             const GatewayClientOptions& options,
                             v1::Geometry geometry)
    : channel_(std::move(channel)),
      stub_(std::move(stub)),
      options_(options),
      geometry_(std::move(geometry)) {
  TransactionSessionOptions session;
  session.name = absl::StrCat("gateway volume ", options.volume);
  session.suspend_timeout = options.suspend_timeout;
  session.request_timeout = options.request_timeout;
  session.max_resends = 3;
  session.stream.max_batch_bytes = MaxBatchBytes(geometry_);
  session_ = std::make_unique<TransactionSession>(
      [this](const TransactionStreamOptions& o) { return Connect(o); },
      session);
  session_->Start();
}

absl::StatusOr<std::unique_ptr<TransactionStream>> GatewayClient::Connect(
    const TransactionStreamOptions& stream_options) {
  // Re-negotiate: a gateway that came back must serve the same volume.
  ASSIGN_OR_RETURN(v1::Geometry geometry, OpenVolume(*stub_, options_));
  if (geometry.size() != geometry_.size() ||
      geometry.logical_block_size() != geometry_.logical_block_size() ||
      (geometry.read_only() && !geometry_.read_only())) {
    return absl::FailedPreconditionError(absl::StrCat(
        "volume ", options_.volume, " changed (size ", geometry_.size(), " -> ",
        geometry.size(), "); not replaying to it"));
  }
  const std::string volume = options_.volume;
  const std::string access = options_.read_only ? "ro" : "rw";
  const std::string lease = options_.lease_token;
  auto channel = channel_;
  return std::make_unique<TransactionStream>(
      [channel, volume, access, lease](grpc::ClientContext* ctx,
                                       grpc::CompletionQueue* cq) {
        ctx->AddMetadata("dst-volume", volume);
        ctx->AddMetadata("dst-access", access);
        if (access == "rw") ctx->AddMetadata("dst-lease", lease);
        return PrepareTransactionStream(channel.get(), kGatewayIoMethod, ctx,
                                        cq);
      },
      stream_options);
}

absl::StatusOr<std::unique_ptr<GatewayBackend>> GatewayBackend::Connect(
    const std::string& address, const std::string& volume,
    const std::shared_ptr<Tls>& tls) {
  ASSIGN_OR_RETURN(std::shared_ptr<grpc::Channel> channel,
                   GatewayChannel(address, kMaxMessageBytes, tls));
  return std::unique_ptr<GatewayBackend>(
      new GatewayBackend(address, volume, std::move(channel)));
}

absl::StatusOr<std::unique_ptr<VolumeClient>> GatewayBackend::Open(
    const ClientOpenOptions& options) {
  GatewayClientOptions client_options;
  client_options.volume = volume_;
  client_options.read_only = options.read_only;
  client_options.client_id = options.client_id;
  client_options.lease_token = options.lease_token;
  client_options.suspend_timeout = options.timeout;
  ASSIGN_OR_RETURN(std::unique_ptr<GatewayClient> client,
                   GatewayClient::Open(channel_, client_options));
  return std::unique_ptr<VolumeClient>(std::move(client));
}

std::string GatewayBackend::Where() const {
  return absl::StrCat("on gateway ", address_);
}

}  // namespace dst
