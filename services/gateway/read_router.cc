// Reads of a volume: see read_router.h.
#include "services/gateway/read_router.h"

#include <utility>

#include "absl/strings/str_cat.h"

#include "services/common/base/log.h"
#include "services/common/protocol/checksum.h"
#include "services/common/transport/transaction_stream.h"

namespace dst {

// A read and its failover order.
struct ReadRouter::ReadOp {
  v1::Request request;
  bool client_checksum = false;  // the client asked for the digest
  std::vector<size_t> order;     // in-sync slots, preferred first
  absl::Mutex mu;
  size_t sent = 0;
  size_t failed = 0;
  bool finished = false;
  v1::Reply last_error;
  TransactionDone done;
};

void ReadRouter::Read(v1::Request request, bool client_checksum,
                      TransactionDone done) {
  auto op = std::make_shared<ReadOp>();
  op->client_checksum = client_checksum;
  op->request = std::move(request);
  op->done = std::move(done);
  // In-sync replicas, connected ones first, spread round robin: a
  // disconnected one would hold the read until it returned.
  const size_t first = next_.fetch_add(1, std::memory_order_relaxed);
  {
    absl::MutexLock lock(&core_.mu);
    for (bool connected : {true, false}) {
      for (size_t i = 0; i < core_.slots.size(); ++i) {
        const size_t k = (first + i) % core_.slots.size();
        if (core_.state.replica(k).sync == SyncState::kInSync &&
            core_.slots[k]->replica->connected() == connected) {
          op->order.push_back(k);
        }
      }
    }
  }
  if (op->order.empty()) {
    op->done(ErrorReply(op->request.id(),
                        absl::UnavailableError("no in-sync replica")),
             Payload());
    return;
  }
  Send(op);
}

void ReadRouter::Send(const std::shared_ptr<ReadOp>& op) {
  size_t k;
  {
    absl::MutexLock lock(&op->mu);
    if (op->finished || op->sent >= op->order.size()) return;
    k = op->order[op->sent++];
  }
  ReplicaSlot* slot = core_.slots[k].get();
  LagDeadlines::Ticket lag = 0;
  if (op->order.size() > 1) {
    // Not answered within the lag limit: ask the next replica too.
    lag = slot->lag->Start([this, weak = std::weak_ptr<ReadOp>(op)] {
      std::shared_ptr<ReadOp> op = weak.lock();
      if (op == nullptr) return;
      {
        absl::MutexLock lock(&op->mu);
        if (op->finished || op->sent >= op->order.size()) return;
      }
      core_.metrics.HedgedRead();
      Send(op);
    });
  }
  ReplicaHandle* replica = slot->replica.get();
  uint64_t leaves;
  {
    absl::MutexLock lock(&core_.mu);
    leaves = core_.state.replica(k).leaves;
  }
  replica->Submit(op->request, [this, op, slot, replica, k, leaves, lag](
                                   v1::Reply&& reply, Payload&& data) {
    slot->lag->Answer(lag);
    if (reply.status() == 0) {
      absl::MutexLock lock(&core_.mu);
      if (!core_.state.StillInSync(k, leaves)) {
        reply = ErrorReply(
            reply.id(),
            absl::UnavailableError("it left the in-sync set while the read was "
                                   "out (its answer may be stale)"));
      }
    }
    const v1::ChecksumAlgorithm algorithm = op->request.checksum_algorithm();
    if (reply.status() == 0 && algorithm != v1::CHECKSUM_NONE) {
      absl::Status intact =
          VerifyChecksum(algorithm, data, reply.checksum(), "the data read");
      if (!intact.ok()) {
        slot->checksum_mismatches.fetch_add(1, std::memory_order_relaxed);
        core_.metrics.ChecksumMismatch(k);
        reply = ErrorReply(reply.id(), intact);
        Heal(slot, op->request.offset(), op->request.length());
      } else if (!op->client_checksum) {
        reply.clear_checksum();
      }
    }
    bool next = false;
    {
      absl::MutexLock lock(&op->mu);
      if (op->finished) return;
      if (reply.status() == 0) {
        op->finished = true;
      } else {
        ++op->failed;
        reply.set_message(absl::StrCat("replica ", replica->address(), ": ",
                                       reply.message()));
        op->last_error = reply;
        if (op->sent < op->order.size()) {
          next = true;
        } else if (op->failed == op->sent) {
          op->finished = true;
          reply = op->last_error;
        } else {
          return;  // another replica is still answering
        }
      }
    }
    if (next) {
      // Per request: counted in metrics, logged at debug level only.
      DST_LOG(Debug, "gateway: volume %s: read failed (%s); trying another",
              core_.config.name(), reply.message());
      Send(op);
      return;
    }
    if (reply.status() != 0) data = Payload();
    op->done(std::move(reply), std::move(data));
  });
}

void ReadRouter::Heal(const ReplicaSlot* slot, uint64_t offset,
                      uint64_t length) {
  absl::MutexLock lock(&core_.mu);
  size_t index = core_.slots.size();
  for (size_t i = 0; i < core_.slots.size(); ++i) {
    if (core_.slots[i].get() == slot) index = i;
  }
  if (index == core_.slots.size() || core_.geometry.size() == 0) return;
  const uint64_t region = core_.config.region_bytes();
  if (core_.state.Heal(index, offset / region,
                       (offset + length - 1) / region)) {
    core_.SaveIfRequiredLocked();
  }
}

}  // namespace dst
