// The WritePath alone, over in-memory replicas and a state store that
// holds saves until the test releases them (engine_fakes.h): a write goes
// out only once the state it relies on is durable; a laggard leaves the
// set and the acknowledgement waits until that is durable; a write no
// replica took is an error; an ABORTED reply fences the volume; overlapping
// writes reach every replica in submission order; lag deadlines take one
// timer per replica, not one per write.
#include "services/gateway/write_path.h"

#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tests/unit/engine_fakes.h"

namespace dst {
namespace {

class WritePathTest : public EngineTest {
 protected:
  void Make(size_t n) {
    EngineTest::Make(n);
    writes_ = std::make_unique<WritePath>(*core_);
  }

  struct Answer {
    int calls = 0;
    v1::Reply reply;
  };
  // Writes `c` over `region`; the answer lands in the returned slot.
  std::shared_ptr<Answer> Write(uint64_t region, char c) {
    auto answer = std::make_shared<Answer>();
    v1::Request request;
    request.set_op(v1::OP_WRITE);
    request.set_id(++next_id_);
    request.set_offset(region * kRegion);
    request.set_length(kRegion);
    const std::string data(kRegion, c);
    writes_->Submit(request, Payload::Copy(data.data(), data.size()),
                    [answer](v1::Reply&& reply, Payload&&) {
                      ++answer->calls;
                      answer->reply = reply;
                    });
    return answer;
  }
  size_t Writes(size_t replica) const {
    size_t writes = 0;
    for (const v1::Request& r : replicas_[replica]->ops) {
      writes += r.op() == v1::OP_WRITE;
    }
    return writes;
  }
  void ReleaseHeld(size_t replica) {
    std::vector<std::function<void()>> held;
    held.swap(replicas_[replica]->held);
    for (auto& answer : held) answer();
    events_.Pump();
  }
  void FireTimers() {
    for (ManualScheduler* scheduler : schedulers_) scheduler->FireDue();
    events_.Pump();
  }

  std::unique_ptr<WritePath> writes_;
  uint64_t next_id_ = 0;
};

TEST_F(WritePathTest, AWriteGoesOutOnlyOnceTheStateItReliesOnIsDurable) {
  Make(2);
  store_->hold = true;
  auto answer = Write(3, 'a');
  events_.Pump();
  EXPECT_EQ(Writes(0) + Writes(1), 0u)
      << "sent before its region's activity log was durable";
  ASSERT_EQ(store_->held.size(), 1u);
  store_->Release();
  events_.Pump();
  EXPECT_EQ(Writes(0), 1u);
  EXPECT_EQ(Writes(1), 1u);
  ASSERT_EQ(answer->calls, 1);
  EXPECT_EQ(answer->reply.status(), 0) << answer->reply.message();
  EXPECT_EQ(replicas_[0]->Region(3), std::string(kRegion, 'a'));
  EXPECT_EQ(replicas_[1]->Region(3), std::string(kRegion, 'a'));
}

TEST_F(WritePathTest, ALaggardLeavesTheSetAndTheAckWaitsUntilThatIsDurable) {
  Make(2);
  Write(1, 'w');  // the region's activity log, saved
  events_.Pump();
  replicas_[1]->hold_writes = true;
  store_->hold = true;
  auto answer = Write(1, 'x');
  events_.Pump();
  EXPECT_EQ(answer->calls, 0) << "the laggard still has its lag limit";
  now_ += absl::Milliseconds(core_->config.lag_limit_ms());
  FireTimers();
  EXPECT_FALSE(InSync(1)) << "the laggard left the set";
  EXPECT_EQ(answer->calls, 0) << "acknowledged before that was durable";
  store_->Release();
  events_.Pump();
  ASSERT_EQ(answer->calls, 1);
  EXPECT_EQ(answer->reply.status(), 0) << answer->reply.message();
  EXPECT_EQ(Dirty(1), 1u) << "the region it missed is dirty for it";
  store_->hold = false;
  ReleaseHeld(1);  // it answers late: nothing more to answer
  EXPECT_EQ(answer->calls, 1);
  absl::MutexLock lock(&core_->mu);
  EXPECT_EQ(core_->state.CheckInvariants(), "");
}

TEST_F(WritePathTest, WritesAnsweredInTimeShareOneLagTimerPerReplica) {
  Make(2);
  for (uint64_t r = 0; r < kRegions; ++r) Write(r, 'a');  // activity log
  events_.Pump();
  ManualScheduler& timers = *schedulers_[0];  // the core's "timers"
  const size_t before = timers.scheduled();
  for (int i = 0; i < 20; ++i) {
    auto answer = Write(i % kRegions, 'b');
    events_.Pump();
    ASSERT_EQ(answer->calls, 1);
  }
  EXPECT_LE(timers.scheduled() - before, 1u)
      << "a lag timer per write, not per replica";
}

TEST_F(WritePathTest, ALaggardsOverdueWritesAllFinishInOneWakeUp) {
  Make(2);
  for (uint64_t r = 0; r < 4; ++r) Write(r, 'a');  // activity log
  events_.Pump();
  replicas_[1]->hold_writes = true;
  ManualScheduler& timers = *schedulers_[0];
  const size_t before = timers.scheduled();
  std::vector<std::shared_ptr<Answer>> answers;
  for (uint64_t r = 0; r < 4; ++r) {
    answers.push_back(Write(r, 'b'));
    now_ += absl::Milliseconds(1);
  }
  events_.Pump();
  EXPECT_LE(timers.scheduled() - before, 1u) << "a lag timer per write";
  now_ += absl::Milliseconds(core_->config.lag_limit_ms());
  FireTimers();
  for (const auto& answer : answers) {
    ASSERT_EQ(answer->calls, 1);
    EXPECT_EQ(answer->reply.status(), 0) << answer->reply.message();
  }
  EXPECT_FALSE(InSync(1));
  EXPECT_EQ(Dirty(1), 4u) << "every region it missed is dirty for it";
  ReleaseHeld(1);
  absl::MutexLock lock(&core_->mu);
  EXPECT_EQ(core_->state.CheckInvariants(), "");
}

TEST_F(WritePathTest, AWriteThatNoReplicaTookIsAnError) {
  Make(2);
  replicas_[0]->fail_writes = replicas_[1]->fail_writes = true;
  auto answer = Write(2, 'f');
  events_.Pump();
  ASSERT_EQ(answer->calls, 1);
  EXPECT_NE(answer->reply.status(), 0);
  EXPECT_NE(answer->reply.message().find("injected write error"),
            std::string::npos)
      << answer->reply.message();
  absl::MutexLock lock(&core_->mu);
  EXPECT_EQ(core_->state.CheckInvariants(), "");
}

TEST_F(WritePathTest, AnAbortedReplyFencesTheVolumeAndLaterWritesAreRefused) {
  Make(2);
  replicas_[0]->abort_writes = true;
  auto answer = Write(4, 'q');
  events_.Pump();
  ASSERT_EQ(answer->calls, 1);
  EXPECT_NE(answer->reply.status(), 0) << "a fenced write is not acknowledged";
  {
    absl::MutexLock lock(&core_->mu);
    EXPECT_FALSE(core_->fenced.empty());
  }
  const size_t sent = Writes(0) + Writes(1);
  auto later = Write(5, 'r');
  events_.Pump();
  ASSERT_EQ(later->calls, 1);
  EXPECT_EQ(later->reply.status(),
            static_cast<int>(absl::StatusCode::kAborted));
  EXPECT_EQ(Writes(0) + Writes(1), sent) << "nothing sent once fenced";
}

TEST_F(WritePathTest, OverlappingWritesReachEveryReplicaInSubmissionOrder) {
  Make(2);
  Write(6, '0');
  events_.Pump();
  replicas_[0]->hold_writes = true;
  auto first = Write(6, 'A');
  auto second = Write(6, 'B');
  events_.Pump();
  EXPECT_EQ(Writes(1), 2u) << "only the first of the two was sent";
  EXPECT_EQ(replicas_[1]->Region(6), std::string(kRegion, 'A'));
  replicas_[0]->hold_writes = false;
  ReleaseHeld(0);
  ASSERT_EQ(first->calls, 1);
  ASSERT_EQ(second->calls, 1);
  EXPECT_EQ(first->reply.status(), 0) << first->reply.message();
  EXPECT_EQ(second->reply.status(), 0) << second->reply.message();
  EXPECT_EQ(replicas_[0]->Region(6), std::string(kRegion, 'B'));
  EXPECT_EQ(replicas_[1]->Region(6), std::string(kRegion, 'B'));
}

}  // namespace
}  // namespace dst
