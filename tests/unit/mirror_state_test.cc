// MirrorState: every decision of a mirror's membership, alone (no threads,
// no replicas): who is in sync after a negotiation, what a write plan
// needs durable, who is left behind, what a lost stream or a restarted
// exporter costs, what the activity log covers, when a replica rejoins.
#include "services/gateway/mirror_state.h"

#include <gtest/gtest.h>

namespace dst {
namespace {

constexpr uint32_t kRegion = 4096;
constexpr uint64_t kSize = 16 * kRegion;

class MirrorStateTest : public ::testing::Test {
 protected:
  explicit MirrorStateTest(size_t keep_active = 0)
      : state_(
            "v", {"a", "b"}, kRegion, [this] { return ++next_; }, keep_active) {
    state_.SetSize(kSize);
  }

  // Both replicas fresh: a new mirror, decided once both hold generation 1.
  void StartFresh() {
    state_.Admit(0, {"a", 11, {}});
    state_.Admit(1, {"b", 22, {}});
    ASSERT_FALSE(state_.decided()) << "decided before the generation is out";
    ASSERT_TRUE(state_.GenerationDue(0));
    state_.GenerationPushed(0, state_.generations()[0],
                            {state_.generations()[0]});
    state_.GenerationPushed(1, state_.generations()[0],
                            {state_.generations()[0]});
    ASSERT_TRUE(state_.decided());
    state_.Saved(state_.version());
  }

  // Plans and ends a write of `region` that every target takes.
  void WriteEverywhere(uint64_t region) {
    MirrorState::WritePlan plan =
        state_.PlanWrite(region, region, {true, true});
    state_.BeginWrite(region, region);
    std::vector<MirrorState::Outcome> outcomes;
    for (const auto& t : plan.targets) {
      state_.Took(t.replica, region, region);
      outcomes.push_back(MirrorState::Outcome::kOk);
    }
    state_.EndWrite(region, region, plan.targets, outcomes, true, {true, true});
    state_.Saved(state_.version());
  }

  // Replica `i` lags out of a write to `region` that the other takes.
  void LeaveByLag(size_t i, uint64_t region) {
    MirrorState::WritePlan plan =
        state_.PlanWrite(region, region, {true, true});
    state_.BeginWrite(region, region);
    std::vector<MirrorState::Outcome> outcomes;
    for (const auto& t : plan.targets) {
      outcomes.push_back(t.replica == i ? MirrorState::Outcome::kLagging
                                        : MirrorState::Outcome::kOk);
    }
    state_.EndWrite(region, region, plan.targets, outcomes, true, {true, true});
    state_.Saved(state_.version());
  }

  // A write of `region` that failed on both replicas; `connected`: which
  // are reachable when it ends.
  void FailEverywhere(uint64_t region, const std::vector<bool>& connected) {
    MirrorState::WritePlan plan =
        state_.PlanWrite(region, region, {true, true});
    state_.BeginWrite(region, region);
    state_.EndWrite(
        region, region, plan.targets,
        {MirrorState::Outcome::kFailed, MirrorState::Outcome::kFailed},
        /*acknowledged=*/false, connected);
  }

  bool InSync(size_t i) const {
    return state_.replica(i).sync == SyncState::kInSync;
  }

  uint64_t next_ = 0;
  MirrorState state_;
};

TEST_F(MirrorStateTest, AWriteGoesOutOnlyOnceItsActiveRegionIsDurable) {
  StartFresh();
  const uint64_t durable = state_.durable_version();
  MirrorState::WritePlan plan = state_.PlanWrite(3, 3, {true, true});
  EXPECT_EQ(plan.targets.size(), 2u);
  EXPECT_GT(plan.needed_version, durable) << "the activity log changed";
  state_.Saved(plan.needed_version);
  // The same region again: nothing new to save.
  EXPECT_EQ(state_.PlanWrite(3, 3, {true, true}).needed_version,
            state_.durable_version());
  EXPECT_EQ(state_.CheckInvariants(), "");
}

TEST_F(MirrorStateTest, ALaggardLeavesTheSetBeforeTheWriteIsAcknowledged) {
  StartFresh();
  MirrorState::WritePlan plan = state_.PlanWrite(2, 2, {true, true});
  state_.Saved(plan.needed_version);
  state_.BeginWrite(2, 2);
  state_.Took(0, 2, 2);
  const std::vector<MirrorState::Outcome> outcomes = {
      MirrorState::Outcome::kOk, MirrorState::Outcome::kLagging};
  ASSERT_TRUE(state_.HeldInSync(plan.targets, outcomes, {true, true}));
  const uint64_t needed = state_.EndWrite(2, 2, plan.targets, outcomes,
                                          /*acknowledged=*/true, {true, true});
  EXPECT_TRUE(InSync(0));
  EXPECT_FALSE(InSync(1));
  EXPECT_TRUE(state_.replica(1).dirty.Test(2));
  EXPECT_GT(needed, state_.durable_version())
      << "the ack waits for the state that says b missed it";
  // A second write into that region relies on the same unsaved state.
  EXPECT_EQ(state_.PlanWrite(2, 2, {true, true}).needed_version, needed);
  EXPECT_EQ(state_.CheckInvariants(), "");
}

TEST_F(MirrorStateTest, AWriteHeldOnlyByAReplicaThatLeftIsNotAcknowledged) {
  StartFresh();
  MirrorState::WritePlan plan = state_.PlanWrite(2, 2, {true, true});
  state_.BeginWrite(2, 2);
  state_.Took(0, 2, 2);
  const std::vector<MirrorState::Outcome> outcomes = {
      MirrorState::Outcome::kOk, MirrorState::Outcome::kLagging};
  // a took it, then lost its stream: its exporter may have died with it.
  EXPECT_FALSE(state_.HeldInSync(plan.targets, outcomes, {false, true}))
      << "b must not be left behind for a write only a may still have";
  // a took it, then left the set for another write's lag.
  LeaveByLag(0, 5);
  EXPECT_FALSE(state_.HeldInSync(plan.targets, outcomes, {true, true}));
}

TEST_F(MirrorStateTest, AReplicaBackFromARestartHasItsUnflushedRegionsCopied) {
  StartFresh();
  WriteEverywhere(5);  // unflushed on both
  LeaveByLag(1, 9);
  EXPECT_FALSE(InSync(1));
  EXPECT_TRUE(state_.replica(1).dirty.Test(9));
  EXPECT_FALSE(state_.replica(1).dirty.Test(5))
      << "b holds it (unflushed): copied back only if b restarts";
  // b's exporter restarted meanwhile (a new boot): region 5 too.
  state_.Admit(1, {"b", 99, state_.replica(1).generations});
  EXPECT_TRUE(state_.replica(1).dirty.Test(5));
  EXPECT_EQ(state_.CheckInvariants(), "");
}

TEST_F(MirrorStateTest,
       AWriteThatFailedEverywhereLeavesNoOutOfSyncTargetClean) {
  StartFresh();
  MirrorState::WritePlan plan = state_.PlanWrite(6, 6, {true, true});
  state_.BeginWrite(6, 6);
  LeaveByLag(1, 9);  // b leaves for another write; this one is out to it
  state_.EndWrite(
      6, 6, plan.targets,
      {MirrorState::Outcome::kFailed, MirrorState::Outcome::kFailed},
      /*acknowledged=*/false, {true, true});
  EXPECT_TRUE(state_.replica(1).dirty.Test(6))
      << "a timed-out write may have landed on b";
}

TEST_F(MirrorStateTest, AFlushClearsTheActivityLogOnlyWhereNothingIsUnflushed) {
  StartFresh();
  WriteEverywhere(1);
  WriteEverywhere(2);
  MirrorState::FlushPlan flush = state_.PlanFlush({true, true});
  ASSERT_EQ(flush.targets.size(), 2u);
  WriteEverywhere(2);  // taken after the flush was sent: not covered
  state_.EndFlush(flush, {MirrorState::Outcome::kOk, MirrorState::Outcome::kOk},
                  /*acknowledged=*/true);
  const v1::VolumeState saved = state_.Snapshot();
  RegionBitmap active;
  ASSERT_TRUE(active.FromBytes(16, saved.active()));
  EXPECT_FALSE(active.Test(1));
  EXPECT_TRUE(active.Test(2));
  EXPECT_EQ(state_.CheckInvariants(), "");
}

TEST(RecentRegionsTest, ForgetsTheLeastRecentlyWrittenFirst) {
  RecentRegions recent(2);
  recent.Touch(1);
  recent.Touch(2);
  recent.Touch(1);  // 1 is the most recent again
  recent.Touch(3);  // forgets 2
  EXPECT_TRUE(recent.Contains(1));
  EXPECT_FALSE(recent.Contains(2));
  EXPECT_TRUE(recent.Contains(3));
  EXPECT_EQ(recent.size(), 2u);
  RecentRegions none(0);
  none.Touch(1);
  EXPECT_FALSE(none.Contains(1)) << "capacity 0 keeps nothing";
}

class KeepActiveTest : public MirrorStateTest {
 protected:
  KeepActiveTest() : MirrorStateTest(/*keep_active=*/2) {}

  // Flushes both replicas, acknowledged, and saves.
  void FlushEverywhere() {
    MirrorState::FlushPlan flush = state_.PlanFlush({true, true});
    state_.EndFlush(flush,
                    {MirrorState::Outcome::kOk, MirrorState::Outcome::kOk},
                    /*acknowledged=*/true);
    state_.Saved(state_.version());
  }

  RegionBitmap Active() const {
    RegionBitmap active;
    EXPECT_TRUE(active.FromBytes(16, state_.Snapshot().active()));
    return active;
  }
};

TEST_F(KeepActiveTest, RecentRegionsStayActiveAcrossFlushesAndNeedNoSave) {
  StartFresh();
  WriteEverywhere(1);
  WriteEverywhere(2);
  WriteEverywhere(3);  // the two most recent: 2 and 3
  FlushEverywhere();
  RegionBitmap active = Active();
  EXPECT_FALSE(active.Test(1)) << "flushed and no longer recent";
  EXPECT_TRUE(active.Test(2));
  EXPECT_TRUE(active.Test(3));
  EXPECT_LE(state_.PlanWrite(3, 3, {true, true}).needed_version,
            state_.durable_version())
      << "a write into a recent region waits for no save";
  EXPECT_GT(state_.PlanWrite(1, 1, {true, true}).needed_version,
            state_.durable_version())
      << "one into a forgotten region does";
  EXPECT_EQ(state_.CheckInvariants(), "");
}

TEST_F(KeepActiveTest, ARegionForgottenWhileUnflushedStaysUntilItIsFlushed) {
  StartFresh();
  WriteEverywhere(1);
  WriteEverywhere(2);
  WriteEverywhere(3);  // 1 is forgotten, but nothing is flushed yet
  EXPECT_TRUE(Active().Test(1)) << "unflushed: a crash may leave it different";
  FlushEverywhere();
  EXPECT_FALSE(Active().Test(1));
  EXPECT_EQ(state_.CheckInvariants(), "");
}

TEST_F(KeepActiveTest, AfterAGatewayCrashTheRecentRegionsAreCopied) {
  StartFresh();
  WriteEverywhere(5);
  WriteEverywhere(6);
  FlushEverywhere();
  const v1::VolumeState saved = state_.Snapshot();
  MirrorState next(
      "v", {"a", "b"}, kRegion, [this] { return ++next_; }, 2);
  ASSERT_TRUE(next.Load(saved, "test").ok());
  next.SetSize(kSize);
  next.Admit(0, {"a", 11, state_.replica(0).generations});
  next.Admit(1, {"b", 22, state_.replica(1).generations});
  ASSERT_TRUE(next.decided());
  // Both still in sync, and the recent regions to be made the same (the
  // first up-to-date replica copied to the other): the activity log of the
  // crash is unsettled until then.
  RegionBitmap active;
  ASSERT_TRUE(active.FromBytes(16, next.Snapshot().active()));
  EXPECT_TRUE(active.Test(5));
  EXPECT_TRUE(active.Test(6));
  EXPECT_EQ(active.count(), 2u);
  EXPECT_EQ(next.CheckInvariants(), "");
}

TEST_F(MirrorStateTest, ARestartedReplicaHasWhatItHadNotFlushedCopiedBack) {
  StartFresh();
  WriteEverywhere(4);
  state_.Admit(1, {"b", 23, {state_.generations()[0]}});  // a new instance
  EXPECT_FALSE(InSync(1));
  EXPECT_TRUE(state_.replica(1).dirty.Test(4));
  EXPECT_FALSE(state_.replica(1).dirty.Test(5));
}

TEST_F(MirrorStateTest, TheOnlyInSyncReplicaRestartingIsTheSourceForTheOthers) {
  StartFresh();
  WriteEverywhere(4);
  LeaveByLag(1, 4);    // b leaves (region 4 dirty for it)
  WriteEverywhere(6);  // a alone
  ASSERT_FALSE(InSync(1));
  state_.Admit(0, {"a", 12, {state_.generations()[0]}});  // a restarted
  EXPECT_TRUE(InSync(0)) << "no better copy exists";
  EXPECT_TRUE(state_.replica(1).dirty.Test(6))
      << "b takes a's contents where a may have lost writes";
}

// Found by the simulation (seed 464940775136): a copy to b read a's cache,
// a lost power before writing it back, and b kept the lost write.
TEST_F(MirrorStateTest, ACopyOvertakenByItsRegionBecomingDirtyAgainIsRedone) {
  StartFresh();
  WriteEverywhere(4);
  LeaveByLag(1, 4);    // b leaves, region 4 dirty for it
  WriteEverywhere(4);  // a alone, unflushed
  ASSERT_EQ(state_.NextCopy(1), std::optional<uint64_t>(4));
  // The copy read a's region 4; then a restarts (it lost power): what it
  // had not flushed is gone, and b must take what a holds now.
  state_.Admit(0, {"a", 12, {state_.generations()[0]}});
  ASSERT_TRUE(InSync(0));
  state_.CopyDone(1, 4, /*ok=*/true);  // the copy of the lost contents
  EXPECT_TRUE(state_.replica(1).dirty.Test(4))
      << "the copy began before the region was marked again: it is redone";
  EXPECT_EQ(state_.NextCopy(1), std::optional<uint64_t>(4));
  state_.CopyDone(1, 4, /*ok=*/true);
  EXPECT_FALSE(state_.replica(1).dirty.Test(4));
}

TEST_F(MirrorStateTest, AReplicaAwayForLongIsStaleByItsGenerationOfDeparture) {
  MirrorState state("v", {"a", "b", "c"}, kRegion, [this] { return ++next_; });
  state.SetSize(kSize);
  for (size_t i = 0; i < 3; ++i) state.Admit(i, {"x", 0, {}});
  for (size_t i = 0; i < 3; ++i) {
    state.GenerationPushed(i, state.generations()[0], {state.generations()[0]});
  }
  ASSERT_TRUE(state.decided());
  const uint64_t first = state.generations()[0];
  ASSERT_TRUE(state.ResyncFull(2).ok());  // c leaves
  ASSERT_EQ(state.replica(2).sync, SyncState::kOutOfSync);
  for (int change = 0; change < 20; ++change) {  // b leaves and rejoins
    ASSERT_TRUE(state.ResyncFull(1).ok());
    while (std::optional<uint64_t> region = state.NextCopy(1)) {
      state.CopyDone(1, *region, true);
    }
    state.SetDrained(1, true);
    RegionBitmap covered = state.StartPromotion(1);
    ASSERT_TRUE(state.FinishPromotion(1, covered, true, state.generations()));
  }
  // Saved and loaded by the next gateway: c is still known as stale.
  state.Saved(state.version());
  MirrorState next("v", {"a", "b", "c"}, kRegion, [this] { return ++next_; });
  ASSERT_TRUE(next.Load(state.Snapshot(), "test").ok());
  next.Admit(2, {"x", 0, {first}});
  EXPECT_EQ(next.diverged(), "");
  EXPECT_EQ(next.replica(2).sync, SyncState::kOutOfSync);
}

TEST_F(MirrorStateTest,
       AfterACrashTheActiveRegionsAreCopiedToEveryOtherReplica) {
  StartFresh();
  LeaveByLag(1, 3);  // b out of sync: region 3 dirty, region 7 clean
  state_.SetDrained(1, true);
  WriteEverywhere(7);  // both take it (b as a clean region of its resync)
  ASSERT_FALSE(state_.replica(1).dirty.Test(7));
  const v1::VolumeState crashed = state_.Snapshot();
  MirrorState next("v", {"a", "b"}, kRegion, [this] { return ++next_; });
  ASSERT_TRUE(next.Load(crashed, "test").ok());
  next.SetSize(kSize);
  next.Admit(0, {"a", 11, state_.replica(0).generations});  // same instance
  EXPECT_TRUE(next.replica(0).sync == SyncState::kInSync);
  next.Admit(1, {"b", 22, state_.replica(1).generations});
  EXPECT_TRUE(next.replica(1).dirty.Test(7))
      << "an out-of-sync replica gets the crash's active regions too";
  EXPECT_EQ(next.CheckInvariants(), "");
}

TEST_F(MirrorStateTest, AReplicaRejoinsOnlyFlushedAndDrained) {
  StartFresh();
  LeaveByLag(1, 3);
  WriteEverywhere(0);  // b is not a target yet (not drained)
  ASSERT_FALSE(InSync(1));
  state_.Admit(1, {"b", 22, state_.replica(1).generations});
  EXPECT_FALSE(state_.CanPromote(1)) << "dirty regions left";
  while (std::optional<uint64_t> region = state_.NextCopy(1)) {
    state_.CopyDone(1, *region, true);
  }
  EXPECT_FALSE(state_.CanPromote(1)) << "not drained";
  state_.SetDrained(1, true);
  ASSERT_TRUE(state_.CanPromote(1));
  RegionBitmap covered = state_.StartPromotion(1);
  EXPECT_FALSE(state_.FinishPromotion(1, covered, /*flushed=*/false, {}));
  EXPECT_FALSE(InSync(1));
  covered = state_.StartPromotion(1);
  EXPECT_TRUE(state_.FinishPromotion(1, covered, /*flushed=*/true,
                                     state_.generations()));
  EXPECT_TRUE(InSync(1));
  EXPECT_EQ(state_.CheckInvariants(), "");
}

TEST_F(MirrorStateTest, AWriteThatFailedEverywhereMakesItsRegionTheSameAgain) {
  StartFresh();
  FailEverywhere(9, {false, true});
  EXPECT_FALSE(InSync(0));
  EXPECT_TRUE(InSync(1)) << "b, reachable, is the region's source";
  EXPECT_TRUE(state_.replica(0).dirty.Test(9));
}

TEST_F(MirrorStateTest, AWriteThatFailedEverywhereUnreachableWaitsForASource) {
  StartFresh();
  FailEverywhere(9, {false, false});
  EXPECT_TRUE(InSync(0) && InSync(1)) << "no source chosen blind";
  // a comes back as a new instance (it lost power): not a source.
  state_.Admit(0, {"a", 98, state_.replica(0).generations});
  EXPECT_FALSE(InSync(0));
  EXPECT_TRUE(state_.replica(0).dirty.Test(9));
  // b comes back with its cache: it is.
  state_.Admit(1, {"b", 22, state_.replica(1).generations});
  EXPECT_TRUE(InSync(1));
  EXPECT_EQ(state_.CheckInvariants(), "");
}

TEST_F(MirrorStateTest, AStateOfAnotherVolumeOrDamagedIsRefused) {
  v1::VolumeState other;
  other.set_volume("w");
  other.set_region_bytes(kRegion);
  EXPECT_TRUE(absl::IsDataLoss(state_.Load(other, "f")));
  v1::VolumeState damaged;
  damaged.set_volume("v");
  damaged.set_region_bytes(kRegion);
  damaged.set_size(kSize);
  auto* r = damaged.add_replicas();
  r->set_address("a");
  r->set_dirty("x");  // 16 regions need 2 bytes
  EXPECT_TRUE(absl::IsDataLoss(state_.Load(damaged, "f")));
  v1::VolumeState region;
  region.set_volume("v");
  region.set_region_bytes(2 * kRegion);
  EXPECT_TRUE(absl::IsFailedPrecondition(state_.Load(region, "f")));
}

}  // namespace
}  // namespace dst
