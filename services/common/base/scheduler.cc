// Timer threads: see scheduler.h.
#include "services/common/base/scheduler.h"

#include <utility>

namespace dst {

TimerThreadCore::TimerThreadCore(absl::Duration resolution)
    : resolution_(resolution), thread_([this] { Run(); }) {}

TimerThreadCore::~TimerThreadCore() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    woken_ = true;
    timers_ = {};
  }
  thread_.join();
}

uint64_t TimerThreadCore::NewOwner() {
  absl::MutexLock lock(&mu_);
  return ++owners_;
}

void TimerThreadCore::After(uint64_t owner, absl::Duration delay,
                            std::function<void()> fn) {
  absl::Time when = absl::Now() + delay;
  const int64_t grid = absl::ToInt64Nanoseconds(resolution_);
  if (grid > 0) {
    const int64_t late = absl::ToUnixNanos(when) % grid;
    if (late != 0) when += absl::Nanoseconds(grid - late);
  }
  absl::MutexLock lock(&mu_);
  if (stopping_ || shut_down_.count(owner) != 0) return;
  if (timers_.empty() || when < timers_.top().when) woken_ = true;
  timers_.push(Timer{when, seq_++, owner, std::move(fn)});
}

void TimerThreadCore::Shutdown(uint64_t owner) {
  std::vector<Timer> dropped;  // destroyed outside the lock
  absl::MutexLock lock(&mu_);
  if (!shut_down_.insert(owner).second) return;
  std::vector<Timer> kept;
  while (!timers_.empty()) {
    (timers_.top().owner == owner ? dropped : kept).push_back(timers_.top());
    timers_.pop();
  }
  for (Timer& timer : kept) timers_.push(std::move(timer));
  woken_ = true;
  auto done = [this, owner]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return running_ != owner;
  };
  mu_.Await(absl::Condition(&done));
}

void TimerThreadCore::Run() {
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
    Timer timer = timers_.top();
    timers_.pop();
    running_ = timer.owner;
    mu_.Unlock();
    timer.fn();
    timer.fn = nullptr;  // what it holds is released before Shutdown returns
    mu_.Lock();
    running_ = 0;
  }
}

TimerThread::TimerThread(absl::Duration resolution)
    : core_(resolution), owner_(core_.NewOwner()) {}

void TimerThread::After(absl::Duration delay, std::function<void()> fn) {
  core_.After(owner_, delay, std::move(fn));
}

void TimerThread::Shutdown() { core_.Shutdown(owner_); }

SharedTimers::SharedTimers(absl::Duration resolution) : core_(resolution) {}

namespace {

// One owner of a shared core's callbacks.
class SharedScheduler final : public Scheduler {
 public:
  explicit SharedScheduler(TimerThreadCore& core)
      : core_(core), owner_(core.NewOwner()) {}
  ~SharedScheduler() override { Shutdown(); }

  absl::Time Now() const override { return absl::Now(); }
  void After(absl::Duration delay, std::function<void()> fn) override {
    core_.After(owner_, delay, std::move(fn));
  }
  void Shutdown() override { core_.Shutdown(owner_); }

 private:
  TimerThreadCore& core_;
  const uint64_t owner_;
};

}  // namespace

std::unique_ptr<Scheduler> SharedTimers::Make() {
  return std::make_unique<SharedScheduler>(core_);
}

SchedulerFactory TimerThreads() {
  return [](const std::string&) { return std::make_unique<TimerThread>(); };
}

}  // namespace dst
