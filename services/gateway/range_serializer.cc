// Ordering of overlapping modifications: see range_serializer.h.
#include "services/gateway/range_serializer.h"

#include <utility>

namespace dst {

bool RangeSerializer::BlockedLocked(const Range& range,
                                    size_t waiters_before) const {
  for (const Range& active : active_) {
    if (active.Overlaps(range)) return true;
  }
  // An earlier overlapping waiter goes first.
  for (size_t i = 0; i < waiters_before; ++i) {
    if (waiting_[i].range.Overlaps(range)) return true;
  }
  return false;
}

void RangeSerializer::Acquire(uint64_t offset, uint64_t length,
                              std::function<void()> start) {
  Range range{offset, offset + (length == 0 ? 1 : length)};
  {
    absl::MutexLock lock(&mu_);
    if (BlockedLocked(range, waiting_.size())) {
      waiting_.push_back(Waiter{range, std::move(start)});
      return;
    }
    active_.push_back(range);
  }
  start();
}

void RangeSerializer::Release(uint64_t offset, uint64_t length) {
  Range range{offset, offset + (length == 0 ? 1 : length)};
  std::vector<std::function<void()>> ready;
  {
    absl::MutexLock lock(&mu_);
    for (auto it = active_.begin(); it != active_.end(); ++it) {
      if (it->begin == range.begin && it->end == range.end) {
        active_.erase(it);
        break;
      }
    }
    for (size_t i = 0; i < waiting_.size();) {
      if (BlockedLocked(waiting_[i].range, i)) {
        ++i;
        continue;
      }
      active_.push_back(waiting_[i].range);
      ready.push_back(std::move(waiting_[i].start));
      waiting_.erase(waiting_.begin() + static_cast<std::ptrdiff_t>(i));
    }
  }
  for (auto& start : ready) start();
}

size_t RangeSerializer::in_flight() const {
  absl::MutexLock lock(&mu_);
  return active_.size();
}

size_t RangeSerializer::waiting() const {
  absl::MutexLock lock(&mu_);
  return waiting_.size();
}

}  // namespace dst
