// The Resyncer alone, over in-memory replicas and a state store whose
// callbacks run when the test pumps them (engine_fakes.h): a returning
// replica gets every dirty region from the in-sync one, written with FUA,
// is flushed and only then promoted; a copy whose source left the set
// meanwhile is not counted; stop and the rate hold copies back (paced by
// the timers, not the worker's tick); while clients do I/O, one region is
// copied at a time in small chunks; a failed promotion flush leaves the
// replica out of sync; bad admin requests change nothing.
#include "services/gateway/resyncer.h"

#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tests/unit/engine_fakes.h"

namespace dst {
namespace {

class ResyncerTest : public EngineTest {
 protected:
  void Make(size_t n) {
    EngineTest::Make(n);
    resyncer_ = std::make_unique<Resyncer>(*core_, [this] { ++kicks_; });
  }
  // Drives resync as the worker does until nothing is left to do.
  void Settle() {
    for (int round = 0; round < 20; ++round) {
      resyncer_->Drive(/*promote=*/true);
      events_.Pump();
    }
  }
  v1::VolumeStatus Report() {
    v1::VolumeStatus status;
    for (size_t i = 0; i < replicas_.size(); ++i) status.add_replicas();
    absl::MutexLock lock(&core_->mu);
    resyncer_->ReportLocked(&status);
    return status;
  }

  // Answers the reads `replica` held, and holds no more.
  void AnswerHeldReads(MemReplica* replica) {
    replica->hold_reads = false;
    for (auto& answer : replica->held) answer();
    replica->held.clear();
    events_.Pump();
  }

  std::unique_ptr<Resyncer> resyncer_;
  int kicks_ = 0;
};

TEST_F(ResyncerTest, CopiesEveryDirtyRegionWithFuaThenFlushesThenPromotes) {
  Make(2);
  Miss(1, 2, 'a');
  Miss(1, 5, 'b');
  ASSERT_FALSE(InSync(1));
  ASSERT_EQ(Dirty(1), 2u);
  Settle();
  EXPECT_TRUE(InSync(1));
  EXPECT_EQ(replicas_[1]->Region(2), std::string(kRegion, 'a'));
  EXPECT_EQ(replicas_[1]->Region(5), std::string(kRegion, 'b'));
  // Only the dirty regions were read, from the in-sync replica.
  ASSERT_EQ(replicas_[0]->ops.size(), 2u);
  // The target: two FUA writes, then the flush, then (a claim) promotion.
  const std::vector<v1::Request>& ops = replicas_[1]->ops;
  ASSERT_EQ(ops.size(), 3u);
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(ops[i].op(), v1::OP_WRITE);
    EXPECT_TRUE(ops[i].flags() & v1::REQUEST_FLAG_FUA);
  }
  EXPECT_EQ(ops[2].op(), v1::OP_FLUSH);
  EXPECT_GE(kicks_, 1) << "the answered flush asks the worker to promote";
  const v1::VolumeStatus status = Report();
  EXPECT_EQ(status.replicas(1).resync_copied_bytes(), 2 * kRegion);
  EXPECT_EQ(status.replicas(1).resync_total_bytes(), 0u) << "finished";
  absl::MutexLock lock(&core_->mu);
  EXPECT_EQ(core_->state.CheckInvariants(), "");
}

// A region that reads as zeroes on the source is copied as a write-zeroes
// (no data on the wire; the target may punch it and stay sparse).
TEST_F(ResyncerTest, AZeroRegionIsCopiedAsAWriteZeroes) {
  Make(2);
  replicas_[1]->Fill(3, 'o');  // the target's stale bytes
  Miss(1, 3, '\0');            // the others wrote zeroes there meanwhile
  Settle();
  EXPECT_TRUE(InSync(1));
  EXPECT_EQ(replicas_[1]->Region(3), std::string(kRegion, '\0'));
  const std::vector<v1::Request>& ops = replicas_[1]->ops;
  ASSERT_EQ(ops.size(), 2u);
  EXPECT_EQ(ops[0].op(), v1::OP_WRITE_ZEROES);
  EXPECT_TRUE(ops[0].flags() & v1::REQUEST_FLAG_FUA);
  EXPECT_FALSE(ops[0].flags() & v1::REQUEST_FLAG_NO_HOLE) << "may punch";
  EXPECT_TRUE(ops[0].data().empty());
  EXPECT_EQ(ops[1].op(), v1::OP_FLUSH);
}

TEST_F(ResyncerTest, ACopyWhoseSourceLeftTheSetMeanwhileIsNotCounted) {
  Make(3);
  Miss(2, 3, 'c');
  // The copy's read waits at whichever in-sync replica is the source.
  replicas_[0]->hold_reads = true;
  replicas_[1]->hold_reads = true;
  resyncer_->Drive(/*promote=*/true);
  events_.Pump();
  MemReplica* source =
      !replicas_[0]->held.empty() ? replicas_[0] : replicas_[1];
  ASSERT_EQ(source->held.size(), 1u);
  const size_t source_index = source == replicas_[0] ? 0 : 1;
  // Meanwhile the source misses a write elsewhere and leaves the set.
  Miss(source_index, 6, 'x');
  ASSERT_FALSE(InSync(source_index));
  for (auto& answer : source->held) answer();
  source->held.clear();
  events_.Pump();
  EXPECT_EQ(Dirty(2), 1u) << "the region stays dirty for the target";
  EXPECT_TRUE(replicas_[2]->ops.empty()) << "nothing written from it";
  EXPECT_FALSE(InSync(2));
  // From the replica still in sync, the copy goes through.
  replicas_[0]->hold_reads = replicas_[1]->hold_reads = false;
  now_ += Resyncer::kCopyRetry;
  Settle();
  EXPECT_TRUE(InSync(2));
  EXPECT_EQ(replicas_[2]->Region(3), std::string(kRegion, 'c'));
}

TEST_F(ResyncerTest, StopHoldsCopiesBackAndTheRateSpacesThem) {
  Make(2);
  Miss(1, 1, 'a');
  Miss(1, 4, 'b');
  v1::ResyncRequest stop;
  stop.set_stop(true);
  absl::Status configured = absl::UnknownError("not called");
  resyncer_->Configure(stop, [&](const absl::Status& s) { configured = s; });
  EXPECT_TRUE(configured.ok()) << configured;
  Settle();
  EXPECT_TRUE(replicas_[0]->ops.empty()) << "stopped: nothing read";
  EXPECT_TRUE(Report().resync_paused());

  // One region per second: one copy now, the next a second later.
  v1::ResyncRequest start;
  start.set_rate_bytes(kRegion);
  resyncer_->Configure(start, [](const absl::Status&) {});
  Settle();
  EXPECT_EQ(replicas_[0]->ops.size(), 1u);
  EXPECT_EQ(Dirty(1), 1u);
  now_ += absl::Seconds(1);
  Settle();
  EXPECT_EQ(Dirty(1), 0u);
  EXPECT_TRUE(InSync(1));
  EXPECT_EQ(Report().resync_rate_bytes(), kRegion);
}

TEST_F(ResyncerTest, ARateOfManyRegionsPerTickIsPacedByTheTimersNotTheTick) {
  Make(2);
  for (uint64_t region = 1; region <= 3; ++region) Miss(1, region, 'a');
  // 100 regions a second: one every 10 ms, far finer than the worker's
  // tick. The old pacing waited for the next tick after each copy.
  v1::ResyncRequest start;
  start.set_rate_bytes(100 * kRegion);
  resyncer_->Configure(start, [](const absl::Status&) {});
  resyncer_->Drive(/*promote=*/true);
  events_.Pump();
  EXPECT_EQ(replicas_[0]->ops.size(), 1u) << "one copy now";
  for (size_t copies = 2; copies <= 3; ++copies) {
    now_ += absl::Milliseconds(10);
    for (ManualScheduler* scheduler : schedulers_) scheduler->FireDue();
    events_.Pump();
    EXPECT_EQ(replicas_[0]->ops.size(), copies)
        << "the next copy when the rate allows it, no tick needed";
  }
  EXPECT_EQ(Dirty(1), 0u);
}

TEST_F(ResyncerTest, WhileClientsDoIoOneRegionIsCopiedAtATimeInSmallChunks) {
  Make(2);
  constexpr uint64_t kChunk = kRegion / 4;
  resyncer_ = std::make_unique<Resyncer>(
      *core_, [this] { ++kicks_; }, kChunk);
  for (uint64_t region = 1; region <= 3; ++region) Miss(1, region, 'a');
  core_->NoteClientIo();
  replicas_[0]->hold_reads = true;
  resyncer_->Drive(/*promote=*/true);
  events_.Pump();
  ASSERT_EQ(replicas_[0]->held.size(), 1u) << "one copy at a time";
  EXPECT_EQ(replicas_[0]->ops[0].length(), kChunk);
  AnswerHeldReads(replicas_[0]);
  Settle();
  EXPECT_TRUE(InSync(1));
  EXPECT_EQ(replicas_[1]->Region(2), std::string(kRegion, 'a'));
  ASSERT_EQ(replicas_[0]->ops.size(), 3 * kRegion / kChunk);
  for (const v1::Request& read : replicas_[0]->ops) {
    EXPECT_EQ(read.length(), kChunk);
  }

  // Clients quiet for longer than the window: full depth, whole regions.
  now_ += 2 * Resyncer::kYieldWindow;
  for (uint64_t region = 5; region <= 7; ++region) Miss(1, region, 'b');
  replicas_[0]->ops.clear();
  replicas_[0]->hold_reads = true;
  resyncer_->Drive(/*promote=*/true);
  events_.Pump();
  EXPECT_EQ(replicas_[0]->held.size(), 3u) << "the three regions at once";
  for (const v1::Request& read : replicas_[0]->ops) {
    EXPECT_EQ(read.length(), kRegion);
  }
  AnswerHeldReads(replicas_[0]);
  Settle();
  EXPECT_TRUE(InSync(1));
}

TEST_F(ResyncerTest, AFailedPromotionFlushLeavesTheReplicaOutOfSync) {
  Make(2);
  Miss(1, 2, 'a');
  replicas_[1]->fail_flushes = true;
  Settle();
  EXPECT_EQ(Dirty(1), 0u) << "the copy itself went through";
  EXPECT_FALSE(InSync(1)) << "not promoted without a flush";
  EXPECT_EQ(replicas_[1]->claims, 0);
  replicas_[1]->fail_flushes = false;
  now_ += Resyncer::kCopyRetry;
  Settle();
  EXPECT_TRUE(InSync(1));
  EXPECT_EQ(replicas_[1]->Region(2), std::string(kRegion, 'a'));
}

TEST_F(ResyncerTest, AFullResyncOfAnUnknownReplicaIsNotFoundAndChangesNothing) {
  Make(2);
  const int saves = store_->saves;
  v1::ResyncRequest full;
  full.set_full(true);
  full.set_replica("nowhere");
  absl::Status status;
  resyncer_->Configure(full, [&](const absl::Status& s) { status = s; });
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound) << status;
  EXPECT_EQ(store_->saves, saves);
  EXPECT_TRUE(InSync(0));
  EXPECT_TRUE(InSync(1));

  // A known one: every region is copied again, answered once durable.
  full.set_replica("r1");
  status = absl::UnknownError("not answered");
  resyncer_->Configure(full, [&](const absl::Status& s) { status = s; });
  EXPECT_EQ(status.code(), absl::StatusCode::kUnknown) << "before the save";
  events_.Pump();
  EXPECT_TRUE(status.ok()) << status;
  Settle();
  EXPECT_TRUE(InSync(1));
  EXPECT_EQ(replicas_[0]->ops.size(), kRegions);
}

}  // namespace
}  // namespace dst
