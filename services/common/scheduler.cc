// A timer thread: see scheduler.h.
#include "services/common/scheduler.h"

#include <utility>

namespace dst {

TimerThread::TimerThread(absl::Duration resolution)
    : resolution_(resolution), thread_([this] { Run(); }) {}

TimerThread::~TimerThread() { Shutdown(); }

void TimerThread::After(absl::Duration delay, std::function<void()> fn) {
  absl::Time when = absl::Now() + delay;
  const int64_t grid = absl::ToInt64Nanoseconds(resolution_);
  if (grid > 0) {
    const int64_t late = absl::ToUnixNanos(when) % grid;
    if (late != 0) when += absl::Nanoseconds(grid - late);
  }
  absl::MutexLock lock(&mu_);
  if (stopping_) return;
  if (timers_.empty() || when < timers_.top().when) woken_ = true;
  timers_.push(Timer{when, seq_++, std::move(fn)});
}

void TimerThread::Shutdown() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    woken_ = true;
    timers_ = {};
  }
  if (thread_.joinable()) thread_.join();
}

void TimerThread::Run() {
  absl::MutexLock lock(&mu_);
  for (;;) {
    if (stopping_) return;
    if (timers_.empty() || timers_.top().when > absl::Now()) {
      const absl::Time deadline =
          timers_.empty() ? absl::InfiniteFuture() : timers_.top().when;
      mu_.AwaitWithDeadline(absl::Condition(&woken_), deadline);
      woken_ = false;
      continue;
    }
    std::function<void()> fn = timers_.top().fn;
    timers_.pop();
    mu_.Unlock();
    fn();
    mu_.Lock();
  }
}

SchedulerFactory TimerThreads() {
  return [](const std::string&) { return std::make_unique<TimerThread>(); };
}

}  // namespace dst
