// Block status of a volume: see block_status.h.
#include "services/gateway/block_status.h"

#include <utility>

#include "services/common/base/log.h"
#include "services/common/transport/transaction_stream.h"
#include "services/gateway/extents.h"

namespace dst {
namespace {

// What is always true of a range: it is data.
std::vector<Extent> AllData(uint64_t length) { return {Extent{length, 0}}; }

v1::Reply ReplyWith(uint64_t id, const std::vector<Extent>& extents) {
  v1::Reply reply;
  reply.set_id(id);
  for (const Extent& e : extents) {
    v1::BlockExtent* out = reply.add_extents();
    out->set_length(e.length);
    out->set_flags(e.flags);
  }
  return reply;
}

}  // namespace

struct BlockStatus::Op {
  v1::Request request;
  TransactionDone done;
  absl::Mutex mu;
  std::vector<std::vector<Extent>> answers ABSL_GUARDED_BY(mu);
  std::vector<bool> answered ABSL_GUARDED_BY(mu);
  size_t waiting ABSL_GUARDED_BY(mu) = 0;
};

std::vector<Extent> BlockStatus::AnswerOf(const v1::Request& request,
                                          const v1::Reply& reply) {
  if (reply.status() != 0 || reply.extents().empty()) {
    return AllData(request.length());
  }
  std::vector<Extent> extents;
  extents.reserve(reply.extents_size());
  uint64_t covered = 0;
  for (const v1::BlockExtent& e : reply.extents()) {
    covered += e.length();
    if (e.length() == 0 || covered > request.length() ||
        (e.flags() & ~(kExtentHole | kExtentZero)) != 0) {
      return AllData(request.length());
    }
    extents.push_back(Extent{e.length(), e.flags()});
  }
  return extents;
}

void BlockStatus::Query(v1::Request request, TransactionDone done) {
  const uint64_t id = request.id();
  std::vector<size_t> asked;
  bool cannot_say = false;  // an in-sync replica that cannot be asked
  {
    absl::MutexLock lock(&core_.mu);
    for (size_t k = 0; k < core_.slots.size(); ++k) {
      const ReplicaSlot& slot = *core_.slots[k];
      if (core_.state.replica(k).sync != SyncState::kInSync) continue;
      if (!slot.block_status || !slot.replica->connected()) {
        cannot_say = true;
        continue;
      }
      asked.push_back(k);
    }
  }
  if (asked.empty() && !cannot_say) {
    done(ErrorReply(id, absl::UnavailableError("no in-sync replica")),
         Payload());
    return;
  }
  if (cannot_say) {
    // Merged with anything, all data is all data: no need to ask.
    done(ReplyWith(id, AllData(request.length())), Payload());
    return;
  }
  auto op = std::make_shared<Op>();
  op->request = std::move(request);
  op->done = std::move(done);
  {
    absl::MutexLock lock(&op->mu);
    op->answers.resize(asked.size());
    op->answered.assign(asked.size(), false);
    op->waiting = asked.size();
  }
  for (size_t i = 0; i < asked.size(); ++i) {
    const size_t k = asked[i];
    ReplicaSlot* slot = core_.slots[k].get();
    LagDeadlines::Ticket lag = 0;
    if (asked.size() > 1) {
      // A replica slower than the lag limit does not hold the answer.
      lag = slot->lag->Start([this, i, weak = std::weak_ptr<Op>(op)] {
        std::shared_ptr<Op> op = weak.lock();
        if (op != nullptr) Answered(op, i, AllData(op->request.length()));
      });
    }
    slot->replica->Submit(op->request, [this, op, slot, i, lag](
                                           v1::Reply&& reply, Payload&&) {
      slot->lag->Answer(lag);
      if (reply.status() != 0) {
        DST_LOG(Debug,
                "gateway: volume %s: block status from %s failed (%s); "
                "counted as data",
                core_.config.name(), slot->replica->address(), reply.message());
      }
      Answered(op, i, AnswerOf(op->request, reply));
    });
  }
}

void BlockStatus::Answered(const std::shared_ptr<Op>& op, size_t i,
                           std::vector<Extent> extents) {
  std::vector<std::vector<Extent>> answers;
  {
    absl::MutexLock lock(&op->mu);
    if (op->answered[i]) return;  // its lag expired first, or the reverse
    op->answered[i] = true;
    op->answers[i] = std::move(extents);
    if (--op->waiting != 0) return;
    answers = std::move(op->answers);
  }
  op->done(ReplyWith(op->request.id(), MergeExtents(answers)), Payload());
}

}  // namespace dst
