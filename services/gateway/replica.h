// The gateway's session with one exporter: a channel, the negotiation, and
// the TransactionStream that carries the volume's transactions to it. A
// background thread (re)connects with exponential backoff and jitter and
// re-negotiates; a replica whose size changed is refused.
//
// Thread-safe. Replays of transactions lost with a broken stream belong to
// the resend engine (a later release): today they fail with UNAVAILABLE.
#ifndef DST_SERVICES_GATEWAY_REPLICA_H_
#define DST_SERVICES_GATEWAY_REPLICA_H_

#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

#include "dst/v1/exporter.grpc.pb.h"
#include "dst/v1/gateway.pb.h"
#include "services/common/transaction_stream.h"

namespace dst {

struct ReplicaOptions {
  std::string address;     // the exporter (address.h syntax)
  std::string client_id;   // sent in negotiation, for the exporter's logs
  bool read_only = false;  // open the export read-only
  int max_message_bytes = 64 << 20;
  TransactionStreamOptions stream;
  absl::Duration negotiate_timeout = absl::Seconds(5);
  absl::Duration min_backoff = absl::Milliseconds(100);
  absl::Duration max_backoff = absl::Seconds(5);
};

class Replica {
 public:
  explicit Replica(const ReplicaOptions& options);
  // Stop(), then closes the stream (failing what is in flight).
  ~Replica();
  Replica(const Replica&) = delete;
  Replica& operator=(const Replica&) = delete;

  // Starts connecting in the background. `on_change` runs (on the
  // connector thread) whenever the replica connects or fails.
  void Start(std::function<void()> on_change);

  // Stops and joins the connector: `on_change` is not called after this
  // returns. Idempotent.
  void Stop();

  // Sends `request`; UNAVAILABLE at once when not connected.
  void Submit(v1::Request request, TransactionDone done);

  bool connected() const;
  // The geometry of the last successful negotiation (size 0 before).
  v1::Geometry geometry() const;
  v1::ReplicaStatus Status() const;
  const std::string& address() const { return options_.address; }

 private:
  void ConnectLoop();
  absl::Status Connect();

  const ReplicaOptions options_;
  std::function<void()> on_change_;
  std::thread connector_;

  mutable absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::shared_ptr<TransactionStream> stream_ ABSL_GUARDED_BY(mu_);
  std::shared_ptr<v1::Exporter::Stub> stub_ ABSL_GUARDED_BY(mu_);
  v1::Geometry geometry_ ABSL_GUARDED_BY(mu_);
  std::string state_ ABSL_GUARDED_BY(mu_) = "connecting";
  std::string last_error_ ABSL_GUARDED_BY(mu_);
};

}  // namespace dst

#endif  // DST_SERVICES_GATEWAY_REPLICA_H_
