// The gateway's session with one exporter: negotiation and a
// TransactionSession that carries the volume's transactions to it,
// reconnecting (re-negotiating, refusing an exporter whose size or identity
// changed) and replaying unanswered transactions in order after a broken
// stream or a timeout.
//
// Thread-safe. Callbacks run on the session's thread (`on_change`, the
// Admission) and on the process's completion loop (transactions, pings).
#ifndef DST_SERVICES_GATEWAY_REPLICA_H_
#define DST_SERVICES_GATEWAY_REPLICA_H_

#include <functional>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

#include "dst/v1/exporter.grpc.pb.h"
#include "dst/v1/gateway.pb.h"
#include "services/common/base/limits.h"
#include "services/common/security/tls.h"
#include "services/common/transport/transaction_session.h"
#include "services/gateway/replica_handle.h"

namespace dst {

struct ReplicaOptions {
  std::string address;     // the exporter (address.h syntax)
  std::string client_id;   // sent in negotiation, for the exporter's logs
  bool read_only = false;  // open the export read-only
  int max_message_bytes = kMaxMessageBytes;
  // Deadline of the negotiation (a hung exporter). Default 2 s.
  absl::Duration negotiate_timeout = absl::Seconds(2);
  // gRPC keepalive: ping interval and how long a ping may go unanswered
  // before the link counts as dead. Defaults 2 s and 2 s.
  absl::Duration keepalive = absl::Seconds(2);
  absl::Duration keepalive_timeout = absl::Seconds(2);
  // TLS to the exporter (null or mode off: plaintext).
  std::shared_ptr<Tls> tls;
  TransactionSessionOptions session;  // timeouts, resends, suspend time
};

class Replica final : public ReplicaHandle {
 public:
  explicit Replica(const ReplicaOptions& options);
  Replica(const Replica&) = delete;
  Replica& operator=(const Replica&) = delete;
  ~Replica() override;

  // The stream presents the Admission's epoch as "dst-epoch".
  void Start(std::function<void()> on_change, Admission admission) override;
  // A ping in flight at Stop is answered into the void.
  void Stop() override;
  void Close() override;

  void Submit(v1::Request request, TransactionDone done,
              Payload data = {}) override {
    session_.Submit(std::move(request), std::move(done), std::move(data));
  }
  // A unary call on the channel of the last negotiation.
  absl::StatusOr<v1::ReplicaMetadata> Claim(
      const v1::ClaimRequest& request) override;
  absl::StatusOr<uint64_t> Grow(const v1::GrowRequest& request) override;
  // On the exporter's channel; `done` gets the round trip (not called once
  // Stop has begun).
  void Ping(std::function<void(absl::Duration)> done) override;

  bool connected() const override { return session_.connected(); }
  size_t pending() const override { return session_.pending(); }
  SessionCounters counters() const override {
    return {session_.resends(), session_.timeouts(), session_.reconnects()};
  }
  v1::ReplicaStatus Status() const override;
  const std::string& address() const override { return options_.address; }
  // The geometry of the first successful negotiation (size 0 before).
  v1::Geometry geometry() const;

 private:
  absl::StatusOr<std::unique_ptr<TransactionStream>> Connect(
      const TransactionStreamOptions& stream_options);
  // The stub of the last negotiation, for the unary calls (Claim, Grow).
  absl::StatusOr<std::shared_ptr<v1::Exporter::Stub>> NegotiatedStub() const;

  // Shared with the pings in flight, which may outlive the replica: once
  // closed, their `done` is dropped. A `done` runs under `mu`, so Stop
  // returns only after any running one has finished.
  struct PingGate {
    absl::Mutex mu;
    bool closed ABSL_GUARDED_BY(mu) = false;
  };

  const ReplicaOptions options_;
  Admission admission_;  // set by Start
  const std::shared_ptr<PingGate> pings_ = std::make_shared<PingGate>();
  mutable absl::Mutex mu_;
  v1::Geometry geometry_ ABSL_GUARDED_BY(mu_);
  std::shared_ptr<v1::Exporter::Stub> stub_ ABSL_GUARDED_BY(mu_);
  TransactionSession session_;  // last: its thread uses the members above
};

}  // namespace dst

#endif  // DST_SERVICES_GATEWAY_REPLICA_H_
