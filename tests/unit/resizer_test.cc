// The Resizer alone, over in-memory replicas (engine_fakes.h): a volume
// grows only after its exporters did and once the state holding the new
// size is durable; a replica that cannot grow (refused, unreachable)
// leaves the set dirty from the old end on, with why, and is not resynced
// until the worker's retry grows it; shrinking, a misaligned size and a
// resize no in-sync replica can follow change nothing.
#include "services/gateway/resizer.h"

#include <memory>
#include <optional>
#include <string>

#include <gtest/gtest.h>

#include "services/gateway/resyncer.h"
#include "tests/unit/engine_fakes.h"

namespace dst {
namespace {

constexpr uint64_t kGrown = 2 * kSize;

class ResizerTest : public EngineTest {
 protected:
  void Make(size_t n) {
    EngineTest::Make(n);
    resizer_ = std::make_unique<Resizer>(*core_);
  }
  // Starts a resize; its outcome lands in the returned slot once done.
  std::shared_ptr<std::optional<absl::Status>> Resize(uint64_t size) {
    auto outcome = std::make_shared<std::optional<absl::Status>>();
    resizer_->Resize(size, [outcome](const absl::Status& s) { *outcome = s; });
    return outcome;
  }
  uint64_t VolumeSize() {
    absl::MutexLock lock(&core_->mu);
    return core_->geometry.size();
  }
  uint64_t StateSize() {
    absl::MutexLock lock(&core_->mu);
    return core_->state.state_size();
  }
  std::string Why(size_t i) {
    absl::MutexLock lock(&core_->mu);
    return core_->state.replica(i).why;
  }
  bool DirtyExactly(size_t i, uint64_t first, uint64_t last) {
    absl::MutexLock lock(&core_->mu);
    const RegionBitmap& dirty = core_->state.replica(i).dirty;
    for (uint64_t r = 0; r < dirty.size(); ++r) {
      if (dirty.Test(r) != (r >= first && r <= last)) return false;
    }
    return true;
  }
  std::unique_ptr<Resizer> resizer_;
};

TEST_F(ResizerTest, TheSizeIsUsedOnlyOnceEveryExporterGrewAndTheStateIsSaved) {
  Make(2);
  store_->hold = true;
  auto outcome = Resize(kGrown);
  for (MemReplica* replica : replicas_) {
    EXPECT_EQ(replica->grows, 1);
    EXPECT_EQ(replica->last_grow.size(), kGrown);
  }
  EXPECT_EQ(StateSize(), kGrown) << "the mirror state took the size";
  EXPECT_EQ(VolumeSize(), kSize) << "not used before it is durable";
  EXPECT_FALSE(outcome->has_value());
  ASSERT_EQ(store_->held.size(), 1u);
  store_->Release();
  events_.Pump();
  ASSERT_TRUE(outcome->has_value());
  EXPECT_TRUE(outcome->value().ok()) << outcome->value();
  EXPECT_EQ(store_->last.size(), kGrown);
  EXPECT_EQ(VolumeSize(), kGrown);
  EXPECT_TRUE(InSync(0));
  EXPECT_TRUE(InSync(1));
  EXPECT_EQ(Dirty(0) + Dirty(1), 0u);
}

// A plain volume has no state file: its size is its exporter's, grown
// durably before it answered. Nothing waits for a save (a flush after the
// resize hung on one that never came).
TEST_F(ResizerTest, APlainVolumeGrowsWithoutWaitingForAStateSave) {
  Make(1);
  core_->store.reset();
  auto outcome = Resize(kGrown);
  ASSERT_TRUE(outcome->has_value());
  ASSERT_TRUE(outcome->value().ok()) << outcome->value();
  EXPECT_EQ(VolumeSize(), kGrown);
  absl::MutexLock lock(&core_->mu);
  EXPECT_LE(core_->state.required_version(), core_->state.durable_version())
      << "an acknowledgement would wait for a save that never comes";
}

TEST_F(ResizerTest, AReplicaThatCannotGrowLeavesTheSetDirtyFromTheOldEnd) {
  Make(2);
  replicas_[1]->grow_status =
      absl::FailedPreconditionError("a block device of 32768 bytes");
  auto outcome = Resize(kGrown);
  events_.Pump();
  ASSERT_TRUE(outcome->has_value());
  ASSERT_TRUE(outcome->value().ok()) << outcome->value();
  EXPECT_EQ(VolumeSize(), kGrown);
  EXPECT_TRUE(InSync(0));
  EXPECT_FALSE(InSync(1));
  EXPECT_TRUE(DirtyExactly(1, kRegions, 2 * kRegions - 1));
  EXPECT_EQ(Why(1),
            "could not grow to 65536 bytes: a block device of "
            "32768 bytes");
  EXPECT_EQ(store_->last.size(), kGrown);
}

TEST_F(ResizerTest, AnUnreachableReplicaIsNotAskedAndLeavesTheSet) {
  Make(3);
  {
    absl::MutexLock lock(&core_->mu);
    core_->connected[2] = false;
  }
  auto outcome = Resize(kGrown);
  events_.Pump();
  ASSERT_TRUE(outcome->has_value());
  ASSERT_TRUE(outcome->value().ok()) << outcome->value();
  EXPECT_EQ(replicas_[2]->grows, 0);
  EXPECT_TRUE(InSync(0));
  EXPECT_TRUE(InSync(1));
  EXPECT_FALSE(InSync(2));
  EXPECT_EQ(Why(2), "could not grow to 65536 bytes: not connected");
}

TEST_F(ResizerTest, WhenNoInSyncReplicaCanGrowNothingChanges) {
  Make(2);
  for (MemReplica* replica : replicas_) {
    replica->grow_status = absl::FailedPreconditionError("no space");
  }
  uint64_t version;
  {
    absl::MutexLock lock(&core_->mu);
    version = core_->state.version();
  }
  auto outcome = Resize(kGrown);
  events_.Pump();
  ASSERT_TRUE(outcome->has_value());
  EXPECT_EQ(outcome->value().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(outcome->value().message().find("r1: could not grow to 65536 "
                                            "bytes: no space"),
            std::string::npos)
      << outcome->value();
  EXPECT_EQ(VolumeSize(), kSize);
  EXPECT_EQ(StateSize(), kSize);
  EXPECT_TRUE(InSync(0));
  EXPECT_TRUE(InSync(1));
  absl::MutexLock lock(&core_->mu);
  EXPECT_EQ(core_->state.version(), version);
}

TEST_F(ResizerTest, ShrinkingAndAMisalignedSizeAreRefusedTheSameSizeIsDone) {
  Make(2);
  auto shrink = Resize(kSize - 512);
  ASSERT_TRUE(shrink->has_value());
  EXPECT_EQ(shrink->value().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(shrink->value().message().find("cannot shrink"), std::string::npos)
      << shrink->value();
  auto misaligned = Resize(kSize + 100);
  ASSERT_TRUE(misaligned->has_value());
  EXPECT_EQ(misaligned->value().code(), absl::StatusCode::kInvalidArgument);
  auto same = Resize(kSize);
  ASSERT_TRUE(same->has_value());
  EXPECT_TRUE(same->value().ok());
  EXPECT_EQ(replicas_[0]->grows + replicas_[1]->grows, 0);
  EXPECT_EQ(VolumeSize(), kSize);
  EXPECT_EQ(StateSize(), kSize);
}

TEST_F(ResizerTest, AReplicaLeftBehindIsResyncedOnlyOnceTheWorkerGrewIt) {
  Make(2);
  replicas_[1]->grow_status = absl::FailedPreconditionError("too small");
  auto outcome = Resize(kGrown);
  events_.Pump();
  ASSERT_TRUE(outcome->has_value() && outcome->value().ok());
  Resyncer resyncer(*core_, [] {});
  auto copies_to_1 = [this] {
    size_t n = 0;
    for (const v1::Request& r : replicas_[1]->ops) {
      n += r.op() == v1::OP_WRITE || r.op() == v1::OP_WRITE_ZEROES;
    }
    return n;
  };
  // Still too small: the worker's retry fails, nothing is copied to it.
  resizer_->GrowLagging();
  resyncer.Drive(/*promote=*/true);
  events_.Pump();
  EXPECT_EQ(replicas_[1]->grows, 2);
  EXPECT_EQ(copies_to_1(), 0u);
  EXPECT_EQ(Why(1), "could not grow to 65536 bytes: too small");
  // The device grew: not before kGrowRetry, then it is grown and resynced.
  replicas_[1]->grow_status = absl::OkStatus();
  resizer_->GrowLagging();
  EXPECT_EQ(replicas_[1]->grows, 2) << "retried too soon";
  now_ += Resizer::kGrowRetry;
  resizer_->GrowLagging();
  EXPECT_EQ(replicas_[1]->grows, 3);
  for (int i = 0; i < 50 && !InSync(1); ++i) {
    resyncer.Drive(/*promote=*/true);
    events_.Pump();
  }
  EXPECT_GT(copies_to_1(), 0u);
  EXPECT_TRUE(InSync(1));
}

}  // namespace
}  // namespace dst
