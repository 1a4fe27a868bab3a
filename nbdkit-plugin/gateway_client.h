// A client of one gateway volume: the Open negotiation and the Io
// transaction stream, inside a TransactionSession so that a gateway restart
// is a pause, not an error: unanswered requests are replayed in order once
// the gateway is back (and the volume's geometry unchanged), within
// `suspend_timeout`. Used by the nbdkit plugin (one per NBD connection) and
// by tests. Thread-safe; Call() blocks its caller until the reply.
#ifndef DST_NBDKIT_PLUGIN_GATEWAY_CLIENT_H_
#define DST_NBDKIT_PLUGIN_GATEWAY_CLIENT_H_

#include <memory>
#include <string>
#include <utility>

#include <grpcpp/grpcpp.h>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

#include "dst/v1/gateway.grpc.pb.h"
#include "nbdkit-plugin/volume_client.h"
#include "services/common/base/limits.h"
#include "services/common/transport/transaction_session.h"

namespace dst {

class Tls;

struct GatewayClientOptions {
  std::string volume;
  bool read_only = false;
  std::string client_id = "nbdkit";
  // The write lease's token: clients sharing it count as one writer (one
  // NBD server's connections). Required for read-write.
  std::string lease_token;
  // How long each Open waits for the gateway to answer. Default 10 s.
  absl::Duration open_timeout = absl::Seconds(10);
  // How long a request waits for the gateway to come back. Default 60 s.
  absl::Duration suspend_timeout = absl::Seconds(60);
  // A request unanswered this long is resent on a new stream. The gateway
  // answers within its own suspend time and resends, so this is a last
  // resort. Default 300 s.
  absl::Duration request_timeout = absl::Seconds(300);
  int max_message_bytes = kMaxMessageBytes;
};

class GatewayClient : public VolumeClient {
 public:
  // Negotiates and opens the Io stream. NotFound: no such volume;
  // Unavailable: the gateway cannot be reached or the volume is not ready.
  static absl::StatusOr<std::unique_ptr<GatewayClient>> Open(
      const std::shared_ptr<grpc::Channel>& channel,
      const GatewayClientOptions& options);

  const v1::Geometry& geometry() const override { return geometry_; }
  // One transaction, blocking.
  v1::Reply Call(v1::Request request, Payload data,
                 Payload* reply_data) override {
    return session_->Call(std::move(request), std::move(data), reply_data);
  }
  // The same with the data inside the messages (copied; for tests).
  v1::Reply Call(v1::Request request) {
    return session_->Call(std::move(request));
  }
  const TransactionSession& session() const { return *session_; }

 private:
  GatewayClient(std::shared_ptr<grpc::Channel> channel,
                std::shared_ptr<v1::Gateway::Stub> stub,
                const GatewayClientOptions& options, v1::Geometry geometry);
  absl::StatusOr<std::unique_ptr<TransactionStream>> Connect(
      const TransactionStreamOptions& stream_options);

  const std::shared_ptr<grpc::Channel> channel_;   // the Io streams'
  const std::shared_ptr<v1::Gateway::Stub> stub_;  // Open
  const GatewayClientOptions options_;
  const v1::Geometry geometry_;
  std::unique_ptr<TransactionSession> session_;  // last: uses the above
};

// A channel to `address` (address.h syntax) with dst's channel settings.
// `tls` null: plaintext.
absl::StatusOr<std::shared_ptr<grpc::Channel>> GatewayChannel(
    const std::string& address, int max_message_bytes = kMaxMessageBytes,
    const std::shared_ptr<Tls>& tls = nullptr);

// A volume served by a gateway: one channel, a GatewayClient per
// connection.
class GatewayBackend : public VolumeBackend {
 public:
  // The channel to `address` (InvalidArgument for a bad address); it
  // connects when the first client opens.
  static absl::StatusOr<std::unique_ptr<GatewayBackend>> Connect(
      const std::string& address, const std::string& volume,
      const std::shared_ptr<Tls>& tls);

  absl::StatusOr<std::unique_ptr<VolumeClient>> Open(
      const ClientOpenOptions& options) override;
  // A write's thread waits for its reply anyway, and the gateway replies
  // once every send of it is over.
  bool LendsWriteBuffers() const override { return true; }
  std::string Where() const override;
  // The channel stays: gRPC's teardown would hold nbdkit for seconds.
  void Shutdown() override {}

 private:
  GatewayBackend(std::string address, std::string volume,
                 std::shared_ptr<grpc::Channel> channel)
      : address_(std::move(address)),
        volume_(std::move(volume)),
        channel_(std::move(channel)) {}
  const std::string address_;
  const std::string volume_;
  const std::shared_ptr<grpc::Channel> channel_;
};

}  // namespace dst

#endif  // DST_NBDKIT_PLUGIN_GATEWAY_CLIENT_H_
