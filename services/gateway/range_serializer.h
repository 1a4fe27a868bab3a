// Orders overlapping modifications of a volume: a write, zero or trim whose
// byte range overlaps one in flight (or one already waiting) starts only
// after it completes, in arrival order. Non-overlapping ones run in
// parallel. This is what makes overlapping writes reach every replica in the
// same order: no two of them are ever in flight at once.
//
// Thread-safe. Start callbacks run outside the lock, on the thread that
// called Acquire or Release.
#ifndef DST_SERVICES_GATEWAY_RANGE_SERIALIZER_H_
#define DST_SERVICES_GATEWAY_RANGE_SERIALIZER_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace dst {

class RangeSerializer {
 public:
  // Runs `start` now, or once no earlier overlapping range is in flight or
  // waiting. The caller must Release the same range when done.
  void Acquire(uint64_t offset, uint64_t length, std::function<void()> start);
  void Release(uint64_t offset, uint64_t length);

  size_t in_flight() const;
  size_t waiting() const;

 private:
  struct Range {
    uint64_t begin;
    uint64_t end;  // exclusive
    bool Overlaps(const Range& other) const {
      return begin < other.end && other.begin < end;
    }
  };
  struct Waiter {
    Range range;
    std::function<void()> start;
  };
  bool BlockedLocked(const Range& range, size_t waiters_before) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  mutable absl::Mutex mu_;
  std::vector<Range> active_ ABSL_GUARDED_BY(mu_);
  std::deque<Waiter> waiting_ ABSL_GUARDED_BY(mu_);
};

}  // namespace dst

#endif  // DST_SERVICES_GATEWAY_RANGE_SERIALIZER_H_
