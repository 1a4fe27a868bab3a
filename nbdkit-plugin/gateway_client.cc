// A client of one gateway volume: see gateway_client.h.
#include "nbdkit-plugin/gateway_client.h"

#include <utility>

#include "absl/strings/str_cat.h"

#include "services/common/address.h"
#include "services/common/request_validation.h"
#include "services/common/server.h"
#include "services/common/status.h"

namespace dst {

absl::StatusOr<std::shared_ptr<grpc::Channel>> GatewayChannel(
    const std::string& address, int max_message_bytes) {
  ASSIGN_OR_RETURN(Address parsed, ParseAddress(address));
  return grpc::CreateCustomChannel(parsed.GrpcTarget(),
                                   grpc::InsecureChannelCredentials(),
                                   ClientChannelArguments(max_message_bytes));
}

absl::StatusOr<std::unique_ptr<GatewayClient>> GatewayClient::Open(
    const std::shared_ptr<grpc::Channel>& channel,
    const GatewayClientOptions& options) {
  auto stub = std::shared_ptr<v1::Gateway::Stub>(v1::Gateway::NewStub(channel));
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + options.open_timeout));
  v1::OpenRequest request;
  request.set_volume(options.volume);
  request.set_read_only(options.read_only);
  request.set_client_id(options.client_id);
  v1::OpenReply reply;
  grpc::Status status = stub->Open(&context, request, &reply);
  if (!status.ok()) return FromGrpcStatus(status);
  RETURN_IF_ERROR(ValidateGeometry(reply.geometry()));
  TransactionStreamOptions stream_options;
  stream_options.max_batch_bytes = MaxBatchBytes(reply.geometry());
  const std::string volume = options.volume;
  const std::string access = options.read_only ? "ro" : "rw";
  auto stream = std::make_unique<TransactionStream>(
      [stub, volume, access](grpc::ClientContext* ctx,
                             ClientStreamReactor* reactor) {
        ctx->AddMetadata("dst-volume", volume);
        ctx->AddMetadata("dst-access", access);
        stub->async()->Io(ctx, reactor);
      },
      stream_options);
  return std::unique_ptr<GatewayClient>(
      new GatewayClient(reply.geometry(), std::move(stream)));
}

}  // namespace dst
