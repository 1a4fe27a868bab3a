// Time and deferred work behind one interface, so that the engine runs on
// real threads in the services and on a simulated clock in the crash
// simulation (tests/crash/), where one seed replays one run exactly.
#ifndef DST_SERVICES_COMMON_BASE_SCHEDULER_H_
#define DST_SERVICES_COMMON_BASE_SCHEDULER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <queue>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace dst {

// Thread-safe. Callbacks run one at a time, in due order (ties in the order
// they were scheduled), on the scheduler's own thread; they may schedule
// more.
class Scheduler {
 public:
  virtual ~Scheduler() = default;
  virtual absl::Time Now() const = 0;
  // Runs `fn` once `delay` has passed: never inside this call, even for a
  // zero delay. Dropped after Shutdown.
  virtual void After(absl::Duration delay, std::function<void()> fn) = 0;
  // Drops what is queued and waits for a running callback to return: none
  // runs after this. Idempotent; never called from a callback.
  virtual void Shutdown() = 0;
};

// Makes the schedulers of a component, one per name (a component may keep
// blocking work apart from its timers).
using SchedulerFactory =
    std::function<std::unique_ptr<Scheduler>(const std::string& name)>;

// A thread that sleeps until the next callback is due, serving several
// Schedulers: each is an owner of callbacks, and its Shutdown drops and
// waits for its own alone. Due times are rounded up to `resolution`, so
// that timers armed close together (one per request) fire together, in one
// wake-up.
class TimerThreadCore {
 public:
  explicit TimerThreadCore(absl::Duration resolution);
  ~TimerThreadCore();  // stops the thread; what is queued is dropped
  TimerThreadCore(const TimerThreadCore&) = delete;
  TimerThreadCore& operator=(const TimerThreadCore&) = delete;

  // A new owner id (never 0, never reused).
  uint64_t NewOwner();
  void After(uint64_t owner, absl::Duration delay, std::function<void()> fn);
  // Drops `owner`'s queued callbacks and waits for its running one; later
  // After calls of that owner are dropped.
  void Shutdown(uint64_t owner);

 private:
  struct Timer {
    absl::Time when;
    uint64_t seq;
    uint64_t owner;
    std::function<void()> fn;
    bool operator>(const Timer& other) const {
      return when != other.when ? when > other.when : seq > other.seq;
    }
  };
  void Run();

  const absl::Duration resolution_;
  absl::Mutex mu_;
  std::priority_queue<Timer, std::vector<Timer>, std::greater<Timer>> timers_
      ABSL_GUARDED_BY(mu_);
  uint64_t seq_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t owners_ ABSL_GUARDED_BY(mu_) = 0;
  std::set<uint64_t> shut_down_ ABSL_GUARDED_BY(mu_);  // owners
  uint64_t running_ ABSL_GUARDED_BY(mu_) = 0;  // the owner of the callback
  bool woken_ ABSL_GUARDED_BY(mu_) = false;    // an earlier timer, or stopping
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;  // last: it uses the members above
};

// A Scheduler with a thread of its own.
class TimerThread final : public Scheduler {
 public:
  explicit TimerThread(absl::Duration resolution = absl::Milliseconds(10));
  TimerThread(const TimerThread&) = delete;
  TimerThread& operator=(const TimerThread&) = delete;

  absl::Time Now() const override { return absl::Now(); }
  void After(absl::Duration delay, std::function<void()> fn) override;
  void Shutdown() override;

 private:
  TimerThreadCore core_;
  const uint64_t owner_;
};

// One timer thread for many components (the gateway's volumes' lag timers,
// however many volumes it serves): each Scheduler it makes is Shut down
// alone. Every Scheduler made must be destroyed before this is.
class SharedTimers {
 public:
  explicit SharedTimers(absl::Duration resolution = absl::Milliseconds(10));
  std::unique_ptr<Scheduler> Make();

 private:
  TimerThreadCore core_;
};

// Makes a TimerThread for every name.
SchedulerFactory TimerThreads();

}  // namespace dst

#endif  // DST_SERVICES_COMMON_BASE_SCHEDULER_H_
