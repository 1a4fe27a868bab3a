// The crash simulation's scripted scenarios (one per way the engine could
// lose or fork data at a crash, each deterministic) and a sweep of seeds
// (crash_sim.h: random faults at every step, checked by the model).
#include "tests/crash/crash_sim.h"

#include <cstdlib>
#include <string>

#include <gtest/gtest.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace dst::sim {
namespace {

SimOptions Replicas(int n) {
  SimOptions options;
  options.replicas = n;
  return options;
}

// Runs until request `op` is answered; true when it succeeded.
bool Complete(Simulation& sim, uint64_t op) {
  return sim.RunUntil([&] { return sim.Answered(op); }) && sim.Succeeded(op);
}

// Heals what is down, waits for the volume to be whole and checks every
// block through the volume and on every replica.
std::string HealAndCheck(Simulation& sim) {
  if (!sim.Settle()) return "the volume did not recover: " + sim.Describe();
  sim.CheckAll();
  return sim.failure();
}

// Finding 1: an in-sync replica that loses power loses what it acknowledged
// and did not flush; back "in sync", it served the old data.
TEST(CrashSimTest, AReplicaThatLostPowerIsRecopiedWhereItHadNotFlushed) {
  Simulation sim(1, Replicas(2));
  ASSERT_TRUE(sim.Settle()) << sim.Describe();
  const uint64_t write = sim.Write(8, 2);
  ASSERT_TRUE(Complete(sim, write));
  ASSERT_EQ(sim.Tag(1, 8), sim.TagOf(write));
  sim.KillExporter(1, /*power=*/true);
  ASSERT_NE(sim.Tag(1, 8), sim.TagOf(write)) << "e1 kept the write";
  sim.StartExporter(1);
  EXPECT_EQ(HealAndCheck(sim), "") << sim.world().TraceTail();
}

// Finding 1: a resync target gets the client's writes to the regions it
// already has, without FUA; it must not rejoin the set before they are
// durable, or a power cut right after loses them unnoticed.
TEST(CrashSimTest, AResyncTargetRejoinsOnlyWithItsWritesDurable) {
  Simulation sim(2, Replicas(2));
  ASSERT_TRUE(sim.Settle()) << sim.Describe();
  sim.CutLink(1);
  // e1 misses writes to many regions: a resync long enough to write into.
  for (uint64_t region = 2; region < 14; ++region) {
    ASSERT_TRUE(Complete(sim, sim.Write(region * 8, 1)));
  }
  sim.HealLink(1);
  ASSERT_TRUE(sim.RunUntil([&] { return sim.Sync(1) == "resyncing"; }))
      << sim.Describe();
  const uint64_t write = sim.Write(0, 1);  // region 0: e1 has it
  ASSERT_TRUE(Complete(sim, write));
  ASSERT_TRUE(sim.RunUntil([&] { return sim.Sync(1) == "in_sync"; }))
      << sim.Describe();
  ASSERT_EQ(sim.Tag(1, 0), sim.TagOf(write)) << "e1 did not get the write";
  sim.KillExporter(1, /*power=*/true);
  sim.StartExporter(1);
  EXPECT_EQ(HealAndCheck(sim), "") << sim.world().TraceTail();
}

// Finding 2: a second write into a region whose dirty bit a pending save
// sets was acknowledged before that save was durable; a crash then forgot
// that the replica missed it.
TEST(CrashSimTest, AnAcknowledgementWaitsForTheStateItReliesOn) {
  Simulation sim(3, Replicas(2));
  ASSERT_TRUE(sim.Settle()) << sim.Describe();
  sim.CutLink(1);
  const uint64_t first = sim.Write(0, 1);
  ASSERT_TRUE(sim.RunUntil([&] { return sim.Tag(0, 0) == sim.TagOf(first); }));
  // e1 lags out of the set; the save that says so does not complete.
  sim.hold_saves = true;
  ASSERT_TRUE(sim.RunUntil([&] { return sim.Sync(1) != "in_sync"; }))
      << sim.Describe();
  const uint64_t second = sim.Write(1, 1);  // the same region
  sim.RunUntil([&] { return sim.Answered(second); }, absl::Seconds(1));
  sim.CrashGateway(/*save_survives=*/false);
  sim.hold_saves = false;
  // e1, in sync as far as the durable state knows, is back first: the
  // source of the regions that were being written.
  sim.CutLink(0);
  sim.HealLink(1);
  sim.StartGateway();
  ASSERT_TRUE(sim.RunUntil([&] { return sim.Connected(1); })) << sim.Describe();
  EXPECT_EQ(HealAndCheck(sim), "") << sim.world().TraceTail();
}

// Finding 3: a replica already out of sync that missed one more write kept
// its "nothing in flight from before" mark, so resync copied the region
// while that write was still pending at the exporter, which runs a
// stream's requests in any order: the old write could land after the copy.
TEST(CrashSimTest, ALateWriteCannotLandAfterItsRegionsResyncCopy) {
  for (uint64_t seed = 1; seed <= 20; ++seed) {
    Simulation sim(seed, Replicas(2));
    ASSERT_TRUE(sim.Settle()) << sim.Describe();
    sim.CutLink(1);
    for (uint64_t region = 2; region < 4; ++region) {
      ASSERT_TRUE(Complete(sim, sim.Write(region * 8, 1)));
    }
    sim.HealLink(1);
    ASSERT_TRUE(sim.RunUntil([&] { return sim.Sync(1) == "resyncing"; }))
        << sim.Describe();
    // e1 stalls (its copies wait) and gets a write to a region it has;
    // it lags out of that one too, which resync then copies at once.
    sim.exporter(1).held = true;
    ASSERT_TRUE(Complete(sim, sim.Write(0, 1)));
    ASSERT_TRUE(Complete(sim, sim.Write(0, 1)));  // newer, e0 only
    sim.RunUntil([] { return false; }, absl::Milliseconds(300));
    sim.exporter(1).held = false;
    const std::string failure = HealAndCheck(sim);
    EXPECT_EQ(failure, "") << "seed " << seed << "\n"
                           << sim.world().TraceTail();
    if (!failure.empty()) break;
  }
}

// Finding 4: with three replicas, resync chose its source before waiting
// for the region's range lock; the source could leave the set meanwhile,
// missing the very write that held the lock, and still be read.
TEST(CrashSimTest, AResyncSourceIsStillInSyncWhenItIsRead) {
  for (uint64_t seed = 1; seed <= 20; ++seed) {
    SimOptions options = Replicas(3);
    options.lag_limit_ms = 1000;
    Simulation sim(seed, options);
    ASSERT_TRUE(sim.Settle()) << sim.Describe();
    sim.CutLink(2);
    ASSERT_TRUE(Complete(sim, sim.Write(13 * 8, 1)));  // e2 leaves
    // e0 stalls with the next write to that region: it will lag out.
    sim.exporter(0).held = true;
    const uint64_t write = sim.Write(13 * 8, 1);
    sim.HealLink(2);
    ASSERT_TRUE(Complete(sim, write));
    sim.RunUntil([] { return false; }, absl::Milliseconds(200));
    sim.exporter(0).held = false;
    const std::string failure = HealAndCheck(sim);
    EXPECT_EQ(failure, "") << "seed " << seed << "\n"
                           << sim.world().TraceTail();
    if (!failure.empty()) break;
  }
}

// Finding 5: fencing was checked when a request was read, not when it ran:
// a write admitted before a restarted gateway's claim could land after
// that gateway's own acknowledged write to the same block. The exporter
// runs a stream's requests in any order: several seeds.
TEST(CrashSimTest, AWriteAdmittedBeforeATakeoverNeverLandsAfterIt) {
  for (uint64_t seed = 1; seed <= 20; ++seed) {
    Simulation sim(seed, Replicas(1));
    ASSERT_TRUE(sim.Settle()) << sim.Describe();
    sim.exporter(0).held = true;  // a slow disk: the write waits in it
    const uint64_t old_write = sim.Write(4, 1);
    ASSERT_TRUE(sim.RunUntil([&] { return sim.exporter(0).received() == 1; }));
    sim.CrashGateway();
    sim.StartGateway();
    ASSERT_TRUE(sim.RunUntil([&] { return sim.Sync(0) == "in_sync"; }));
    sim.exporter(0).held = false;
    const uint64_t new_write = sim.Write(4, 1);
    ASSERT_TRUE(Complete(sim, new_write)) << "seed " << seed;
    const std::string failure = HealAndCheck(sim);
    EXPECT_EQ(failure, "") << "seed " << seed << "\n"
                           << sim.world().TraceTail();
    if (!failure.empty()) break;
    (void)old_write;
  }
}

// Finding 6: after a crash, the regions being written were recopied only to
// the in-sync replicas; an out-of-sync one that had taken a write there (a
// clean region during its resync) kept it, unlike its source.
TEST(CrashSimTest, RegionsInFlightAtACrashAreRecopiedToEveryReplica) {
  Simulation sim(4, Replicas(2));
  ASSERT_TRUE(sim.Settle()) << sim.Describe();
  sim.CutLink(1);
  for (uint64_t region = 2; region < 14; ++region) {
    ASSERT_TRUE(Complete(sim, sim.Write(region * 8, 1)));
  }
  sim.HealLink(1);
  ASSERT_TRUE(sim.RunUntil([&] { return sim.Sync(1) == "resyncing"; }))
      << sim.Describe();
  // e0 takes the write but dies before running it; e1 runs it.
  sim.exporter(0).held = true;
  const uint64_t write = sim.Write(0, 1);
  ASSERT_TRUE(sim.RunUntil([&] {
    return sim.exporter(0).received() > 0 && sim.Tag(1, 0) == sim.TagOf(write);
  })) << sim.Describe();
  sim.KillExporter(0, /*power=*/false);
  sim.CrashGateway(std::nullopt, /*client_dies=*/true);
  sim.StartExporter(0);
  sim.StartGateway();
  EXPECT_EQ(HealAndCheck(sim), "") << sim.world().TraceTail();
}

// Finding 7: the epoch was taken from the first replica to connect, so a
// replica that this same gateway had claimed at a higher epoch (while the
// other was away) fenced the volume.
TEST(CrashSimTest, ARestartedGatewayClaimsAboveEveryReplicasEpoch) {
  Simulation sim(5, Replicas(2));
  ASSERT_TRUE(sim.Settle()) << sim.Describe();
  sim.KillExporter(1, /*power=*/false);
  for (int restart = 0; restart < 2; ++restart) {  // e0's epoch goes up
    sim.CrashGateway();
    sim.StartGateway();
    ASSERT_TRUE(sim.RunUntil([&] { return sim.Connected(0); }))
        << sim.Describe();
  }
  // Now e1 (the lower epoch) is the first to connect.
  sim.CrashGateway();
  sim.StartExporter(1);
  sim.CutLink(0);
  sim.StartGateway();
  ASSERT_TRUE(sim.RunUntil([&] { return sim.Connected(1); })) << sim.Describe();
  sim.HealLink(0);
  EXPECT_EQ(HealAndCheck(sim), "") << sim.world().TraceTail();
}

// Finding 7: the generation history held 16 entries; a replica away while
// the others changed membership more often than that came back "diverged"
// and stopped the volume.
TEST(CrashSimTest, AReplicaAwayForManyMembershipChangesIsStaleNotDiverged) {
  Simulation sim(6, Replicas(3));
  ASSERT_TRUE(sim.Settle()) << sim.Describe();
  sim.KillExporter(2, /*power=*/false);
  ASSERT_TRUE(Complete(sim, sim.Write(0, 1)));   // e2 leaves
  for (int change = 0; change < 20; ++change) {  // e1 leaves and returns
    sim.CutLink(1);
    ASSERT_TRUE(Complete(sim, sim.Write(8, 1)));
    ASSERT_TRUE(sim.RunUntil([&] { return sim.Sync(1) != "in_sync"; }));
    sim.HealLink(1);
    ASSERT_TRUE(sim.RunUntil([&] { return sim.Sync(1) == "in_sync"; }))
        << sim.Describe();
  }
  sim.StartExporter(2);
  EXPECT_EQ(HealAndCheck(sim), "") << sim.world().TraceTail();
}

// Finding 7: `dstctl resync --full` answered before the state that said so
// was durable; a crash then forgot the request. Now the answer waits.
TEST(CrashSimTest, AFullResyncIsAnsweredOnceItIsDurable) {
  Simulation sim(7, Replicas(2));
  ASSERT_TRUE(sim.Settle()) << sim.Describe();
  sim.hold_saves = true;
  v1::ResyncRequest request;
  request.set_volume("v");
  request.set_replica("e1");
  request.set_full(true);
  bool answered = false;
  absl::Status outcome;
  sim.volume()->ResyncThen(request, [&](const absl::Status& s) {
    answered = true;
    outcome = s;
  });
  sim.RunUntil([&] { return answered; }, absl::Seconds(1));
  EXPECT_FALSE(answered) << "answered before the state was durable";
  sim.hold_saves = false;
  ASSERT_TRUE(sim.RunUntil([&] { return answered; }));
  EXPECT_TRUE(outcome.ok()) << outcome;
  // A crash right after the answer keeps the request.
  sim.CrashGateway(/*save_survives=*/false);
  sim.CutLink(1);
  sim.StartGateway();
  ASSERT_TRUE(sim.RunUntil([&] { return sim.Connected(0); }));
  EXPECT_NE(sim.Sync(1), "in_sync");
  EXPECT_EQ(HealAndCheck(sim), "") << sim.world().TraceTail();
}

// Finding 7: a fenced gateway went on saving its state, and could overwrite
// its successor's. Once fenced, it writes none.
TEST(CrashSimTest, AFencedGatewayNeverSavesItsState) {
  Simulation sim(8, Replicas(2));
  ASSERT_TRUE(sim.Settle()) << sim.Describe();
  ASSERT_TRUE(Complete(sim, sim.Write(0, 1)));
  // Another gateway takes e0 over.
  v1::ClaimRequest claim;
  claim.set_epoch(100);
  claim.set_owner("successor");
  ASSERT_TRUE(sim.exporter(0).Claim(claim).ok());
  const uint64_t write = sim.Write(8, 1);
  ASSERT_TRUE(sim.RunUntil([&] { return sim.Answered(write); }));
  EXPECT_FALSE(sim.Succeeded(write));
  ASSERT_EQ(sim.volume()->health(), VolumeHealth::kFenced);
  const uint64_t saves = sim.saves();
  // Changes that would be saved: e1 loses its stream with a write
  // unflushed; a full resync is asked for.
  sim.CutLink(1);
  v1::ResyncRequest request;
  request.set_replica("e1");
  request.set_full(true);
  sim.volume()->ResyncThen(request, [](const absl::Status&) {});
  sim.RunUntil([] { return false; }, absl::Seconds(3));
  EXPECT_EQ(sim.saves(), saves);
}

// The activity log keeps recent regions across flushes (a write into one
// waits for no save). A crash then copies them all between replicas; a
// clean stop flushes them out of the log first, so the next start copies
// nothing.
TEST(CrashSimTest, RecentRegionsAreCopiedAfterACrashButNotAfterACleanStop) {
  SimOptions options = Replicas(2);
  options.activity_log_regions = 1024;
  Simulation sim(9, options);
  ASSERT_TRUE(sim.Settle()) << sim.Describe();
  auto write_and_flush = [&sim] {
    for (uint64_t region = 2; region < 6; ++region) {
      EXPECT_TRUE(Complete(sim, sim.Write(region * 8, 1)));
    }
    EXPECT_TRUE(Complete(sim, sim.Flush()));
    EXPECT_TRUE(sim.Settle()) << sim.Describe();
  };
  auto active_regions = [&sim] {
    if (sim.saved_state().active().empty()) return uint64_t{0};
    RegionBitmap active;
    EXPECT_TRUE(active.FromBytes(16, sim.saved_state().active()));
    return active.count();
  };
  write_and_flush();
  EXPECT_EQ(active_regions(), 4u) << "flushed, and kept as recent";
  sim.CrashGateway(/*save_survives=*/true, /*client_dies=*/false);
  sim.StartGateway();
  ASSERT_TRUE(sim.RunUntil([&] {
    return sim.Sync(0) == "resyncing" || sim.Sync(1) == "resyncing";
  })) << "after a crash the recent regions are made the same: "
      << sim.Describe();
  EXPECT_EQ(HealAndCheck(sim), "") << sim.world().TraceTail();

  write_and_flush();
  sim.StopGateway();
  EXPECT_EQ(active_regions(), 0u) << "the clean stop flushed them out";
  sim.StartGateway();
  ASSERT_TRUE(sim.Settle()) << sim.Describe();
  const v1::VolumeStatus status = sim.volume()->Status();
  for (const auto& replica : status.replicas()) {
    EXPECT_EQ(replica.last_resync_bytes(), 0u)
        << replica.address() << ": nothing is copied after a clean stop";
  }
  EXPECT_EQ(HealAndCheck(sim), "") << sim.world().TraceTail();
}

// Seeds that found a bug in a soak (tests/crash/soak.sh), kept as they are:
// 464940775136 (3 replicas): a resync copy read from the only in-sync
// replica before it lost power, and was written after the restart had
// marked its region dirty again (MirrorState::Replica::recopy).
// Online growth: a gateway crash while the new size is being saved leaves
// the volume at the old size (the save lost) or the new one (it survived),
// never a mix; the exporters grown meanwhile do not matter, new space reads
// as zeroes, and a client told the new size keeps it across crashes.
TEST(CrashSimTest, AGatewayCrashDuringAResizeLeavesTheOldSizeOrTheNew) {
  for (bool survives : {false, true}) {
    SCOPED_TRACE(survives ? "the save survives" : "the save is lost");
    Simulation sim(survives ? 21 : 20, Replicas(2));
    ASSERT_TRUE(sim.Settle()) << sim.Describe();
    const uint64_t grown = Simulation::kBlocks + 20;  // 2.5 regions more
    sim.hold_saves = true;
    auto outcome = sim.Resize(grown);
    EXPECT_FALSE(outcome->has_value()) << "answered before it was durable";
    EXPECT_EQ(sim.VolumeBlocks(), Simulation::kBlocks);
    EXPECT_EQ(sim.exporter(0).storage().size(), grown * Simulation::kBlock);
    EXPECT_EQ(sim.exporter(1).storage().size(), grown * Simulation::kBlock);
    sim.CrashGateway(survives);
    sim.hold_saves = false;
    ASSERT_EQ(HealAndCheck(sim), "") << sim.world().TraceTail();
    EXPECT_EQ(sim.VolumeBlocks(), survives ? grown : Simulation::kBlocks);
    EXPECT_EQ(sim.saved_state().size(),
              (survives ? grown : Simulation::kBlocks) * Simulation::kBlock);
    // Again to completion: the client uses the new space, then the
    // gateway crashes; the size and the data stay.
    outcome = sim.Resize(grown + 3);
    ASSERT_TRUE(sim.RunUntil([&] { return outcome->has_value(); }));
    ASSERT_TRUE(outcome->value().ok()) << outcome->value();
    EXPECT_EQ(sim.client_blocks(), grown + 3);
    ASSERT_TRUE(Complete(sim, sim.Write(grown, 3, /*fua=*/true)));
    sim.CrashGateway();
    ASSERT_EQ(HealAndCheck(sim), "") << sim.world().TraceTail();
    EXPECT_EQ(sim.VolumeBlocks(), grown + 3);
  }
}

// A replica unreachable during a resize leaves the set; back, it is grown
// and resynced from the old end on.
TEST(CrashSimTest, AReplicaAwayDuringAResizeIsGrownAndResyncedWhenBack) {
  Simulation sim(22, Replicas(3));
  ASSERT_TRUE(sim.Settle()) << sim.Describe();
  sim.CutLink(2);
  auto outcome = sim.Resize(Simulation::kBlocks + 13);
  ASSERT_TRUE(sim.RunUntil([&] { return outcome->has_value(); }));
  ASSERT_TRUE(outcome->value().ok()) << outcome->value();
  EXPECT_NE(sim.Sync(2), "in_sync");
  EXPECT_EQ(sim.exporter(2).storage().size(),
            Simulation::kBlocks * Simulation::kBlock);
  ASSERT_TRUE(Complete(sim, sim.Write(Simulation::kBlocks + 5, 8)));
  sim.HealLink(2);
  ASSERT_EQ(HealAndCheck(sim), "") << sim.world().TraceTail();
  EXPECT_EQ(sim.exporter(2).storage().size(),
            (Simulation::kBlocks + 13) * Simulation::kBlock);
}

TEST(CrashSimTest, SeedsThatFoundBugsInASoak) {
  for (uint64_t seed : {uint64_t{464940775136}}) {
    SimOptions options = OptionsForSeed(seed);
    options.activity_log_regions = 0;  // as when it was found
    const SimResult result = RunSeed(seed, options);
    EXPECT_TRUE(result.ok) << "seed " << seed << ": " << result.failure
                           << "\nreplay: crash_sim --seed=" << seed
                           << " --verbose\nthe last steps:\n"
                           << result.trace;
  }
}

// The whole class: random faults at every step, each seed checked.
// DST_CRASH_SEEDS sets how many (CI: a few thousand in all, split in
// shards that ctest runs side by side).
TEST(CrashSimTest, SeededRuns) {
  uint64_t seeds = 200;
  if (const char* text = std::getenv("DST_CRASH_SEEDS")) {
    ASSERT_TRUE(absl::SimpleAtoi(text, &seeds)) << "DST_CRASH_SEEDS=" << text;
  }
  uint64_t first = 1;
  if (const char* text = std::getenv("DST_CRASH_FIRST_SEED")) {
    ASSERT_TRUE(absl::SimpleAtoi(text, &first)) << text;
  }
  int failures = 0;
  for (uint64_t seed = first; seed < first + seeds && failures < 3; ++seed) {
    const SimResult result = RunSeed(seed, OptionsForSeed(seed));
    if (!result.ok) {
      ++failures;
      ADD_FAILURE() << "seed " << seed << ": " << result.failure
                    << "\nreplay: crash_sim --seed=" << seed
                    << " --verbose\nthe last steps:\n"
                    << result.trace;
    }
  }
}

}  // namespace
}  // namespace dst::sim
