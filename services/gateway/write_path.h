// The write path of a volume: modifications (writes, zeroes, trims) and
// flushes, fanned out to the replicas MirrorState plans, with the ack rule.
//
// - Overlapping modifications run one at a time, in submission order (the
//   range lock, shared with resync copies), so every replica applies them
//   in the same order.
// - A modification is sent only once the state it relies on is durable
//   (its regions in the activity log, the dirty bits of replicas it skips);
//   then it is planned again with the state then current.
// - Once a replica the plan required took it, the others get at most
//   `lag_limit_ms` more; a laggard or a failed replica leaves the in-sync
//   set with the regions it missed dirty, and the reply goes once that
//   state is durable. A write that no in-sync replica took is an error. A
//   replica answering ABORTED (claimed by a newer gateway) fences the
//   volume.
// - A flush goes to every in-sync replica and to out-of-sync ones holding
//   unflushed writes; one that fails or lags leaves the set with what it
//   held unflushed marked dirty.
//
// Invariant: no acknowledgement before every replica left out of it is
// durably recorded as out of sync for what it missed (MirrorState decides,
// VolumeCore::DurableOrWaitLocked holds the reply).
//
// Thread-safe. Replies run on the replicas' threads, lag deadlines (one
// timer per replica, on its oldest unanswered transaction) on the core's
// timers, saved-state callbacks on the store's thread; none blocks.
#ifndef DST_SERVICES_GATEWAY_WRITE_PATH_H_
#define DST_SERVICES_GATEWAY_WRITE_PATH_H_

#include <functional>
#include <memory>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"

#include "dst/v1/exporter.pb.h"
#include "services/common/transport/payload.h"
#include "services/common/transport/transaction_table.h"
#include "services/gateway/volume_core.h"

namespace dst {

class WritePath {
 public:
  // Of `core`, which outlives it.
  explicit WritePath(VolumeCore& core) : core_(core) {}
  WritePath(const WritePath&) = delete;
  WritePath& operator=(const WritePath&) = delete;

  // A validated modification with its data (checksum set), or a flush;
  // `done` runs once.
  void Submit(v1::Request request, Payload data, TransactionDone done);

 private:
  struct Fanout;
  // Plans `fanout` and sends it once the state the plan relies on is
  // durable.
  void Send(const std::shared_ptr<Fanout>& fanout);
  // Plans it and fills its targets: true to send it now, or with
  // `*refused` set to answer it so; false when it waits for a save.
  bool PlanLocked(const std::shared_ptr<Fanout>& fanout, absl::Status* refused)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(core_.mu);
  void OnReply(const std::shared_ptr<Fanout>& fanout, size_t target,
               v1::Reply&& reply);
  // Starts the lag deadline of every target yet to answer, on its
  // replica's LagDeadlines; at one, the fanout finishes without it. Under
  // fanout->mu.
  void StartLagLocked(const std::shared_ptr<Fanout>& fanout);
  void Finish(const std::shared_ptr<Fanout>& fanout);
  // What its reply waits for, or what to run once the lock is released.
  void FinishLocked(const std::shared_ptr<Fanout>& fanout,
                    std::vector<std::function<void()>>* ready)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(core_.mu);

  VolumeCore& core_;
};

}  // namespace dst

#endif  // DST_SERVICES_GATEWAY_WRITE_PATH_H_
