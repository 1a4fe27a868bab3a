// The lag deadlines of one replica: see lag_deadlines.h.
#include "services/gateway/lag_deadlines.h"

#include <algorithm>
#include <utility>
#include <vector>

namespace dst {

LagDeadlines::Ticket LagDeadlines::Start(std::function<void()> expire) {
  absl::MutexLock lock(&mu_);
  // Read under the lock, so that deadlines are queued in their order.
  entries_.push_back(Entry{timers_.Now() + limit_, std::move(expire)});
  ++waiting_;
  if (!armed_) {
    armed_ = true;
    timers_.After(limit_, [this] { OnTimer(); });
  }
  return first_ + entries_.size() - 1;
}

void LagDeadlines::Answer(Ticket ticket) {
  std::function<void()> dropped;  // destroyed outside the lock
  absl::MutexLock lock(&mu_);
  if (ticket < first_ || ticket - first_ >= entries_.size()) return;
  Entry& entry = entries_[ticket - first_];
  if (!entry.expire) return;
  dropped = std::move(entry.expire);
  entry.expire = nullptr;
  --waiting_;
  TrimLocked();
}

size_t LagDeadlines::waiting() const {
  absl::MutexLock lock(&mu_);
  return waiting_;
}

void LagDeadlines::TrimLocked() {
  while (!entries_.empty() && !entries_.front().expire) {
    entries_.pop_front();
    ++first_;
  }
}

void LagDeadlines::OnTimer() {
  std::vector<std::function<void()>> expired;
  {
    absl::MutexLock lock(&mu_);
    armed_ = false;
    const absl::Time now = timers_.Now();
    TrimLocked();
    while (!entries_.empty() && entries_.front().deadline <= now) {
      expired.push_back(std::move(entries_.front().expire));
      entries_.pop_front();
      ++first_;
      --waiting_;
      TrimLocked();
    }
    if (!entries_.empty()) {
      // The timer may have been armed for a deadline answered since: on
      // to the oldest unanswered one.
      armed_ = true;
      timers_.After(
          std::max(entries_.front().deadline - now, absl::ZeroDuration()),
          [this] { OnTimer(); });
    }
  }
  for (auto& expire : expired) expire();
}

}  // namespace dst
