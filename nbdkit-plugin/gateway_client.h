// A client of one gateway volume: the Open negotiation and the Io
// transaction stream. Used by the nbdkit plugin (one per NBD connection) and
// by tests. Thread-safe; Call() blocks its caller until the reply.
#ifndef DST_NBDKIT_PLUGIN_GATEWAY_CLIENT_H_
#define DST_NBDKIT_PLUGIN_GATEWAY_CLIENT_H_

#include <memory>
#include <string>

#include <grpcpp/grpcpp.h>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

#include "dst/v1/gateway.grpc.pb.h"
#include "services/common/transaction_stream.h"

namespace dst {

struct GatewayClientOptions {
  std::string volume;
  bool read_only = false;
  std::string client_id = "nbdkit";
  // How long Open waits for the gateway to answer. Default 10 s.
  absl::Duration open_timeout = absl::Seconds(10);
  int max_message_bytes = 64 << 20;
};

class GatewayClient {
 public:
  // Negotiates and opens the Io stream. NotFound: no such volume;
  // Unavailable: the gateway cannot be reached or the volume is not ready.
  static absl::StatusOr<std::unique_ptr<GatewayClient>> Open(
      const std::shared_ptr<grpc::Channel>& channel,
      const GatewayClientOptions& options);

  const v1::Geometry& geometry() const { return geometry_; }
  // One transaction, blocking.
  v1::Reply Call(v1::Request request) {
    return stream_->Call(std::move(request));
  }

 private:
  GatewayClient(v1::Geometry geometry,
                std::unique_ptr<TransactionStream> stream)
      : geometry_(std::move(geometry)), stream_(std::move(stream)) {}

  v1::Geometry geometry_;
  std::unique_ptr<TransactionStream> stream_;
};

// A channel to `address` (address.h syntax) with dst's channel settings.
absl::StatusOr<std::shared_ptr<grpc::Channel>> GatewayChannel(
    const std::string& address, int max_message_bytes = 64 << 20);

}  // namespace dst

#endif  // DST_NBDKIT_PLUGIN_GATEWAY_CLIENT_H_
