// TimerThread: callbacks run in due order on its thread, never inside
// After, and none runs after Shutdown. SharedTimers: the same, per
// scheduler, on one thread; a scheduler's Shutdown touches only its own.
#include "services/common/base/scheduler.h"

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

TEST(SharedTimersTest, SchedulersShareOneThreadInDueOrder) {
  SharedTimers shared(absl::Milliseconds(1));
  std::unique_ptr<Scheduler> a = shared.Make();
  std::unique_ptr<Scheduler> b = shared.Make();
  absl::Mutex mu;
  std::vector<int> order;
  std::vector<std::thread::id> threads;
  absl::Notification done;
  auto record = [&](int n) {
    absl::MutexLock lock(&mu);
    order.push_back(n);
    threads.push_back(std::this_thread::get_id());
    if (order.size() == 3) done.Notify();
  };
  a->After(absl::Milliseconds(40), [&] { record(3); });
  b->After(absl::Milliseconds(20), [&] { record(2); });
  a->After(absl::ZeroDuration(), [&] { record(1); });
  ASSERT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(10)));
  absl::MutexLock lock(&mu);
  EXPECT_EQ(order, (std::vector<int>{1, 2, 3}));
  EXPECT_EQ(threads[0], threads[1]);
  EXPECT_EQ(threads[1], threads[2]);
  EXPECT_NE(threads[0], std::this_thread::get_id());
}

TEST(SharedTimersTest, AShutdownDropsOnlyItsSchedulersCallbacks) {
  SharedTimers shared(absl::Milliseconds(1));
  std::unique_ptr<Scheduler> a = shared.Make();
  std::unique_ptr<Scheduler> b = shared.Make();
  std::atomic<int> a_runs{0};
  absl::Notification b_ran;
  a->After(absl::Milliseconds(30), [&] { ++a_runs; });
  b->After(absl::Milliseconds(30), [&] { b_ran.Notify(); });
  a->Shutdown();
  a->After(absl::ZeroDuration(), [&] { ++a_runs; });
  EXPECT_TRUE(b_ran.WaitForNotificationWithTimeout(absl::Seconds(10)));
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(a_runs, 0);
  // b goes on after a is destroyed.
  a.reset();
  absl::Notification again;
  b->After(absl::ZeroDuration(), [&] { again.Notify(); });
  EXPECT_TRUE(again.WaitForNotificationWithTimeout(absl::Seconds(10)));
}

TEST(SharedTimersTest, AShutdownWaitsForItsRunningCallbackAlone) {
  SharedTimers shared(absl::Milliseconds(1));
  std::unique_ptr<Scheduler> a = shared.Make();
  std::unique_ptr<Scheduler> b = shared.Make();
  std::atomic<bool> finished{false};
  absl::Notification started;
  absl::Notification release;
  a->After(absl::ZeroDuration(), [&] {
    started.Notify();
    release.WaitForNotificationWithTimeout(absl::Seconds(10));
    finished = true;
  });
  ASSERT_TRUE(started.WaitForNotificationWithTimeout(absl::Seconds(10)));
  // b's Shutdown does not wait for a's callback (it is not b's).
  absl::Notification b_down;
  std::thread stopper([&] {
    b->Shutdown();
    b_down.Notify();
  });
  EXPECT_TRUE(b_down.WaitForNotificationWithTimeout(absl::Seconds(5)));
  EXPECT_FALSE(finished);
  release.Notify();
  stopper.join();
  a->Shutdown();
  EXPECT_TRUE(finished);
}

}  // namespace
}  // namespace dst
