// What a volume needs of one replica: a session that carries transactions
// to an exporter, outliving broken streams. Replica (replica.h) implements
// it over gRPC; the crash simulation (tests/crash/) over simulated
// exporters, links and faults.
#ifndef DST_SERVICES_GATEWAY_REPLICA_HANDLE_H_
#define DST_SERVICES_GATEWAY_REPLICA_HANDLE_H_

#include <cstdint>
#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

#include "dst/v1/exporter.pb.h"
#include "dst/v1/gateway.pb.h"
#include "services/common/transport/payload.h"
#include "services/common/transport/transaction_table.h"

namespace dst {

// Counters of a replica's session since it started.
struct SessionCounters {
  uint64_t resends = 0;     // transactions sent again on a new stream
  uint64_t timeouts = 0;    // streams given up for an unanswered transaction
  uint64_t reconnects = 0;  // streams re-established
};

// Thread-safe. Callbacks (`on_change`, the Admission, a transaction's
// `done`) never run inside the call that registered them, must not block,
// and run on the implementation's threads.
class ReplicaHandle {
 public:
  // Decides, after each negotiation, whether the exporter may carry the
  // volume's transactions (same data history, not fenced), claiming its
  // epoch first. Returns the epoch to present on the stream (0: none) or
  // why the replica is refused (retried after a backoff). The stream is not
  // used before it returns.
  using Admission =
      std::function<absl::StatusOr<uint64_t>(const v1::NegotiateReply&)>;

  virtual ~ReplicaHandle() = default;

  virtual const std::string& address() const = 0;
  // Starts connecting in the background. `on_change` runs whenever the
  // replica connects or loses its stream.
  virtual void Start(std::function<void()> on_change, Admission admission) = 0;
  // Neither `on_change` nor a Ping's `done` is called after this returns.
  virtual void Stop() = 0;
  // Stop(), then every transaction still pending is answered or failed,
  // its `done` called, before this returns; a later Submit fails.
  virtual void Close() = 0;

  // Sends `request` with its data, in submission order; waits for a
  // connection up to the session's suspend time, resends after a lost
  // stream or a timeout, and fails after its last resend.
  virtual void Submit(v1::Request request, TransactionDone done,
                      Payload data = {}) = 0;
  // A Claim on the exporter (fencing epoch, generations). Blocks.
  virtual absl::StatusOr<v1::ReplicaMetadata> Claim(
      const v1::ClaimRequest& request) = 0;
  // Grows the exporter's export to at least `request.size()` bytes; its
  // size now. Blocks.
  virtual absl::StatusOr<uint64_t> Grow(const v1::GrowRequest& request) = 0;
  // A keepalive round trip; `done` is not called when the ping fails.
  virtual void Ping(std::function<void(absl::Duration)> done) = 0;

  virtual bool connected() const = 0;
  // Transactions submitted and not yet answered or failed.
  virtual size_t pending() const = 0;
  virtual SessionCounters counters() const = 0;
  virtual v1::ReplicaStatus Status() const = 0;
};

}  // namespace dst

#endif  // DST_SERVICES_GATEWAY_REPLICA_HANDLE_H_
