// Reads of a volume: each goes to one in-sync replica, connected ones
// first, spread round robin; on an error it fails over to the next, and
// one unanswered after the lag limit is also sent to the next (a hedged
// read: the first good answer wins).
//
// Invariant: a read is answered only with data from a replica that was in
// sync when the read was sent and still is, with no departure in between,
// when it answers (MirrorState::StillInSync), and whose data passed its
// checksum. A replica whose data failed its checksum has that region
// marked dirty (it leaves the in-sync set, and resync copies the region
// back) when another replica is in sync.
//
// Thread-safe. Replies run on the replicas' threads, hedges on the core's
// timers (the replica's lag deadline); neither blocks.
#ifndef DST_SERVICES_GATEWAY_READ_ROUTER_H_
#define DST_SERVICES_GATEWAY_READ_ROUTER_H_

#include <atomic>
#include <cstdint>
#include <memory>

#include "dst/v1/exporter.pb.h"
#include "services/common/transport/transaction_table.h"
#include "services/gateway/volume_core.h"

namespace dst {

class ReadRouter {
 public:
  // Of `core`, which outlives it.
  explicit ReadRouter(VolumeCore& core) : core_(core) {}
  ReadRouter(const ReadRouter&) = delete;
  ReadRouter& operator=(const ReadRouter&) = delete;

  // Reads what `request` (validated, its checksum algorithm set) asks for;
  // `done` runs once, with the data or the last replica's error.
  // `client_checksum`: the client asked for the digest, which the reply
  // keeps (else it is checked and dropped).
  void Read(v1::Request request, bool client_checksum, TransactionDone done);

 private:
  struct ReadOp;
  // Sends `op` to the next replica of its order.
  void Send(const std::shared_ptr<ReadOp>& op);
  // `slot` returned damaged data for [offset, +length): marked dirty for
  // it when another replica is in sync.
  void Heal(const ReplicaSlot* slot, uint64_t offset, uint64_t length);

  VolumeCore& core_;
  std::atomic<uint64_t> next_{0};  // round robin
};

}  // namespace dst

#endif  // DST_SERVICES_GATEWAY_READ_ROUTER_H_
