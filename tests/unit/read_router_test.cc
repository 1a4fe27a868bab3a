// The ReadRouter alone, over in-memory replicas (engine_fakes.h): reads
// spread over the in-sync replicas and never reach an out-of-sync one; an
// error fails over to the next; an answer from a replica that left the
// set while the read was out is not served; data failing its checksum is
// not served and its region is healed; a read unanswered past the lag
// limit is hedged to the next replica, and answered once.
#include "services/gateway/read_router.h"

#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tests/unit/engine_fakes.h"

namespace dst {
namespace {

class ReadRouterTest : public EngineTest {
 protected:
  void Make(size_t n) {
    EngineTest::Make(n);
    router_ = std::make_unique<ReadRouter>(*core_);
  }

  // Starts a read of `region`; its answer lands in the returned slot.
  struct Answer {
    int calls = 0;
    v1::Reply reply;
    std::string data;
  };
  std::shared_ptr<Answer> Read(uint64_t region) {
    auto answer = std::make_shared<Answer>();
    v1::Request request;
    request.set_op(v1::OP_READ);
    request.set_id(++next_id_);
    request.set_offset(region * kRegion);
    request.set_length(kRegion);
    request.set_checksum_algorithm(v1::CHECKSUM_CRC32C);
    router_->Read(request, /*client_checksum=*/false,
                  [answer](v1::Reply&& reply, Payload&& data) {
                    ++answer->calls;
                    answer->reply = reply;
                    answer->data = data.ToString();
                  });
    return answer;
  }
  size_t Reads(size_t replica) const {
    size_t reads = 0;
    for (const v1::Request& r : replicas_[replica]->ops) {
      reads += r.op() == v1::OP_READ;
    }
    return reads;
  }

  std::unique_ptr<ReadRouter> router_;
  uint64_t next_id_ = 0;
};

TEST_F(ReadRouterTest, ReadsSpreadOverInSyncReplicasAndSkipOutOfSyncOnes) {
  Make(3);
  Miss(2, 1, 'a');  // replica 2 is out of sync
  std::vector<std::shared_ptr<Answer>> answers;
  answers.reserve(6);
  for (int i = 0; i < 6; ++i) answers.push_back(Read(1));
  events_.Pump();
  for (const auto& answer : answers) {
    ASSERT_EQ(answer->calls, 1);
    EXPECT_EQ(answer->reply.status(), 0) << answer->reply.message();
    EXPECT_EQ(answer->data, std::string(kRegion, 'a'));
    EXPECT_TRUE(answer->reply.checksum().empty())
        << "checked, and dropped: the client did not ask for it";
  }
  EXPECT_EQ(Reads(0) + Reads(1), 6u);
  EXPECT_GE(Reads(0), 2u);
  EXPECT_GE(Reads(1), 2u);
  EXPECT_EQ(Reads(2), 0u) << "an out-of-sync replica is never read";
}

TEST_F(ReadRouterTest, AFailedReadFailsOverToTheNextReplica) {
  Make(2);
  replicas_[0]->Fill(3, 'z');
  replicas_[1]->Fill(3, 'z');
  replicas_[0]->fail_reads = true;
  replicas_[1]->fail_reads = false;
  auto first = Read(3);
  auto second = Read(3);
  events_.Pump();
  for (const auto& answer : {first, second}) {
    ASSERT_EQ(answer->calls, 1);
    EXPECT_EQ(answer->reply.status(), 0) << answer->reply.message();
    EXPECT_EQ(answer->data, std::string(kRegion, 'z'));
  }
  // Both failing: the last error, naming the replica.
  replicas_[1]->fail_reads = true;
  auto failed = Read(3);
  events_.Pump();
  ASSERT_EQ(failed->calls, 1);
  EXPECT_NE(failed->reply.status(), 0);
  EXPECT_NE(failed->reply.message().find("replica r"), std::string::npos)
      << failed->reply.message();
}

TEST_F(ReadRouterTest, AnAnswerFromAReplicaThatLeftMeanwhileIsNotServed) {
  Make(2);
  replicas_[0]->hold_reads = replicas_[1]->hold_reads = true;
  auto answer = Read(6);
  events_.Pump();
  MemReplica* first = !replicas_[0]->held.empty() ? replicas_[0] : replicas_[1];
  const size_t first_index = first == replicas_[0] ? 0 : 1;
  ASSERT_EQ(first->held.size(), 1u);
  // It answers (old data) only after missing a write of that very region.
  Miss(first_index, 6, 'n');
  replicas_[0]->hold_reads = replicas_[1]->hold_reads = false;
  for (auto& held : first->held) held();
  first->held.clear();
  events_.Pump();
  ASSERT_EQ(answer->calls, 1);
  EXPECT_EQ(answer->reply.status(), 0) << answer->reply.message();
  EXPECT_EQ(answer->data, std::string(kRegion, 'n'))
      << "served by the replica still in sync, not the stale one";
}

TEST_F(ReadRouterTest, DataFailingItsChecksumIsNotServedAndItsRegionHealed) {
  Make(2);
  replicas_[0]->Fill(2, 'g');
  replicas_[1]->Fill(2, 'g');
  replicas_[0]->corrupt_reads = true;
  replicas_[1]->corrupt_reads = true;
  auto first = Read(2);
  events_.Pump();
  // One replica's damage healed it out of the set; the other was then
  // asked and was damaged too: nothing good to serve.
  ASSERT_EQ(first->calls, 1);
  EXPECT_EQ(first->reply.status(),
            static_cast<int>(absl::StatusCode::kDataLoss))
      << first->reply.message();
  // Only one of them left the set: the last in-sync replica is kept.
  EXPECT_NE(InSync(0), InSync(1));
  const size_t healed = InSync(0) ? 1 : 0;
  EXPECT_EQ(core_->slots[healed]->checksum_mismatches.load(), 1u);
  EXPECT_EQ(Dirty(healed), 1u) << "resync copies the damaged region back";
  // The good replica serves from now on.
  replicas_[1 - healed]->corrupt_reads = false;
  auto second = Read(2);
  events_.Pump();
  EXPECT_EQ(second->reply.status(), 0) << second->reply.message();
  EXPECT_EQ(second->data, std::string(kRegion, 'g'));
}

TEST_F(ReadRouterTest, AReadUnansweredPastTheLagLimitIsHedgedAndAnsweredOnce) {
  Make(2);
  replicas_[0]->Fill(4, 'h');
  replicas_[1]->Fill(4, 'h');
  replicas_[0]->hold_reads = replicas_[1]->hold_reads = true;
  auto answer = Read(4);
  events_.Pump();
  MemReplica* first = !replicas_[0]->held.empty() ? replicas_[0] : replicas_[1];
  MemReplica* second = first == replicas_[0] ? replicas_[1] : replicas_[0];
  second->hold_reads = false;
  now_ += absl::Milliseconds(core_->config.lag_limit_ms());
  for (ManualScheduler* scheduler : schedulers_) scheduler->FireDue();
  events_.Pump();
  ASSERT_EQ(answer->calls, 1) << "the hedge answered";
  EXPECT_EQ(answer->data, std::string(kRegion, 'h'));
  for (auto& held : first->held) held();  // the slow one, late
  events_.Pump();
  EXPECT_EQ(answer->calls, 1) << "answered once";
}

}  // namespace
}  // namespace dst
