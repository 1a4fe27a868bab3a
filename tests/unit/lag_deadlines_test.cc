// LagDeadlines over a manual clock: an answered deadline never expires;
// overdue ones expire together, oldest first, in one wake-up; one timer
// serves a replica that answers in time, however many transactions it
// takes; the timer moves on to the oldest unanswered deadline; stale
// tickets are ignored; an expiry may start a new deadline.
#include "services/gateway/lag_deadlines.h"

#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tests/unit/engine_fakes.h"

namespace dst {
namespace {

constexpr absl::Duration kLimit = absl::Milliseconds(100);

class LagDeadlinesTest : public ::testing::Test {
 protected:
  LagDeadlines::Ticket Start(const std::string& name) {
    return lag_.Start([this, name] { expired_.push_back(name); });
  }
  void Advance(absl::Duration d) {
    now_ += d;
    timers_.FireDue();
  }

  absl::Time now_ = absl::UnixEpoch() + absl::Hours(1);
  ManualScheduler timers_{&now_};
  LagDeadlines lag_{timers_, kLimit};
  std::vector<std::string> expired_;
};

TEST_F(LagDeadlinesTest, AnAnsweredDeadlineNeverExpires) {
  const LagDeadlines::Ticket a = Start("a");
  Start("b");
  EXPECT_EQ(lag_.waiting(), 2u);
  lag_.Answer(a);
  EXPECT_EQ(lag_.waiting(), 1u);
  Advance(kLimit);
  EXPECT_EQ(expired_, std::vector<std::string>{"b"});
  EXPECT_EQ(lag_.waiting(), 0u);
}

TEST_F(LagDeadlinesTest, OverdueDeadlinesExpireTogetherOldestFirst) {
  Start("a");
  now_ += absl::Milliseconds(1);
  Start("b");
  now_ += absl::Milliseconds(1);
  Start("c");
  EXPECT_EQ(timers_.scheduled(), 1u) << "one timer for the replica";
  Advance(absl::Seconds(1));
  EXPECT_EQ(expired_, (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(timers_.scheduled(), 1u) << "all expired in one wake-up";
  EXPECT_EQ(timers_.queued(), 0u) << "nothing left to wait for";
}

TEST_F(LagDeadlinesTest, AReplicaAnsweringInTimeCostsOneTimerPerLimit) {
  // 1,000 transactions over one lag limit, each answered 50 µs after it
  // started waiting: one timer, not one per transaction.
  for (int i = 0; i < 1000; ++i) {
    const LagDeadlines::Ticket t = Start("x");
    now_ += absl::Microseconds(50);
    lag_.Answer(t);
  }
  EXPECT_EQ(timers_.scheduled(), 1u);
  Advance(kLimit);
  EXPECT_TRUE(expired_.empty());
  EXPECT_EQ(timers_.queued(), 0u) << "re-armed with nothing waiting";
  EXPECT_EQ(lag_.waiting(), 0u);
}

TEST_F(LagDeadlinesTest, TheTimerMovesOnToTheOldestUnansweredDeadline) {
  const LagDeadlines::Ticket a = Start("a");
  now_ += absl::Milliseconds(50);
  Start("b");  // due 50 ms after a
  lag_.Answer(a);
  Advance(absl::Milliseconds(50));  // a's deadline: b's is not yet
  EXPECT_TRUE(expired_.empty()) << "expired before its deadline";
  EXPECT_EQ(timers_.queued(), 1u) << "re-armed for b";
  Advance(absl::Milliseconds(49));
  EXPECT_TRUE(expired_.empty());
  Advance(absl::Milliseconds(1));
  EXPECT_EQ(expired_, std::vector<std::string>{"b"});
}

TEST_F(LagDeadlinesTest, StaleTicketsAreIgnored) {
  const LagDeadlines::Ticket a = Start("a");
  Advance(kLimit);
  ASSERT_EQ(expired_, std::vector<std::string>{"a"});
  const LagDeadlines::Ticket b = Start("b");
  lag_.Answer(a);      // expired already
  lag_.Answer(0);      // none
  lag_.Answer(b + 1);  // never started
  EXPECT_EQ(lag_.waiting(), 1u);
  lag_.Answer(b);
  lag_.Answer(b);  // twice
  EXPECT_EQ(lag_.waiting(), 0u);
  Advance(kLimit);
  EXPECT_EQ(expired_, std::vector<std::string>{"a"});
}

TEST_F(LagDeadlinesTest, AnExpiryMayStartAnotherDeadline) {
  // As a write whose takers left the set waits the lag limit again.
  lag_.Start([this] {
    expired_.push_back("first");
    Start("again");
  });
  Advance(kLimit);
  EXPECT_EQ(expired_, std::vector<std::string>{"first"});
  Advance(kLimit);
  EXPECT_EQ(expired_, (std::vector<std::string>{"first", "again"}));
}

}  // namespace
}  // namespace dst
