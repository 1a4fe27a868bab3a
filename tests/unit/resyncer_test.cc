// The Resyncer alone, over in-memory replicas and a state store whose
// callbacks run when the test pumps them: a returning replica gets every
// dirty region from the in-sync one, written with FUA, is flushed and only
// then promoted; a copy whose source left the set meanwhile is not
// counted; stop and the rate hold copies back; a failed promotion flush
// leaves the replica out of sync; bad admin requests change nothing.
#include "services/gateway/resyncer.h"

#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>
#include <prometheus/registry.h>

#include "absl/strings/str_cat.h"

#include "services/gateway/volume_core.h"

namespace dst {
namespace {

constexpr uint32_t kRegion = 4096;
constexpr uint64_t kRegions = 8;
constexpr uint64_t kSize = kRegions * kRegion;

// Callbacks queued by the fakes; the test runs them (never inside the call
// that registered them, as ReplicaHandle and StateStore promise).
class Events {
 public:
  void Post(std::function<void()> fn) { queue_.push_back(std::move(fn)); }
  void Pump() {
    while (!queue_.empty()) {
      std::function<void()> fn = std::move(queue_.front());
      queue_.pop_front();
      fn();
    }
  }

 private:
  std::deque<std::function<void()>> queue_;
};

// An exporter's disk in memory, answering through Events.
class MemReplica final : public ReplicaHandle {
 public:
  MemReplica(std::string name, Events* events)
      : name_(std::move(name)), events_(events), bytes_(kSize, '\0') {}

  const std::string& address() const override { return name_; }
  void Start(std::function<void()>, Admission) override {}
  void Stop() override {}
  void Close() override {}
  void Submit(v1::Request request, TransactionDone done,
              Payload data) override {
    ops.push_back(request);
    v1::Reply reply;
    reply.set_id(request.id());
    Payload out;
    if (request.op() == v1::OP_READ) {
      if (fail_reads) reply.set_status(5);
      out = Payload::Copy(bytes_.data() + request.offset(), request.length());
    } else if (request.op() == v1::OP_WRITE) {
      data.CopyTo(&bytes_[request.offset()]);
    } else if (request.op() == v1::OP_FLUSH && fail_flushes) {
      reply.set_status(5);
    }
    auto answer = [done = std::move(done), reply = std::move(reply),
                   out = std::move(out)]() mutable {
      done(std::move(reply), std::move(out));
    };
    if (hold_reads && request.op() == v1::OP_READ) {
      held.push_back(std::move(answer));
    } else {
      events_->Post(std::move(answer));
    }
  }
  absl::StatusOr<v1::ReplicaMetadata> Claim(
      const v1::ClaimRequest& request) override {
    ++claims;
    v1::ReplicaMetadata metadata;
    metadata.set_epoch(request.epoch());
    *metadata.mutable_generations() = request.generations();
    return metadata;
  }
  void Ping(std::function<void(absl::Duration)>) override {}
  bool connected() const override { return true; }
  size_t pending() const override { return 0; }
  SessionCounters counters() const override { return {}; }
  v1::ReplicaStatus Status() const override { return {}; }

  std::string Region(uint64_t region) const {
    return bytes_.substr(region * kRegion, kRegion);
  }
  void Fill(uint64_t region, char c) {
    std::fill_n(&bytes_[region * kRegion], kRegion, c);
  }

  std::vector<v1::Request> ops;  // every request, in order
  bool hold_reads = false;       // read replies wait in `held`
  std::vector<std::function<void()>> held;
  bool fail_reads = false;
  bool fail_flushes = false;
  int claims = 0;

 private:
  const std::string name_;
  Events* const events_;
  std::string bytes_;
};

class ManualScheduler final : public Scheduler {
 public:
  explicit ManualScheduler(const absl::Time* now) : now_(now) {}
  absl::Time Now() const override { return *now_; }
  void After(absl::Duration, std::function<void()>) override {}
  void Shutdown() override {}

 private:
  const absl::Time* const now_;
};

// Saves complete when the test pumps them.
class MemStateStore final : public StateStore {
 public:
  explicit MemStateStore(Events* events) : events_(events) {}
  const std::string& name() const override { return name_; }
  absl::StatusOr<v1::VolumeState> Load() override {
    return absl::NotFoundError("none");
  }
  void Write(v1::VolumeState,
             std::function<void(const absl::Status&)> then) override {
    ++saves;
    events_->Post([then = std::move(then)] { then(absl::OkStatus()); });
  }
  int saves = 0;

 private:
  Events* const events_;
  const std::string name_ = "mem";
};

class ResyncerTest : public ::testing::Test {
 protected:
  // A decided mirror of `n` replicas, every one in sync.
  void Make(size_t n) {
    v1::VolumeConfig config;
    config.set_name("vol");
    config.set_region_bytes(kRegion);
    std::vector<std::unique_ptr<ReplicaHandle>> handles;
    for (size_t i = 0; i < n; ++i) {
      auto replica =
          std::make_unique<MemReplica>(absl::StrCat("r", i), &events_);
      replicas_.push_back(replica.get());
      handles.push_back(std::move(replica));
    }
    VolumeOptions options;
    options.schedulers = [this](const std::string&) {
      return std::make_unique<ManualScheduler>(&now_);
    };
    core_ = std::make_unique<VolumeCore>(config, options, std::move(handles),
                                         registry_);
    auto store = std::make_unique<MemStateStore>(&events_);
    store_ = store.get();
    core_->store = std::move(store);
    resyncer_ = std::make_unique<Resyncer>(*core_, [this] { ++kicks_; });
    absl::MutexLock lock(&core_->mu);
    MirrorState& state = core_->state;
    state.SetSize(kSize);
    core_->geometry.set_size(kSize);
    core_->geometry.set_logical_block_size(512);
    core_->geometry.set_max_transfer(kRegion);
    core_->connected.assign(n, true);
    for (size_t i = 0; i < n; ++i) {
      state.Admit(i, {absl::StrCat("id", i), 100 + i, {}});
    }
    for (size_t i = 0; i < n; ++i) {
      state.GenerationPushed(i, state.generations()[0],
                             {state.generations()[0]});
    }
    ASSERT_TRUE(state.decided());
    state.Saved(state.version());
  }

  // Replica `behind` misses a write of `region` that the others take
  // (the data goes to them), and is back: out of sync, resyncing.
  void Miss(size_t behind, uint64_t region, char c) {
    absl::MutexLock lock(&core_->mu);
    MirrorState& state = core_->state;
    MirrorState::WritePlan plan =
        state.PlanWrite(region, region, core_->connected);
    state.BeginWrite(region, region);
    std::vector<MirrorState::Outcome> outcomes;
    for (const MirrorState::Target& t : plan.targets) {
      if (t.replica == behind) {
        outcomes.push_back(MirrorState::Outcome::kLagging);
      } else {
        replicas_[t.replica]->Fill(region, c);
        state.Took(t.replica, region, region);
        outcomes.push_back(MirrorState::Outcome::kOk);
      }
    }
    state.EndWrite(region, region, plan.targets, outcomes, true,
                   core_->connected);
    state.Saved(state.version());
  }

  // Drives resync as the worker does until nothing is left to do.
  void Settle() {
    for (int round = 0; round < 20; ++round) {
      resyncer_->Drive(/*promote=*/true);
      events_.Pump();
    }
  }

  bool InSync(size_t i) {
    absl::MutexLock lock(&core_->mu);
    return core_->state.replica(i).sync == SyncState::kInSync;
  }
  uint64_t Dirty(size_t i) {
    absl::MutexLock lock(&core_->mu);
    return core_->state.replica(i).dirty.count();
  }
  v1::VolumeStatus Report() {
    v1::VolumeStatus status;
    for (size_t i = 0; i < replicas_.size(); ++i) status.add_replicas();
    absl::MutexLock lock(&core_->mu);
    resyncer_->ReportLocked(&status);
    return status;
  }

  absl::Time now_ = absl::UnixEpoch() + absl::Hours(1);
  Events events_;
  prometheus::Registry registry_;
  std::vector<MemReplica*> replicas_;
  std::unique_ptr<VolumeCore> core_;
  MemStateStore* store_ = nullptr;
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
