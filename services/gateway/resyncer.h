// Resync: brings each returning replica of a mirror back into the in-sync
// set online. Its dirty regions are copied from an in-sync replica, up to
// kResyncDepth regions at once (one, in small chunks, while clients do
// I/O), throttled to the resync rate; then it is flushed and, once the
// flush answered and the state it needs is durable, promoted: it learns
// the volume's generations (a claim on its exporter) and rejoins the set.
//
// Invariant (with MirrorState, which decides): a region's dirty bit clears
// only after its copy was written with FUA, under the range lock, from a
// source that stayed in sync from the read until its answer; a replica
// rejoins only after a flush covering everything it took while out of
// sync, and only with its transactions from before its last miss over
// (drained).
//
// Thread-safety: its state is under the core's lock. Drive(true) may block
// (a claim on an exporter): the volume's worker runs it. Drive(false) and
// the copies' callbacks never block; they run on the replicas' threads.
#ifndef DST_SERVICES_GATEWAY_RESYNCER_H_
#define DST_SERVICES_GATEWAY_RESYNCER_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/time/time.h"

#include "dst/v1/gateway.pb.h"
#include "services/gateway/region_bitmap.h"
#include "services/gateway/volume_core.h"

namespace dst {

class Resyncer {
 public:
  // Regions copied at once per replica.
  static constexpr size_t kResyncDepth = 4;
  // Resync yields to clients: while they do I/O (a request within
  // kYieldWindow), one region is copied at a time, in chunks of at most
  // kYieldChunkBytes, so that a client's request at the source waits behind
  // one small copy at most. Idle, resync runs at full depth and transfer
  // size (and the rate limit, if set, applies either way).
  static constexpr absl::Duration kYieldWindow = absl::Milliseconds(100);
  static constexpr uint64_t kYieldChunkBytes = 128u << 10;
  // How far behind its schedule a throttled resync may catch up (copies
  // due that long ago still start, up to the depth).
  static constexpr absl::Duration kPaceSlack = absl::Milliseconds(50);
  // The pause before a replica whose copy or promotion failed is tried
  // again.
  static constexpr absl::Duration kCopyRetry = absl::Milliseconds(500);

  // Of `core`, which outlives it (its timers shut down first);
  // `kick_worker` asks for a Drive(true) on the worker soon (a promotion
  // flush answered). `yield_chunk_bytes`: tests shrink it.
  Resyncer(VolumeCore& core, std::function<void()> kick_worker,
           uint64_t yield_chunk_bytes = kYieldChunkBytes);
  Resyncer(const Resyncer&) = delete;
  Resyncer& operator=(const Resyncer&) = delete;

  // Starts region copies and promotion flushes; finishes promotions whose
  // flush answered (blocking: a claim on the exporter) only when
  // `promote`, else leaves that to the worker.
  void Drive(bool promote);

  // dstctl resync: the rate (0: unthrottled), stop/start, and a full
  // resync of a replica (every region dirty). `done` runs once what it
  // changed is durable.
  void Configure(const v1::ResyncRequest& request, VolumeCore::Done done);
  // A resolve changed who is stale: progress so far counts for nothing.
  void ForgetProgressLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(core_.mu);

  // Its part of the volume's status: the rate, whether stopped, and each
  // replica's progress (`status` has its replicas already).
  void ReportLocked(v1::VolumeStatus* status) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(core_.mu);
  // A copy or a resync of replica `index` is under way.
  bool ActiveLocked(size_t index) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(core_.mu);

 private:
  // One replica's resync progress.
  struct Progress {
    uint64_t copied = 0;         // bytes copied by resync, total
    uint64_t copied_before = 0;  // `copied` when this resync began
    uint64_t total = 0;          // dirty bytes when this resync began
    absl::Time started;
    absl::Time next_copy;  // throttle, and the pause after a failure
    // A promotion flush that answered: what it covered, whether it worked.
    bool promotion_answered = false;
    bool promotion_flushed = false;
    RegionBitmap promotion_covered;
    // The last resync that ended in a promotion: its dirty bytes, and the
    // time from its first copy to the promotion.
    uint64_t last_bytes = 0;
    absl::Duration last_took;
  };

  void CopyRegion(size_t target, uint64_t region);
  void CopyChunk(size_t target, uint64_t region, uint64_t offset, uint64_t end);
  void EndCopy(size_t target, uint64_t region, bool ok);
  void FinishPromotion(size_t target);

  VolumeCore& core_;
  const std::function<void()> kick_worker_;
  const uint64_t yield_chunk_bytes_;
  std::vector<Progress> progress_ ABSL_GUARDED_BY(core_.mu);
  bool paused_ ABSL_GUARDED_BY(core_.mu) = false;
  uint64_t rate_ ABSL_GUARDED_BY(core_.mu) = 0;  // bytes/s; 0: unthrottled
  // A Drive is scheduled on the core's timers for when the throttle
  // allows the next copy.
  bool wake_armed_ ABSL_GUARDED_BY(core_.mu) = false;
};

}  // namespace dst

#endif  // DST_SERVICES_GATEWAY_RESYNCER_H_
