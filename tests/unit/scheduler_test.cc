// TimerThread: callbacks run in due order on its thread, never inside
// After, and none runs after Shutdown.
#include "services/common/scheduler.h"

#include <atomic>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"

namespace dst {
namespace {

TEST(TimerThreadTest, RunsCallbacksInDueOrderOnItsThread) {
  TimerThread timers(absl::Milliseconds(1));
  absl::Mutex mu;
  std::vector<int> order;
  std::thread::id ran_on;
  absl::Notification done;
  timers.After(absl::Milliseconds(30), [&] {
    absl::MutexLock lock(&mu);
    order.push_back(3);
    done.Notify();
  });
  timers.After(absl::Milliseconds(10), [&] {
    absl::MutexLock lock(&mu);
    order.push_back(2);
  });
  timers.After(absl::ZeroDuration(), [&] {
    absl::MutexLock lock(&mu);
    order.push_back(1);
    ran_on = std::this_thread::get_id();
  });
  ASSERT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(10)));
  absl::MutexLock lock(&mu);
  EXPECT_EQ(order, (std::vector<int>{1, 2, 3}));
  EXPECT_NE(ran_on, std::this_thread::get_id());
}

TEST(TimerThreadTest, AnEarlierTimerWakesTheThread) {
  TimerThread timers(absl::Milliseconds(1));
  absl::Notification early;
  timers.After(absl::Hours(1), [] {});
  const absl::Time start = absl::Now();
  timers.After(absl::Milliseconds(5), [&] { early.Notify(); });
  ASSERT_TRUE(early.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
}

TEST(TimerThreadTest, NothingRunsAfterShutdown) {
  std::atomic<int> runs{0};
  TimerThread timers(absl::Milliseconds(1));
  timers.After(absl::Milliseconds(50), [&] { ++runs; });
  timers.Shutdown();
  timers.After(absl::ZeroDuration(), [&] { ++runs; });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(runs, 0);
}

TEST(TimerThreadTest, ShutdownWaitsForARunningCallback) {
  std::atomic<bool> finished{false};
  absl::Notification started;
  TimerThread timers(absl::Milliseconds(1));
  timers.After(absl::ZeroDuration(), [&] {
    started.Notify();
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    finished = true;
  });
  ASSERT_TRUE(started.WaitForNotificationWithTimeout(absl::Seconds(10)));
  timers.Shutdown();
  EXPECT_TRUE(finished);
}

}  // namespace
}  // namespace dst
