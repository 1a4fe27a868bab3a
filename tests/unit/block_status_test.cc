// BlockStatus alone, over in-memory replicas (engine_fakes.h) that leave
// all-zero blocks unallocated: a volume's block status holds for every
// in-sync replica ("zero" and "hole" only where all of them agree), never
// counts an out-of-sync one, and counts a replica that cannot say (no
// feature, disconnected, failed, too slow) as all data; a malformed answer
// is all data too.
#include "services/gateway/block_status.h"

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "tests/unit/engine_fakes.h"

namespace dst {
namespace {

constexpr uint32_t kHoleZero = kExtentHole | kExtentZero;

class BlockStatusTest : public EngineTest {
 protected:
  void Make(size_t n) {
    EngineTest::Make(n);
    status_ = std::make_unique<BlockStatus>(*core_);
  }

  struct Answer {
    int calls = 0;
    v1::Reply reply;
    std::vector<Extent> extents;
  };
  // Queries the whole volume; the answer lands in the returned slot.
  std::shared_ptr<Answer> Query() {
    auto answer = std::make_shared<Answer>();
    v1::Request request;
    request.set_op(v1::OP_BLOCK_STATUS);
    request.set_id(++next_id_);
    request.set_length(kSize);
    status_->Query(request, [answer](v1::Reply&& reply, Payload&&) {
      ++answer->calls;
      answer->reply = reply;
      for (const v1::BlockExtent& e : reply.extents()) {
        answer->extents.push_back(Extent{e.length(), e.flags()});
      }
    });
    return answer;
  }
  size_t Asked(size_t replica) const {
    size_t asked = 0;
    for (const v1::Request& r : replicas_[replica]->ops) {
      asked += r.op() == v1::OP_BLOCK_STATUS;
    }
    return asked;
  }
  static std::vector<Extent> AllData() { return {Extent{kSize, 0}}; }

  std::unique_ptr<BlockStatus> status_;
  uint64_t next_id_ = 0;
};

TEST_F(BlockStatusTest, TheReplicasHolesAndDataPassThroughWhereTheyAgree) {
  Make(2);
  replicas_[0]->Fill(2, 'd');
  replicas_[1]->Fill(2, 'd');
  auto answer = Query();
  events_.Pump();
  ASSERT_EQ(answer->calls, 1);
  ASSERT_EQ(answer->reply.status(), 0) << answer->reply.message();
  const std::vector<Extent> expected = {
      {2 * kRegion, kHoleZero}, {kRegion, 0}, {kSize - 3 * kRegion, kHoleZero}};
  EXPECT_EQ(answer->extents, expected);
}

TEST_F(BlockStatusTest, ZeroAndHoleOnlyWhereEveryInSyncReplicaAgrees) {
  Make(2);
  // As after a trim that one replica's file system punched and the other's
  // did not: replica 1 still holds data in region 3, reads may go to it.
  replicas_[0]->Fill(1, 'a');
  replicas_[1]->Fill(1, 'a');
  replicas_[1]->Fill(3, 'x');
  auto answer = Query();
  events_.Pump();
  ASSERT_EQ(answer->calls, 1);
  const std::vector<Extent> expected = {{kRegion, kHoleZero},
                                        {kRegion, 0},
                                        {kRegion, kHoleZero},
                                        {kRegion, 0},
                                        {kSize - 4 * kRegion, kHoleZero}};
  EXPECT_EQ(answer->extents, expected);
  EXPECT_EQ(Asked(0), 1u);
  EXPECT_EQ(Asked(1), 1u);
}

TEST_F(BlockStatusTest, AnOutOfSyncReplicaIsNeitherAskedNorCounted) {
  Make(3);
  Miss(2, 5, 'm');             // 0 and 1 took region 5; 2 is out of sync
  replicas_[2]->Fill(6, 'o');  // its own stale data elsewhere
  auto answer = Query();
  events_.Pump();
  ASSERT_EQ(answer->calls, 1);
  const std::vector<Extent> expected = {
      {5 * kRegion, kHoleZero}, {kRegion, 0}, {2 * kRegion, kHoleZero}};
  EXPECT_EQ(answer->extents, expected);
  EXPECT_EQ(Asked(2), 0u);
}

TEST_F(BlockStatusTest, AnInSyncReplicaThatCannotBeAskedMakesItAllData) {
  Make(2);
  replicas_[1]->is_connected = false;
  auto away = Query();
  events_.Pump();
  ASSERT_EQ(away->calls, 1);
  EXPECT_EQ(away->reply.status(), 0);
  EXPECT_EQ(away->extents, AllData()) << "it may hold data where 0 has holes";
  replicas_[1]->is_connected = true;
  {
    absl::MutexLock lock(&core_->mu);
    core_->slots[1]->block_status = false;  // an exporter without the feature
  }
  auto old = Query();
  events_.Pump();
  EXPECT_EQ(old->extents, AllData());
  EXPECT_EQ(Asked(0) + Asked(1), 0u) << "all data whatever 0 says: not asked";
}

TEST_F(BlockStatusTest, AFailedAnswerCountsAsAllData) {
  Make(2);
  replicas_[0]->fail_block_status = true;
  auto answer = Query();
  events_.Pump();
  ASSERT_EQ(answer->calls, 1);
  EXPECT_EQ(answer->reply.status(), 0) << "all data is a true answer";
  EXPECT_EQ(answer->extents, AllData());
}

TEST_F(BlockStatusTest, AReplicaSlowerThanTheLagLimitCountsAsAllDataOnce) {
  Make(2);
  replicas_[1]->hold_reads = true;
  auto answer = Query();
  events_.Pump();
  ASSERT_EQ(answer->calls, 0) << "waits for replica 1";
  now_ += absl::Milliseconds(core_->config.lag_limit_ms());
  for (ManualScheduler* scheduler : schedulers_) scheduler->FireDue();
  events_.Pump();
  ASSERT_EQ(answer->calls, 1);
  EXPECT_EQ(answer->extents, AllData());
  for (auto& held : replicas_[1]->held) held();  // late: ignored
  events_.Pump();
  EXPECT_EQ(answer->calls, 1);
}

TEST_F(BlockStatusTest, MalformedAnswersAreAllData) {
  v1::Request request;
  request.set_op(v1::OP_BLOCK_STATUS);
  request.set_length(8192);
  auto answer = [&](const std::vector<std::pair<uint64_t, uint32_t>>& extents) {
    v1::Reply reply;
    for (const auto& [length, flags] : extents) {
      v1::BlockExtent* e = reply.add_extents();
      e->set_length(length);
      e->set_flags(flags);
    }
    return BlockStatus::AnswerOf(request, reply);
  };
  const std::vector<Extent> all_data = {{8192, 0}};
  EXPECT_EQ(answer({}), all_data) << "no extent";
  EXPECT_EQ(answer({{4096, 0}, {0, 3}}), all_data) << "an empty extent";
  EXPECT_EQ(answer({{4096, 0}, {8192, 3}}), all_data) << "past the range";
  EXPECT_EQ(answer({{4096, 4}}), all_data) << "an unknown flag";
  const std::vector<Extent> shorter = {{4096, 3}};
  EXPECT_EQ(answer({{4096, 3}}), shorter) << "a shorter answer is allowed";
  v1::Reply failed;
  failed.set_status(5);
  failed.add_extents()->set_length(4096);
  EXPECT_EQ(BlockStatus::AnswerOf(request, failed), all_data);
}

}  // namespace
}  // namespace dst
