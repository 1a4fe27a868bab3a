// Fakes for testing one part of the engine (a Resyncer, a ReadRouter) over
// a VolumeCore: in-memory replicas and a state store whose callbacks run
// only when the test pumps them (never inside the call that registered
// them, as ReplicaHandle and StateStore promise), a scheduler whose clock
// and timers the test drives, and EngineTest, a decided mirror.
//
// Not thread-safe: the test's thread does everything.
#ifndef DST_TESTS_UNIT_ENGINE_FAKES_H_
#define DST_TESTS_UNIT_ENGINE_FAKES_H_

#include <algorithm>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>
#include <prometheus/registry.h>

#include "absl/strings/str_cat.h"

#include "services/common/protocol/checksum.h"
#include "services/common/protocol/extent.h"
#include "services/gateway/volume_core.h"

namespace dst {

inline constexpr uint32_t kRegion = 4096;
inline constexpr uint64_t kRegions = 8;
inline constexpr uint64_t kSize = kRegions * kRegion;

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
      std::string read = bytes_.substr(request.offset(), request.length());
      if (request.checksum_algorithm() != v1::CHECKSUM_NONE) {
        reply.set_checksum(ComputeChecksum(request.checksum_algorithm(), read));
      }
      if (corrupt_reads) read[0] ^= 1;  // on the wire, after the digest
      out = Payload::Copy(read.data(), read.size());
    } else if (request.op() == v1::OP_WRITE && abort_writes) {
      reply.set_status(static_cast<int>(absl::StatusCode::kAborted));
      reply.set_message("claimed by a newer gateway");
    } else if (request.op() == v1::OP_WRITE && fail_writes) {
      reply.set_status(5);
      reply.set_message("injected write error");
    } else if (request.op() == v1::OP_WRITE) {
      data.CopyTo(&bytes_[request.offset()]);
    } else if (request.op() == v1::OP_WRITE_ZEROES ||
               request.op() == v1::OP_TRIM) {
      std::fill_n(&bytes_[request.offset()], request.length(), '\0');
    } else if (request.op() == v1::OP_FLUSH && fail_flushes) {
      reply.set_status(5);
    } else if (request.op() == v1::OP_BLOCK_STATUS) {
      Allocation(request, &reply);
    }
    auto answer = [done = std::move(done), reply = std::move(reply),
                   out = std::move(out)]() mutable {
      done(std::move(reply), std::move(out));
    };
    if ((hold_reads && (request.op() == v1::OP_READ ||
                        request.op() == v1::OP_BLOCK_STATUS)) ||
        (hold_writes && request.op() == v1::OP_WRITE)) {
      held.push_back(std::move(answer));
    } else {
      events_->Post(std::move(answer));
    }
  }
  absl::StatusOr<v1::ReplicaMetadata> Claim(
      const v1::ClaimRequest& request) override {
    ++claims;
    last_claim = request;
    if (!claim_status.ok()) return claim_status;
    if (request.set_generations()) generations = request.generations();
    v1::ReplicaMetadata metadata;
    metadata.set_epoch(request.epoch());
    metadata.set_owner(request.owner());
    *metadata.mutable_generations() = generations;
    return metadata;
  }
  absl::StatusOr<uint64_t> Grow(const v1::GrowRequest& request) override {
    ++grows;
    last_grow = request;
    if (!grow_status.ok()) return grow_status;
    if (request.size() > bytes_.size()) bytes_.resize(request.size(), '\0');
    return bytes_.size();
  }
  void Ping(std::function<void(absl::Duration)>) override {}
  bool connected() const override { return is_connected; }
  size_t pending() const override { return 0; }
  SessionCounters counters() const override { return {}; }
  v1::ReplicaStatus Status() const override { return {}; }

  // Block status as a file system that leaves all-zero blocks unallocated
  // would answer: per kBlock, a hole reading zeroes or data.
  static constexpr uint64_t kBlock = 512;
  void Allocation(const v1::Request& request, v1::Reply* reply) const {
    if (fail_block_status) {
      reply->set_status(5);
      return;
    }
    for (uint64_t at = request.offset();
         at < request.offset() + request.length(); at += kBlock) {
      const bool zero = bytes_.compare(at, kBlock, std::string(kBlock, 0)) == 0;
      const uint32_t flags = zero ? kExtentHole | kExtentZero : 0;
      const int n = reply->extents_size();
      if (n > 0 && reply->extents(n - 1).flags() == flags) {
        reply->mutable_extents(n - 1)->set_length(
            reply->extents(n - 1).length() + kBlock);
      } else {
        v1::BlockExtent* e = reply->add_extents();
        e->set_length(kBlock);
        e->set_flags(flags);
      }
    }
  }

  std::string Region(uint64_t region) const {
    return bytes_.substr(region * kRegion, kRegion);
  }
  void Fill(uint64_t region, char c) {
    std::fill_n(&bytes_[region * kRegion], kRegion, c);
  }

  std::vector<v1::Request> ops;  // every request, in order
  // Read and block status replies wait in `held`.
  bool hold_reads = false;
  bool hold_writes = false;  // and so do write replies
  std::vector<std::function<void()>> held;
  bool fail_reads = false;
  bool corrupt_reads = false;
  bool fail_writes = false;
  bool abort_writes = false;  // as an exporter claimed by another gateway
  bool fail_flushes = false;
  bool fail_block_status = false;
  bool is_connected = true;
  int claims = 0;
  v1::ClaimRequest last_claim;
  absl::Status claim_status;  // not OK: every claim fails so
  int grows = 0;
  v1::GrowRequest last_grow;
  absl::Status grow_status;  // not OK: every Grow fails so
  google::protobuf::RepeatedField<uint64_t> generations;  // as claimed

 private:
  const std::string name_;
  Events* const events_;
  std::string bytes_;
};

// The test's clock; its timers run when the test fires them.
class ManualScheduler final : public Scheduler {
 public:
  explicit ManualScheduler(const absl::Time* now) : now_(now) {}
  absl::Time Now() const override { return *now_; }
  void After(absl::Duration delay, std::function<void()> fn) override {
    ++scheduled_;
    timers_.push_back({*now_ + delay, std::move(fn)});
  }
  void Shutdown() override { timers_.clear(); }
  // Runs the timers due by now, in the order they were set.
  void FireDue() {
    std::vector<Timer> due;
    std::vector<Timer> later;
    for (Timer& timer : timers_) {
      (timer.when <= *now_ ? due : later).push_back(std::move(timer));
    }
    timers_.swap(later);
    for (Timer& timer : due) timer.fn();
  }
  size_t queued() const { return timers_.size(); }  // not yet run
  size_t scheduled() const { return scheduled_; }   // After calls, ever

 private:
  struct Timer {
    absl::Time when;
    std::function<void()> fn;
  };
  const absl::Time* const now_;
  std::vector<Timer> timers_;
  size_t scheduled_ = 0;
};

// Saves complete when the test pumps them.
class MemStateStore final : public StateStore {
 public:
  explicit MemStateStore(Events* events) : events_(events) {}
  const std::string& name() const override { return name_; }
  absl::StatusOr<v1::VolumeState> Load() override {
    return absl::NotFoundError("none");
  }
  void Write(v1::VolumeState state,
             std::function<void(const absl::Status&)> then) override {
    ++saves;
    last = std::move(state);
    auto done = [then = std::move(then)] { then(absl::OkStatus()); };
    if (hold) {
      held.push_back(std::move(done));
    } else {
      events_->Post(std::move(done));
    }
  }
  // Completes the saves held so far.
  void Release() {
    std::vector<std::function<void()>> now;
    now.swap(held);
    for (auto& done : now) events_->Post(std::move(done));
  }
  int saves = 0;
  v1::VolumeState last;  // what the last save wrote
  bool hold = false;     // saves wait in `held` until Release
  std::vector<std::function<void()>> held;

 private:
  Events* const events_;
  const std::string name_ = "mem";
};

// A decided mirror's VolumeCore over MemReplicas, for testing one part.
class EngineTest : public ::testing::Test {
 protected:
  // A mirror of `n` replicas (1: a plain volume): decided, every one in
  // sync; or (`decided` false) as a gateway starts, none admitted yet.
  void Make(size_t n, bool decided = true) {
    core_.reset();
    replicas_.clear();
    schedulers_.clear();
    v1::VolumeConfig config;
    config.set_name("vol");
    config.set_region_bytes(kRegion);
    config.set_lag_limit_ms(100);
    std::vector<std::unique_ptr<ReplicaHandle>> handles;
    for (size_t i = 0; i < n; ++i) {
      auto replica =
          std::make_unique<MemReplica>(absl::StrCat("r", i), &events_);
      replicas_.push_back(replica.get());
      handles.push_back(std::move(replica));
    }
    VolumeOptions options;
    options.gateway_id = "gw";
    options.schedulers = [this](const std::string&) {
      auto scheduler = std::make_unique<ManualScheduler>(&now_);
      schedulers_.push_back(scheduler.get());
      return scheduler;
    };
    core_ = std::make_unique<VolumeCore>(config, options, std::move(handles),
                                         registry_);
    auto store = std::make_unique<MemStateStore>(&events_);
    store_ = store.get();
    core_->store = std::move(store);
    absl::MutexLock lock(&core_->mu);
    core_->connected.assign(n, true);
    if (!decided) return;
    MirrorState& state = core_->state;
    state.SetSize(kSize);
    core_->geometry.set_size(kSize);
    core_->geometry.set_logical_block_size(512);
    core_->geometry.set_max_transfer(kRegion);
    for (size_t i = 0; i < n; ++i) {
      state.Admit(i, {absl::StrCat("id", i), 100 + i, {}});
      core_->slots[i]->block_status = true;
      core_->slots[i]->size = kSize;
    }
    for (size_t i = 0; i < n && state.mirror(); ++i) {
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

  bool InSync(size_t i) {
    absl::MutexLock lock(&core_->mu);
    return core_->state.replica(i).sync == SyncState::kInSync;
  }
  uint64_t Dirty(size_t i) {
    absl::MutexLock lock(&core_->mu);
    return core_->state.replica(i).dirty.count();
  }
  absl::Time now_ = absl::UnixEpoch() + absl::Hours(1);
  Events events_;
  prometheus::Registry registry_;
  std::vector<MemReplica*> replicas_;
  std::unique_ptr<VolumeCore> core_;
  MemStateStore* store_ = nullptr;
  std::vector<ManualScheduler*> schedulers_;  // the core's timers and worker
};

}  // namespace dst

#endif  // DST_TESTS_UNIT_ENGINE_FAKES_H_
