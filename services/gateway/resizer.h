// Online growth of a volume (`dstctl resize`): every replica's exporter is
// asked to grow first; the mirror state takes the new size, with every
// bitmap grown and each replica that did not confirm it out of the set;
// clients see the size only once that state is durable. A replica left
// behind (unreachable, its device too small, an older exporter) is grown
// when it returns (Fencing::Admit) or, still connected, by the worker's
// retries (GrowLagging); resync then copies what it missed.
//
// Invariants:
// - Every in-sync replica's exporter holds the volume's size: one that did
//   not confirm it leaves the set, dirty from the old end on, before the
//   size is used; resync copies to a replica only once it holds the size.
// - The size clients see is durable: after a gateway crash at any point
//   the volume comes back at the old size or the new one, with bitmaps of
//   that size (the state file is replaced whole; a plain volume's size is
//   its exporter's, grown durably before it answers).
// - The volume never shrinks.
//
// Thread-safety: its state is under the core's lock. Resize blocks on the
// exporters (the admin RPC's thread); GrowLagging too (the worker's).
#ifndef DST_SERVICES_GATEWAY_RESIZER_H_
#define DST_SERVICES_GATEWAY_RESIZER_H_

#include <cstdint>
#include <functional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/time/time.h"

#include "services/gateway/volume_core.h"

namespace dst {

class Resizer {
 public:
  // The pause between the worker's attempts to grow a replica left behind.
  static constexpr absl::Duration kGrowRetry = absl::Seconds(5);

  explicit Resizer(VolumeCore& core) : core_(core) {}
  Resizer(const Resizer&) = delete;
  Resizer& operator=(const Resizer&) = delete;

  // Grows the volume to `size` bytes; `done` runs once clients may use it,
  // or with why not: InvalidArgument (not a multiple of the block size),
  // FailedPrecondition (smaller than the volume: it never shrinks; a
  // read-only volume; no in-sync replica could grow), Unavailable (not
  // ready, another resize running), or the failed save's error. The same
  // size again succeeds at once. Blocks on the exporters' Grow calls.
  void Resize(uint64_t size,
              const std::function<void(const absl::Status&)>& done);

  // The worker's pass: each connected, admitted replica whose exporter is
  // smaller than the volume is asked to grow again, every kGrowRetry.
  void GrowLagging();

  // "" or the first broken invariant: an admitted in-sync replica whose
  // exporter does not hold the volume's size (for tests and the crash
  // simulation).
  std::string CheckInvariantsLocked() const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(core_.mu);

 private:
  // True when replica i's exporter holds the volume's (the state's) size.
  bool HoldsSizeLocked(size_t i) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(core_.mu);
  // The state holding `size` was saved (or not): clients see it.
  void Finish(uint64_t from, uint64_t size, const absl::Status& saved,
              const std::function<void(const absl::Status&)>& done);

  VolumeCore& core_;
  bool resizing_ ABSL_GUARDED_BY(core_.mu) = false;
};

}  // namespace dst

#endif  // DST_SERVICES_GATEWAY_RESIZER_H_
