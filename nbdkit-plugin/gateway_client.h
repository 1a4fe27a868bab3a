// A client of one gateway volume: the Open negotiation and the Io
// transaction stream, inside a TransactionSession so that a gateway restart
// (or, in HA mode, a move to another gateway that leads the volume now) is
// a pause, not an error: unanswered requests are replayed in order once a
// gateway serves the volume again (its geometry unchanged), within
// `suspend_timeout`. Used by the nbdkit plugin (one per NBD connection) and
// by tests. Thread-safe; Call() blocks its caller until the reply.
#ifndef DST_NBDKIT_PLUGIN_GATEWAY_CLIENT_H_
#define DST_NBDKIT_PLUGIN_GATEWAY_CLIENT_H_

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
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

// The gateways a volume may be reached through (`gateway=a,b,c`, or one
// name with several addresses): in HA mode one of them leads the volume.
// An Open goes first to the gateway that served the last one; a gateway
// that does not lead the volume answers UNAVAILABLE naming the leader (the
// "dst-leader" trailing metadata), and the Open goes there next (an
// address not in the list gets a channel of its own); one that cannot be
// reached passes the Open to the next. Thread-safe.
class GatewaySet {
 public:
  // `addresses`: comma-separated (address.h syntax each). InvalidArgument
  // for an empty list or a bad address.
  static absl::StatusOr<std::shared_ptr<GatewaySet>> Create(
      const std::string& addresses, int max_message_bytes = kMaxMessageBytes,
      std::shared_ptr<Tls> tls = nullptr);
  // One gateway, over `channel` (tests).
  static std::shared_ptr<GatewaySet> Of(std::shared_ptr<grpc::Channel> channel);

  struct Opened {
    v1::Geometry geometry;
    std::shared_ptr<grpc::Channel> channel;  // the gateway that answered
    std::string address;
  };
  // Negotiates the volume at the gateway that leads it. The last error
  // when none answers (Unavailable: retry later).
  absl::StatusOr<Opened> Open(const GatewayClientOptions& options);
  std::string addresses() const;

 private:
  struct Gateway {
    std::string address;
    std::shared_ptr<grpc::Channel> channel;
  };
  GatewaySet(int max_message_bytes, std::shared_ptr<Tls> tls)
      : max_message_bytes_(max_message_bytes), tls_(std::move(tls)) {}
  // The index of `address`, given a channel if it is new.
  absl::StatusOr<size_t> Find(const std::string& address);

  const int max_message_bytes_;
  const std::shared_ptr<Tls> tls_;
  mutable absl::Mutex mu_;
  std::vector<Gateway> gateways_ ABSL_GUARDED_BY(mu_);
  size_t current_ ABSL_GUARDED_BY(mu_) = 0;  // the last that answered
};

class GatewayClient : public VolumeClient {
 public:
  // Negotiates and opens the Io stream. NotFound: no such volume;
  // Unavailable: no gateway can be reached or the volume is not ready.
  static absl::StatusOr<std::unique_ptr<GatewayClient>> Open(
      std::shared_ptr<GatewaySet> gateways,
      const GatewayClientOptions& options);
  static absl::StatusOr<std::unique_ptr<GatewayClient>> Open(
      const std::shared_ptr<grpc::Channel>& channel,
      const GatewayClientOptions& options) {
    return Open(GatewaySet::Of(channel), options);
  }

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
  GatewayClient(std::shared_ptr<GatewaySet> gateways,
                const GatewayClientOptions& options, v1::Geometry geometry);
  absl::StatusOr<std::unique_ptr<TransactionStream>> Connect(
      const TransactionStreamOptions& stream_options);

  const std::shared_ptr<GatewaySet> gateways_;
  const GatewayClientOptions options_;
  const v1::Geometry geometry_;
  std::unique_ptr<TransactionSession> session_;  // last: uses the above
};

// A channel to `address` (address.h syntax) with dst's channel settings.
// `tls` null: plaintext.
absl::StatusOr<std::shared_ptr<grpc::Channel>> GatewayChannel(
    const std::string& address, int max_message_bytes = kMaxMessageBytes,
    const std::shared_ptr<Tls>& tls = nullptr);

// A volume served by gateways (one, or several in HA mode): a channel to
// each, a GatewayClient per connection.
class GatewayBackend : public VolumeBackend {
 public:
  // The channels to `addresses` (comma-separated; InvalidArgument for a
  // bad one); they connect when the first client opens.
  static absl::StatusOr<std::unique_ptr<GatewayBackend>> Connect(
      const std::string& addresses, const std::string& volume,
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
  GatewayBackend(std::string volume, std::shared_ptr<GatewaySet> gateways)
      : volume_(std::move(volume)), gateways_(std::move(gateways)) {}
  const std::string volume_;
  const std::shared_ptr<GatewaySet> gateways_;
};

}  // namespace dst

#endif  // DST_NBDKIT_PLUGIN_GATEWAY_CLIENT_H_
