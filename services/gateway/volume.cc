// A plain or mirrored volume with its in-sync set, dirty regions, resync,
// generations, fencing and lease: see volume.h.
#include "services/gateway/volume.h"


#include <algorithm>
#include <filesystem>
#include <random>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"

#include "services/common/checksum.h"
#include "services/common/log.h"
#include "services/common/request_validation.h"
#include "services/common/status.h"
#include "services/common/transaction_stream.h"
#include "services/gateway/replica.h"

namespace dst {

namespace {

constexpr size_t kGenerationHistory = 16;
constexpr absl::Duration kWorkTick = absl::Milliseconds(50);
constexpr absl::Duration kLazySave = absl::Seconds(1);
constexpr absl::Duration kCopyRetry = absl::Milliseconds(500);
constexpr size_t kResyncDepth = 4;  // regions copied at once per replica
constexpr absl::Duration kPingInterval = absl::Seconds(5);

uint64_t NewGeneration() {
  static absl::Mutex mu(absl::kConstInit);
  static std::mt19937_64* random = new std::mt19937_64(std::random_device{}());
  absl::MutexLock lock(&mu);
  uint64_t g;
  do {
    g = (*random)();
  } while (g == 0);
  return g;
}

bool Contains(const std::vector<uint64_t>& list, uint64_t g) {
  return std::find(list.begin(), list.end(), g) != list.end();
}

std::string Hex(uint64_t g) { return absl::StrCat(absl::Hex(g)); }

}  // namespace

// One replica and what the volume knows about it.
struct Volume::Slot {
  std::unique_ptr<ReplicaHandle> replica;
  Sync sync = Sync::kUnknown;
  bool admitted = false;              // negotiated and accepted this run
  std::vector<uint64_t> generations;  // the exporter's, as last known
  std::string identity;               // from the state file or negotiation
  RegionBitmap dirty;                 // out of sync: regions to copy
  RegionBitmap unflushed;             // in sync: written since last flush
  bool push_generation = false;       // exporter must learn generations_
  bool resync_ready = false;          // no transaction left from before
  std::set<uint64_t> copying;         // regions being copied now
  std::atomic<uint64_t> checksum_mismatches{0};
  prometheus::Counter* mismatches = nullptr;
  // Session counters, mirrored into metrics by the worker.
  prometheus::Counter* resends = nullptr;
  prometheus::Counter* timeouts = nullptr;
  prometheus::Counter* reconnects = nullptr;
  prometheus::Gauge* in_flight = nullptr;
  prometheus::Histogram* ping = nullptr;
  uint64_t seen_resends = 0, seen_timeouts = 0, seen_reconnects = 0;
  absl::Time next_ping;
  uint64_t cursor = 0;         // next region to look at
  uint64_t copied = 0;         // bytes copied by resync, total
  uint64_t copied_before = 0;  // `copied` when this resync began
  uint64_t resync_total = 0;   // dirty bytes when this resync began
  absl::Time resync_started;
  absl::Time next_copy;  // throttle
  prometheus::Gauge* connected = nullptr;
  prometheus::Gauge* in_sync = nullptr;
  prometheus::Gauge* dirty_bytes = nullptr;
  prometheus::Counter* resync_bytes = nullptr;
};

// A modification or flush sent to several replicas.
struct Volume::Fanout {
  struct Target {
    size_t slot;
    bool required;  // in sync when sent: the acknowledgement depends on it
    enum { kPending, kOk, kFailed } state = kPending;
    RegionBitmap unflushed;  // flushes: what this flush makes durable
    Target(size_t slot, bool required) : slot(slot), required(required) {}
  };
  v1::Request request;        // its data field empty
  Payload data;               // a write's, shared by every target
  uint64_t first_region = 0;  // regions the modification touches
  uint64_t last_region = 0;
  absl::Mutex mu;
  std::vector<Target> targets;
  size_t pending = 0;
  bool required_ok = false;
  bool lag_timer = false;
  bool finished = false;
  bool fenced = false;
  v1::Reply first_error;
  TransactionDone done;
};

// A read and its failover order.
struct Volume::ReadOp {
  v1::Request request;
  bool client_checksum = false;  // the client asked for the digest
  std::vector<size_t> order;     // in-sync slots, preferred first
  absl::Mutex mu;
  size_t sent = 0;
  size_t failed = 0;
  bool finished = false;
  v1::Reply last_error;
  TransactionDone done;
};

Volume::Volume(const v1::VolumeConfig& config, const VolumeOptions& options,
               std::vector<std::unique_ptr<ReplicaHandle>> replicas,
               prometheus::Registry& registry)
    : config_(config),
      options_(options),
      timers_((options.schedulers ? options.schedulers : TimerThreads())(
          "timers")),
      worker_((options.schedulers ? options.schedulers : TimerThreads())(
          "worker")),
      op_metrics_(registry, "dst_gateway", {{"volume", config.name()}}),
      in_flight_gauge_(
          prometheus::BuildGauge()
              .Name("dst_gateway_transactions_in_flight")
              .Help("Client requests accepted and not yet answered.")
              .Register(registry)
              .Add({{"volume", config.name()}})),
      lagging_counter_(
          prometheus::BuildCounter()
              .Name("dst_gateway_replica_lag_exits_total")
              .Help("Replicas that left the in-sync set for lagging past "
                    "lag_limit_ms or failing a transaction.")
              .Register(registry)
              .Add({{"volume", config.name()}})),
      hedged_reads_counter_(
          prometheus::BuildCounter()
              .Name("dst_gateway_hedged_reads_total")
              .Help("Reads also sent to another replica after lag_limit_ms.")
              .Register(registry)
              .Add({{"volume", config.name()}})) {
  auto& connected =
      prometheus::BuildGauge()
          .Name("dst_gateway_replica_connected")
          .Help("1 while the gateway has a working stream to the replica.")
          .Register(registry);
  auto& in_sync = prometheus::BuildGauge()
                      .Name("dst_gateway_replica_in_sync")
                      .Help("1 while the replica is in the in-sync set.")
                      .Register(registry);
  auto& dirty = prometheus::BuildGauge()
                    .Name("dst_gateway_replica_dirty_bytes")
                    .Help("Bytes of dirty regions the replica still needs.")
                    .Register(registry);
  auto& mismatches =
      prometheus::BuildCounter()
          .Name("dst_gateway_checksum_mismatches_total")
          .Help(
              "Reads from the replica whose data failed its checksum (each "
              "failed over to another replica).")
          .Register(registry);
  auto counter = [&registry](const char* name, const char* help) -> auto& {
    return prometheus::BuildCounter().Name(name).Help(help).Register(registry);
  };
  auto& resends = counter("dst_gateway_replica_resends_total",
                          "Transactions sent to the replica again after a lost "
                          "stream or a timeout.");
  auto& timeouts =
      counter("dst_gateway_replica_timeouts_total",
              "Streams to the replica given up for an unanswered transaction.");
  auto& reconnects = counter("dst_gateway_replica_reconnects_total",
                             "Streams to the replica re-established.");
  auto& replica_in_flight =
      prometheus::BuildGauge()
          .Name("dst_gateway_replica_transactions_in_flight")
          .Help("Transactions waiting for or sent to the replica, unanswered.")
          .Register(registry);
  auto& ping = prometheus::BuildHistogram()
                   .Name("dst_gateway_replica_ping_seconds")
                   .Help(
                       "Round trip of the keepalive Ping to the exporter, "
                       "every 5 s.")
                   .Register(registry);
  auto& states = prometheus::BuildGauge()
                     .Name("dst_gateway_volume_state")
                     .Help(
                         "1 for the volume's current state (ready, degraded, "
                         "waiting, diverged, fenced, unavailable).")
                     .Register(registry);
  for (const char* state : kVolumeStates) {
    state_gauges_.push_back(
        &states.Add({{"volume", config.name()}, {"state", state}}));
  }
  auto& resync = prometheus::BuildCounter()
                     .Name("dst_gateway_resync_bytes_total")
                     .Help("Bytes copied to the replica by resync.")
                     .Register(registry);
  for (auto& replica : replicas) {
    auto slot = std::make_unique<Slot>();
    std::map<std::string, std::string> labels = {
        {"volume", config.name()}, {"replica", replica->address()}};
    slot->connected = &connected.Add(labels);
    slot->in_sync = &in_sync.Add(labels);
    slot->dirty_bytes = &dirty.Add(labels);
    slot->resync_bytes = &resync.Add(labels);
    slot->mismatches = &mismatches.Add(labels);
    slot->resends = &resends.Add(labels);
    slot->timeouts = &timeouts.Add(labels);
    slot->reconnects = &reconnects.Add(labels);
    slot->in_flight = &replica_in_flight.Add(labels);
    slot->ping =
        &ping.Add(labels, prometheus::Histogram::BucketBoundaries{
                              0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                              0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5});
    slot->replica = std::move(replica);
    slots_.push_back(std::move(slot));
  }
  resync_rate_ = config.resync_rate_bytes();
  checksum_ = config.checksum() == "sha256" ? v1::CHECKSUM_SHA256
              : config.checksum() == "none" ? v1::CHECKSUM_NONE
                                            : v1::CHECKSUM_CRC32C;
}

Volume::~Volume() {
  Close();
  store_.reset();  // writes what is pending
}

void Volume::Close() {
  timers_->Shutdown();
  worker_->Shutdown();
  for (const auto& slot : slots_) slot->replica->Stop();
  // While the volume is whole: the transactions still pending call back
  // into it (range locks, metrics, the state file) as they end.
  for (const auto& slot : slots_) slot->replica->Close();
}

absl::Status Volume::Init() {
  if (!mirror()) return absl::OkStatus();
  if (options_.state_dir.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("volume ", config_.name(), ": a mirror needs state_dir"));
  }
  if (options_.open_state_store) {
    ASSIGN_OR_RETURN(store_, options_.open_state_store(config_.name()));
  } else {
    ASSIGN_OR_RETURN(store_, OpenFileStateStore(absl::StrCat(
                                 options_.state_dir, "/", config_.name(),
                                 ".state")));
  }
  const std::string& path = store_->name();
  absl::StatusOr<v1::VolumeState> loaded = store_->Load();
  absl::MutexLock lock(&mu_);
  if (loaded.ok()) {
    const v1::VolumeState& state = *loaded;
    if (state.volume() != config_.name()) {
      return absl::DataLossError(absl::StrCat(
          path, ": not the state file of volume ", config_.name(),
          " (refusing to start rather than forget which replica is stale)"));
    }
    if (state.region_bytes() != config_.region_bytes()) {
      return absl::FailedPreconditionError(absl::StrCat(
          path, ": written with region_bytes ", state.region_bytes(),
          "; the config says ", config_.region_bytes(), ": put it back"));
    }
    state_size_ = state.size();
    generations_.assign(state.generations().begin(), state.generations().end());
    const uint64_t regions =
        (state.size() + config_.region_bytes() - 1) / config_.region_bytes();
    for (auto& slot : slots_) {
      slot->sync = Sync::kOutOfSync;
      slot->dirty = RegionBitmap(regions);
      slot->dirty.SetAll();  // a replica the state does not know: full copy
      slot->unflushed = RegionBitmap(regions);
      for (const auto& known : state.replicas()) {
        if (known.address() != slot->replica->address()) continue;
        slot->identity = known.identity();
        if (known.in_sync()) {
          slot->sync = Sync::kInSync;
          slot->dirty.ClearAll();
        } else if (!slot->dirty.FromBytes(regions, known.dirty())) {
          return absl::DataLossError(absl::StrCat(
              path, ": the dirty bitmap of ", known.address(), " is damaged"));
        }
      }
    }
    if (!state.active().empty() &&
        !crashed_active_.FromBytes(regions, state.active())) {
      return absl::DataLossError(
          absl::StrCat(path, ": the activity log is damaged"));
    }
    DST_LOG(Info, "gateway: volume %s: loaded %s (generation %s)",
            config_.name(), path,
            generations_.empty() ? "none" : Hex(generations_[0]));
  } else if (!absl::IsNotFound(loaded.status())) {
    if (absl::IsDataLoss(loaded.status())) {
      return absl::DataLossError(absl::StrCat(
          loaded.status().message(),
          " (refusing to start rather than forget which replica is stale)"));
    }
    return loaded.status();
  }
  return absl::OkStatus();
}

void Volume::Start() {
  worker_->After(kWorkTick, [this] { Work(/*periodic=*/true); });
  for (size_t i = 0; i < slots_.size(); ++i) {
    slots_[i]->replica->Start(
        [this, i] { OnReplicaChange(i); },
        [this, i](const v1::NegotiateReply& reply) { return Admit(i, reply); });
  }
}

void Volume::Save() {
  absl::Notification saved;
  {
    absl::MutexLock lock(&mu_);
    if (store_ == nullptr || !decided_) return;
    PersistLocked([&saved](const absl::Status&) { saved.Notify(); });
  }
  saved.WaitForNotification();
}

void Volume::SaveThen(std::function<void(const absl::Status&)> then) {
  absl::MutexLock lock(&mu_);
  if (store_ == nullptr || !decided_) return;
  PersistLocked(std::move(then));
}

void Volume::OnReplicaChange(size_t index) {
  Slot& slot = *slots_[index];
  const bool connected = slot.replica->connected();
  slot.connected->Set(connected ? 1 : 0);
  absl::MutexLock lock(&mu_);
  slot.resync_ready = false;
}

// --- admission and decisions --------------------------------------------

void Volume::FenceLocked(const std::string& why) {
  if (fenced_.empty()) {
    DST_LOG(Error, "gateway: volume %s is fenced: %s", config_.name(), why);
  }
  fenced_ = why;
}

absl::StatusOr<uint64_t> Volume::Admit(size_t index,
                                       const v1::NegotiateReply& reply) {
  Slot& slot = *slots_[index];
  const v1::Geometry& g = reply.geometry();
  uint64_t epoch;
  {
    absl::MutexLock lock(&mu_);
    if (!fenced_.empty()) return absl::AbortedError(fenced_);
    if (g.size() < state_size_) {
      return absl::FailedPreconditionError(absl::StrCat(
          "exporter has ", g.size(), " bytes; the volume has ", state_size_));
    }
    if (geometry_.size() != 0) {
      // Clients already hold the volume's geometry: it cannot shrink.
      if (g.size() < geometry_.size() ||
          g.logical_block_size() > geometry_.logical_block_size() ||
          g.max_transfer() < geometry_.max_transfer() ||
          (g.features() & geometry_.features()) != geometry_.features()) {
        return absl::FailedPreconditionError(
            "exporter geometry (size, block size, max transfer or features) "
            "does not fit the volume's");
      }
    }
    const v1::ReplicaMetadata& md = reply.metadata();
    if (epoch_ == 0) epoch_ = md.epoch() + 1;
    if (md.epoch() > epoch_ ||
        (md.epoch() == epoch_ && md.owner() != options_.gateway_id)) {
      FenceLocked(absl::StrCat(
          "replica ", slot.replica->address(), " was claimed by '", md.owner(),
          "' (epoch ", md.epoch(), "); this gateway holds epoch ", epoch_));
      return absl::AbortedError(fenced_);
    }
    epoch = epoch_;
  }
  std::vector<uint64_t> generations(reply.metadata().generations().begin(),
                                    reply.metadata().generations().end());
  if (!config_.read_only()) {
    v1::ClaimRequest claim;
    claim.set_epoch(epoch);
    claim.set_owner(options_.gateway_id);
    absl::StatusOr<v1::ReplicaMetadata> claimed = slot.replica->Claim(claim);
    if (absl::IsUnimplemented(claimed.status())) {
      epoch = 0;  // an exporter without metadata: no fencing, no history
    } else if (absl::IsAborted(claimed.status())) {
      absl::MutexLock lock(&mu_);
      FenceLocked(std::string(claimed.status().message()));
      return claimed.status();
    } else if (!claimed.ok()) {
      return claimed.status();
    } else {
      generations.assign(claimed->generations().begin(),
                         claimed->generations().end());
    }
  }
  absl::MutexLock lock(&mu_);
  if (geometry_.size() == 0) {
    geometry_ = g;
    geometry_.set_size(state_size_ != 0 ? state_size_ : g.size());
    geometry_.set_size(geometry_.size() -
                       geometry_.size() % geometry_.logical_block_size());
    geometry_.set_identity(config_.name());
    geometry_.set_read_only(g.read_only() || config_.read_only());
    geometry_.clear_attributes();
  }
  if (!slot.identity.empty() && slot.identity != g.identity() &&
      slot.sync != Sync::kUnknown) {
    DST_LOG(Warning,
            "gateway: volume %s: replica %s changed identity from '%s' to "
            "'%s': treating it as a new disk (full resync)",
            config_.name(), slot.replica->address(), slot.identity,
            g.identity());
    generations.clear();
    SizeBitmapsLocked();
    RegionBitmap all(slot.dirty.size());
    all.SetAll();
    MarkMissedLocked(index, all, "replaced");
    save_later_ = true;
  }
  slot.identity = g.identity();
  slot.generations = std::move(generations);
  slot.admitted = true;
  if (!decided_ || mirror()) DecideLocked(index);
  return epoch;
}

void Volume::SizeBitmapsLocked() {
  const uint64_t regions =
      (geometry_.size() + config_.region_bytes() - 1) / config_.region_bytes();
  for (auto& slot : slots_) {
    if (slot->dirty.size() != regions) slot->dirty = RegionBitmap(regions);
    if (slot->unflushed.size() != regions) {
      slot->unflushed = RegionBitmap(regions);
    }
  }
  if (active_.size() != regions) active_ = RegionBitmap(regions);
  if (crashed_active_.size() != regions) {
    crashed_active_ = RegionBitmap(regions);
  }
}

void Volume::DecideLocked(size_t index) {
  Slot& slot = *slots_[index];
  if (!mirror()) {
    slot.sync = Sync::kInSync;
    decided_ = true;
    return;
  }
  SizeBitmapsLocked();
  if (generations_.empty()) {
    DecideFirstStartLocked();
    return;
  }
  const uint64_t current = slot.generations.empty() ? 0 : slot.generations[0];
  if (current == generations_[0] ||
      (current != 0 && Contains(generations_, current))) {
    // Known history: the state file says whether it is in sync.
    if (slot.sync == Sync::kInSync && current != generations_[0]) {
      slot.push_generation = true;
    }
  } else if (current == 0) {
    if (slot.sync != Sync::kOutOfSync || slot.dirty.count() == 0) {
      DST_LOG(Warning,
              "gateway: volume %s: replica %s has no generation (a new or "
              "wiped disk): full resync",
              config_.name(), slot.replica->address());
      RegionBitmap all(slot.dirty.size());
      all.SetAll();
      MarkMissedLocked(index, all, "new disk");
      save_later_ = true;
    }
  } else {
    diverged_ = absl::StrCat(
        "replica ", slot.replica->address(), " has generation ", Hex(current),
        Contains(slot.generations, generations_[0])
            ? ", newer than this gateway's state (written by another gateway?)"
            : ", unknown to this gateway's history (split brain)",
        "; keep one replica's data with: dstctl resolve ", config_.name(),
        " --source=ADDRESS");
    DST_LOG(Error, "gateway: volume %s diverged: %s", config_.name(),
            diverged_);
  }
  decided_ = true;
  if (slot.sync == Sync::kUnknown) slot.sync = Sync::kOutOfSync;
  slot.in_sync->Set(slot.sync == Sync::kInSync ? 1 : 0);
  // The first up-to-date replica back after a crash is the source of the
  // regions that were being written: the other in-sync replicas get them.
  if (crashed_active_.count() > 0 && slot.sync == Sync::kInSync &&
      diverged_.empty()) {
    for (size_t i = 0; i < slots_.size(); ++i) {
      if (i != index && slots_[i]->sync == Sync::kInSync) {
        MarkMissedLocked(i, crashed_active_,
                         "regions were being written when the gateway "
                         "stopped");
      }
    }
    DST_LOG(Warning,
            "gateway: volume %s: %d region(s) were being written when the "
            "gateway stopped; replica %s is their source",
            config_.name(), crashed_active_.count(), slot.replica->address());
    crashed_active_.ClearAll();
    save_later_ = true;
  }
}

void Volume::DecideFirstStartLocked() {
  for (const auto& slot : slots_) {
    if (!slot->admitted) return;  // first start: every replica must speak
  }
  // Pick the replica whose history contains every other's current one.
  const Slot* newest = nullptr;
  bool all_new = true;
  for (const auto& candidate : slots_) {
    if (!candidate->generations.empty()) all_new = false;
    bool covers = true;
    for (const auto& other : slots_) {
      if (!other->generations.empty() &&
          !Contains(candidate->generations, other->generations[0])) {
        covers = false;
      }
    }
    if (covers && !candidate->generations.empty() &&
        (newest == nullptr ||
         candidate->generations.size() > newest->generations.size())) {
      newest = candidate.get();
    }
  }
  if (all_new) {
    generations_ = {NewGeneration()};
    for (auto& slot : slots_) {
      slot->sync = Sync::kInSync;
      slot->push_generation = true;
      slot->in_sync->Set(1);
    }
    DST_LOG(Info,
            "gateway: volume %s: new mirror of %d replicas (fresh exporters, "
            "assumed identical; `dstctl verify` compares them), generation %s",
            config_.name(), slots_.size(), Hex(generations_[0]));
  } else if (newest == nullptr) {
    diverged_ = absl::StrCat(
        "the replicas' generation histories diverged (split brain); keep one "
        "replica's data with: dstctl resolve ",
        config_.name(), " --source=ADDRESS");
    DST_LOG(Error, "gateway: volume %s diverged: %s", config_.name(),
            diverged_);
    return;
  } else {
    generations_ = newest->generations;
    for (size_t i = 0; i < slots_.size(); ++i) {
      Slot& slot = *slots_[i];
      if (!slot.generations.empty() && slot.generations[0] == generations_[0]) {
        slot.sync = Sync::kInSync;
        slot.in_sync->Set(1);
      } else {
        slot.sync = Sync::kOutOfSync;
        slot.dirty.SetAll();  // no bitmap survived: copy everything
        slot.in_sync->Set(0);
        DST_LOG(Warning,
                "gateway: volume %s: replica %s is behind (no state file): "
                "full resync",
                config_.name(), slot.replica->address());
      }
    }
  }
  decided_ = true;
  save_later_ = true;
}

void Volume::Heal(const Slot* slot, uint64_t offset, uint64_t length) {
  absl::MutexLock lock(&mu_);
  size_t index = slots_.size();
  size_t in_sync_others = 0;
  for (size_t i = 0; i < slots_.size(); ++i) {
    if (slots_[i].get() == slot) {
      index = i;
    } else if (slots_[i]->sync == Sync::kInSync) {
      ++in_sync_others;
    }
  }
  // Without another in-sync copy there is nothing to heal from: the read
  // fails over or fails, and the replica stays.
  if (!mirror() || index == slots_.size() || in_sync_others == 0) return;
  const uint64_t region = config_.region_bytes();
  if (MarkMissedLocked(index, offset / region, (offset + length - 1) / region,
                       "its data failed a checksum; the region is recopied")) {
    save_later_ = true;
  }
}

bool Volume::LeaveInSyncLocked(size_t index, const std::string& why) {
  Slot& slot = *slots_[index];
  if (slot.dirty.size() == 0) SizeBitmapsLocked();
  if (slot.sync == Sync::kOutOfSync) return false;
  slot.sync = Sync::kOutOfSync;
  slot.in_sync->Set(0);
  slot.resync_total = 0;
  slot.resync_ready = false;
  generations_.insert(generations_.begin(), NewGeneration());
  if (generations_.size() > kGenerationHistory) {
    generations_.resize(kGenerationHistory);
  }
  for (auto& other : slots_) {
    if (other->sync == Sync::kInSync) other->push_generation = true;
  }
  lagging_counter_.Increment();
  DST_LOG(Warning,
          "gateway: volume %s: replica %s left the in-sync set (%s); "
          "generation %s",
          config_.name(), slot.replica->address(), why, Hex(generations_[0]));
  return true;
}

bool Volume::MarkMissedLocked(size_t index, uint64_t first, uint64_t last,
                              const std::string& why) {
  bool changed = LeaveInSyncLocked(index, why);
  Slot& slot = *slots_[index];
  changed |= slot.dirty.Set(first, last);
  slot.dirty_bytes->Set(static_cast<double>(slot.dirty.count()) *
                        config_.region_bytes());
  return changed;
}

bool Volume::MarkMissedLocked(size_t index, const RegionBitmap& missed,
                              const std::string& why) {
  bool changed = LeaveInSyncLocked(index, why);
  Slot& slot = *slots_[index];
  changed |= slot.dirty.Merge(missed);
  slot.dirty_bytes->Set(static_cast<double>(slot.dirty.count()) *
                        config_.region_bytes());
  return changed;
}

v1::VolumeState Volume::SnapshotLocked() const {
  v1::VolumeState state;
  state.set_volume(config_.name());
  state.set_size(geometry_.size() != 0 ? geometry_.size() : state_size_);
  state.set_region_bytes(config_.region_bytes());
  for (uint64_t g : generations_) state.add_generations(g);
  if (mirror()) {
    RegionBitmap active = active_;
    active.Merge(crashed_active_);
    if (active.count() > 0) state.set_active(active.ToBytes());
  }
  for (const auto& slot : slots_) {
    v1::VolumeState::Replica* r = state.add_replicas();
    r->set_address(slot->replica->address());
    r->set_identity(slot->identity);
    r->set_in_sync(slot->sync == Sync::kInSync);
    if (slot->sync != Sync::kInSync) r->set_dirty(slot->dirty.ToBytes());
  }
  return state;
}

void Volume::PersistLocked(std::function<void(const absl::Status&)> then) {
  save_later_ = false;
  saved_at_ = Now();
  store_->Write(SnapshotLocked(), std::move(then));
}

// --- lease --------------------------------------------------------------

absl::StatusOr<v1::Geometry> Volume::Open(bool read_only,
                                          const std::string& lease_token,
                                          const std::string& client_id) {
  absl::MutexLock lock(&mu_);
  if (!fenced_.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("volume ", config_.name(), " is fenced: ", fenced_));
  }
  if (!diverged_.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("volume ", config_.name(), " diverged: ", diverged_));
  }
  if (!decided_ || geometry_.size() == 0) {
    return absl::UnavailableError(absl::StrCat(
        "volume ", config_.name(), " is not ready: ",
        mirror() && generations_.empty()
            ? "a new mirror waits for all its replicas to connect once"
            : "no replica has connected yet"));
  }
  v1::Geometry geometry = geometry_;
  if (read_only || geometry.read_only()) {
    geometry.set_read_only(true);
    return geometry;
  }
  if (lease_token.empty()) {
    return absl::InvalidArgumentError(
        "a read-write open needs a lease token (OpenRequest.lease_token)");
  }
  const absl::Time now = Now();
  if (!lease_token_.empty() && lease_token_ != lease_token &&
      (lease_streams_ > 0 || now < lease_expiry_)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "volume ", config_.name(), " is already open read-write by '",
        lease_client_,
        "': one writer at a time (open it read-only, or stop the other "
        "client; its lease lapses ",
        config_.lease_timeout_ms() / 1000.0, " s after it disconnects)"));
  }
  if (lease_token_ != lease_token) {
    DST_LOG(Info, "gateway: volume %s: write lease granted to '%s'",
            config_.name(), client_id);
  }
  lease_token_ = lease_token;
  lease_client_ = client_id.empty() ? "?" : client_id;
  lease_expiry_ = now + absl::Milliseconds(config_.lease_timeout_ms());
  return geometry;
}

absl::Status Volume::AttachWriter(const std::string& lease_token) {
  absl::MutexLock lock(&mu_);
  if (lease_token.empty() || lease_token != lease_token_) {
    return absl::FailedPreconditionError(absl::StrCat(
        "no write lease on volume ", config_.name(),
        lease_token_.empty()
            ? ": Open it read-write first"
            : absl::StrCat(": it is held by '", lease_client_, "'")));
  }
  ++lease_streams_;
  return absl::OkStatus();
}

void Volume::DetachWriter() {
  absl::MutexLock lock(&mu_);
  if (--lease_streams_ == 0) {
    lease_expiry_ =
        Now() + absl::Milliseconds(config_.lease_timeout_ms());
  }
}

// --- I/O ----------------------------------------------------------------

void Volume::Submit(v1::Request request, Payload data, bool read_only,
                    TransactionDone done) {
  if (!request.data().empty()) data = TakeData(&request);
  total_.fetch_add(1, std::memory_order_relaxed);
  in_flight_.fetch_add(1, std::memory_order_relaxed);
  in_flight_gauge_.Increment();
  TransactionDone counted = [this, done = std::move(done), op = request.op(),
                             written = data.size(), start = absl::Now()](
                                v1::Reply&& reply, Payload&& reply_data) {
    const bool ok = reply.status() == 0;
    if (!ok) failed_.fetch_add(1, std::memory_order_relaxed);
    in_flight_.fetch_sub(1, std::memory_order_relaxed);
    in_flight_gauge_.Decrement();
    op_metrics_.Record(op, ok, written + reply_data.size(),
                       absl::Now() - start);
    done(std::move(reply), std::move(reply_data));
  };
  v1::Geometry geometry;
  absl::Status status;
  {
    absl::MutexLock lock(&mu_);
    geometry = geometry_;
    if (!fenced_.empty()) {
      status = absl::AbortedError(absl::StrCat("volume is fenced: ", fenced_));
    } else if (!diverged_.empty()) {
      status = absl::FailedPreconditionError(
          absl::StrCat("volume diverged: ", diverged_));
    } else if (!decided_ || geometry_.size() == 0) {
      status = absl::UnavailableError("volume is not ready");
    }
  }
  if (status.ok()) {
    status = ValidateRequest(request, data.size(), geometry,
                             read_only || geometry.read_only());
  }
  if (status.ok() && request.op() == v1::OP_CHECKSUM) {
    status = absl::InvalidArgumentError("checksums are for dstctl verify");
  }
  if (!status.ok()) {
    counted(ErrorReply(request.id(), status), Payload());
    return;
  }
  if (request.op() == v1::OP_PING) {
    counted(v1::Reply(), Payload());
    return;
  }
  // Integrity: a client's digest is checked here and travels on; without
  // one the volume's own algorithm covers the hop to the exporters.
  const v1::ChecksumAlgorithm own =
      geometry.features() & ChecksumFeature(checksum_) ? checksum_
                                                       : v1::CHECKSUM_NONE;
  const bool client_checksum =
      request.checksum_algorithm() != v1::CHECKSUM_NONE;
  if (request.op() == v1::OP_WRITE && client_checksum) {
    status = VerifyChecksum(request.checksum_algorithm(), data,
                            request.checksum(), "the client's write");
    if (!status.ok()) {
      counted(ErrorReply(request.id(), status), Payload());
      return;
    }
  } else if (request.op() == v1::OP_WRITE && own != v1::CHECKSUM_NONE) {
    request.set_checksum_algorithm(own);
    request.set_checksum(ComputeChecksum(own, data));
  } else if (request.op() == v1::OP_READ && !client_checksum) {
    request.set_checksum_algorithm(own);
  }
  if (request.op() == v1::OP_READ) {
    auto op = std::make_shared<ReadOp>();
    op->client_checksum = client_checksum;
    op->request = std::move(request);
    op->done = std::move(counted);
    // In-sync replicas, connected ones first, spread round robin: a
    // disconnected one would hold the read until it returned.
    const size_t first = next_read_.fetch_add(1, std::memory_order_relaxed);
    {
      absl::MutexLock lock(&mu_);
      for (bool connected : {true, false}) {
        for (size_t i = 0; i < slots_.size(); ++i) {
          const size_t k = (first + i) % slots_.size();
          if (slots_[k]->sync == Sync::kInSync &&
              slots_[k]->replica->connected() == connected) {
            op->order.push_back(k);
          }
        }
      }
    }
    if (op->order.empty()) {
      op->done(ErrorReply(op->request.id(),
                          absl::UnavailableError("no in-sync replica")),
               Payload());
      return;
    }
    SubmitRead(op);
    return;
  }
  auto fanout = std::make_shared<Fanout>();
  fanout->request = std::move(request);
  fanout->data = std::move(data);
  if (!IsModifying(fanout->request.op())) {  // FLUSH
    fanout->done = std::move(counted);
    SubmitFanout(fanout);
    return;
  }
  const uint64_t offset = fanout->request.offset();
  const uint64_t length = fanout->request.length();
  fanout->done = [this, offset, length, counted = std::move(counted)](
                     v1::Reply&& reply, Payload&& reply_data) {
    modifications_.Release(offset, length);
    counted(std::move(reply), std::move(reply_data));
  };
  modifications_.Acquire(offset, length,
                         [this, fanout] { SubmitFanout(fanout); });
}

void Volume::SubmitRead(const std::shared_ptr<ReadOp>& op) {
  size_t k;
  {
    absl::MutexLock lock(&op->mu);
    if (op->finished || op->sent >= op->order.size()) return;
    k = op->order[op->sent++];
  }
  if (op->order.size() > 1) {
    // Not answered within the lag limit: ask the next replica too.
    After(absl::Milliseconds(config_.lag_limit_ms()),
          [this, weak = std::weak_ptr<ReadOp>(op)] {
            std::shared_ptr<ReadOp> op = weak.lock();
            if (op == nullptr) return;
            {
              absl::MutexLock lock(&op->mu);
              if (op->finished || op->sent >= op->order.size()) return;
            }
            hedged_reads_counter_.Increment();
            SubmitRead(op);
          });
  }
  Slot* slot = slots_[k].get();
  ReplicaHandle* replica = slot->replica.get();
  replica->Submit(op->request, [this, op, slot, replica](v1::Reply&& reply,
                                                         Payload&& data) {
    const v1::ChecksumAlgorithm algorithm = op->request.checksum_algorithm();
    if (reply.status() == 0 && algorithm != v1::CHECKSUM_NONE) {
      absl::Status intact =
          VerifyChecksum(algorithm, data, reply.checksum(), "the data read");
      if (!intact.ok()) {
        slot->checksum_mismatches.fetch_add(1, std::memory_order_relaxed);
        slot->mismatches->Increment();
        reply = ErrorReply(reply.id(), intact);
        Heal(slot, op->request.offset(), op->request.length());
      } else if (!op->client_checksum) {
        reply.clear_checksum();
      }
    }
    bool next = false;
    {
      absl::MutexLock lock(&op->mu);
      if (op->finished) return;
      if (reply.status() == 0) {
        op->finished = true;
      } else {
        ++op->failed;
        reply.set_message(absl::StrCat("replica ", replica->address(), ": ",
                                       reply.message()));
        op->last_error = reply;
        if (op->sent < op->order.size()) {
          next = true;
        } else if (op->failed == op->sent) {
          op->finished = true;
          reply = op->last_error;
        } else {
          return;  // another replica is still answering
        }
      }
    }
    if (next) {
      // Per request: counted in metrics, logged at debug level only.
      DST_LOG(Debug, "gateway: volume %s: read failed (%s); trying another",
              config_.name(), reply.message());
      SubmitRead(op);
      return;
    }
    if (reply.status() != 0) data = Payload();
    op->done(std::move(reply), std::move(data));
  });
}

void Volume::SubmitFanout(const std::shared_ptr<Fanout>& fanout) {
  const v1::Request& request = fanout->request;
  const bool flush = request.op() == v1::OP_FLUSH;
  bool persist = false;
  {
    absl::MutexLock lock(&mu_);
    const uint64_t first_region = request.offset() / config_.region_bytes();
    const uint64_t last_region =
        request.length() == 0 ? first_region
                              : (request.offset() + request.length() - 1) /
                                    config_.region_bytes();
    fanout->first_region = first_region;
    fanout->last_region = last_region;
    const bool modifying = IsModifying(request.op());
    if (mirror() && modifying) {
      if (active_.size() == 0) SizeBitmapsLocked();
      persist |= active_.Set(first_region, last_region);
    }
    for (size_t i = 0; i < slots_.size(); ++i) {
      Slot& slot = *slots_[i];
      if (slot.sync == Sync::kInSync) {
        Fanout::Target target(i, true);
        if (flush && mirror()) {
          target.unflushed = slot.unflushed;
          slot.unflushed.ClearAll();
        }
        fanout->targets.push_back(std::move(target));
      } else if (flush) {
        continue;  // out of sync: resync copies are written with FUA
      } else if (slot.resync_ready && slot.replica->connected() &&
                 slot.dirty.AllClear(first_region, last_region)) {
        // Keeps a clean (already resynced) region clean.
        fanout->targets.emplace_back(i, false);
      } else {
        persist |=
            MarkMissedLocked(i, first_region, last_region, "out of sync");
      }
    }
    fanout->pending = fanout->targets.size();
    if (!persist && mirror() && modifying && !fanout->targets.empty()) {
      for (uint64_t r = first_region; r <= last_region; ++r) ++writing_[r];
    }
    if (persist) {
      // The missed regions are durable before any replica is asked, so no
      // acknowledgement can outrun them.
      PersistLocked([this, fanout](const absl::Status& saved) {
        if (!saved.ok()) {
          fanout->done(ErrorReply(fanout->request.id(),
                                  absl::InternalError(absl::StrCat(
                                      "cannot record dirty regions: ",
                                      saved.message()))),
                       Payload());
          return;
        }
        SubmitFanout(fanout);
      });
      // Restarted once saved, with the state then current.
      fanout->targets.clear();
      return;
    }
  }
  if (fanout->targets.empty()) {
    fanout->done(
        ErrorReply(request.id(), absl::UnavailableError("no in-sync replica")),
        Payload());
    return;
  }
  // Every target shares the data: a mirrored write is not copied here.
  const Payload data = std::move(fanout->data);
  for (size_t t = 0; t < fanout->targets.size(); ++t) {
    ReplicaHandle* replica = slots_[fanout->targets[t].slot]->replica.get();
    replica->Submit(
        request,
        [this, fanout, t](v1::Reply&& reply, Payload&&) {
          OnFanoutReply(fanout, t, std::move(reply));
        },
        data);
  }
}

void Volume::OnFanoutReply(const std::shared_ptr<Fanout>& fanout, size_t target,
                           v1::Reply&& reply) {
  bool finish = false;
  bool arm_timer = false;
  {
    absl::MutexLock lock(&fanout->mu);
    Fanout::Target& t = fanout->targets[target];
    --fanout->pending;
    if (reply.status() == 0) {
      t.state = Fanout::Target::kOk;
      if (t.required) fanout->required_ok = true;
    } else {
      t.state = Fanout::Target::kFailed;
      if (reply.status() == static_cast<int>(absl::StatusCode::kAborted)) {
        fanout->fenced = true;
      }
      if (fanout->first_error.status() == 0) {
        fanout->first_error = reply;
        fanout->first_error.set_message(
            absl::StrCat("replica ", slots_[t.slot]->replica->address(), ": ",
                         reply.message()));
      }
    }
    bool required_left = false;
    for (const auto& other : fanout->targets) {
      if (other.required && other.state == Fanout::Target::kPending) {
        required_left = true;
      }
    }
    if (fanout->finished) return;
    if (fanout->pending == 0 || (!required_left && !fanout->required_ok)) {
      finish = true;
    } else if (fanout->required_ok && !fanout->lag_timer) {
      fanout->lag_timer = true;
      arm_timer = true;
    }
  }
  if (arm_timer) {
    // A weak reference: the timer must not keep a write's payload alive.
    After(absl::Milliseconds(config_.lag_limit_ms()),
          [this, weak = std::weak_ptr<Fanout>(fanout)] {
            if (std::shared_ptr<Fanout> fanout = weak.lock()) {
              FinishFanout(fanout);
            }
          });
  }
  if (finish) FinishFanout(fanout);
}

void Volume::FinishFanout(const std::shared_ptr<Fanout>& fanout) {
  std::vector<Fanout::Target*> missed;
  std::vector<Fanout::Target*> ok;
  {
    absl::MutexLock lock(&fanout->mu);
    if (fanout->finished) return;
    fanout->finished = true;
    for (auto& t : fanout->targets) {
      (t.state == Fanout::Target::kOk ? ok : missed).push_back(&t);
    }
  }
  const uint64_t id = fanout->request.id();
  const bool flush = fanout->request.op() == v1::OP_FLUSH;
  if (mirror()) {
    absl::MutexLock lock(&mu_);
    if (IsModifying(fanout->request.op())) {
      for (uint64_t r = fanout->first_region; r <= fanout->last_region; ++r) {
        auto it = writing_.find(r);
        if (it != writing_.end() && --it->second <= 0) writing_.erase(it);
      }
    } else if (flush && fanout->required_ok && !fanout->fenced) {
      // Everything acknowledged is on every in-sync replica: only regions
      // with a modification still in flight stay active.
      bool cleared = false;
      for (uint64_t r = active_.NextSet(0); r < active_.size();) {
        if (writing_.count(r) == 0) {
          active_.Clear(r);
          cleared = true;
        }
        const uint64_t next =
            r + 1 < active_.size() ? active_.NextSet(r + 1) : active_.size();
        if (next <= r) break;  // wrapped around: done
        r = next;
      }
      if (cleared) save_later_ = true;
    }
  }
  if (fanout->fenced || !fanout->required_ok) {
    // Fenced: another gateway writes now. Nothing in sync took it: no
    // replica is behind another, but an out-of-sync one that took it must
    // not keep the region clean, and a flush gives back what it was to
    // make durable.
    {
      absl::MutexLock lock(&mu_);
      if (fanout->fenced) FenceLocked(fanout->first_error.message());
      for (auto& t : fanout->targets) {
        Slot& slot = *slots_[t.slot];
        if (flush) {
          slot.unflushed.Merge(t.unflushed);
        } else if (!t.required && t.state == Fanout::Target::kOk &&
                   slot.dirty.Set(fanout->first_region, fanout->last_region)) {
          save_later_ = true;
        }
      }
    }
    v1::Reply error = fanout->first_error;
    if (error.status() == 0) {
      error = ErrorReply(id, absl::UnavailableError("no replica answered"));
    }
    error.set_id(id);
    fanout->done(std::move(error), Payload());
    return;
  }
  bool persist = false;
  {
    absl::MutexLock lock(&mu_);
    if (mirror()) {
      for (Fanout::Target* t : ok) {
        if (!flush && t->required) {
          slots_[t->slot]->unflushed.Set(fanout->first_region,
                                         fanout->last_region);
        }
      }
      for (Fanout::Target* t : missed) {
        const std::string why = t->state == Fanout::Target::kFailed
                                    ? "a transaction failed"
                                    : "lagged past lag_limit_ms";
        persist |= flush ? MarkMissedLocked(t->slot, t->unflushed, why)
                         : MarkMissedLocked(t->slot, fanout->first_region,
                                            fanout->last_region, why);
      }
    }
    if (persist) {
      PersistLocked([fanout, id](const absl::Status& saved) {
        fanout->done(saved.ok()
                         ? v1::Reply()
                         : ErrorReply(id, absl::InternalError(absl::StrCat(
                                              "cannot record dirty "
                                              "regions: ",
                                              saved.message()))),
                     Payload());
      });
      return;
    }
  }
  v1::Reply reply;
  reply.set_id(id);
  fanout->done(std::move(reply), Payload());
}

// --- monitor: timers, resync, generations ---------------------------------

void Volume::After(absl::Duration delay, std::function<void()> fn) {
  timers_->After(delay, std::move(fn));
}

void Volume::KickWorker() {
  {
    absl::MutexLock lock(&work_mu_);
    if (kicked_) return;  // one queued run does it
    kicked_ = true;
  }
  worker_->After(absl::ZeroDuration(), [this] { Work(/*periodic=*/false); });
}

void Volume::Work(bool periodic) {
  if (periodic) {
    worker_->After(kWorkTick, [this] { Work(/*periodic=*/true); });
  } else {
    absl::MutexLock lock(&work_mu_);
    kicked_ = false;
  }
  UpdateMetrics();
  if (!mirror()) return;
  PushGenerations();
  DriveResync(/*promote=*/true);
  absl::MutexLock lock(&mu_);
  if (save_later_ && decided_ && Now() - saved_at_ > kLazySave) {
    PersistLocked(nullptr);
  }
}

void Volume::UpdateMetrics() {
  const absl::Time now = Now();
  for (const auto& slot : slots_) {
    const SessionCounters counters = slot->replica->counters();
    auto forward = [](uint64_t now_value, uint64_t& seen,
                      prometheus::Counter* counter) {
      if (now_value > seen) {
        counter->Increment(static_cast<double>(now_value - seen));
        seen = now_value;
      }
    };
    forward(counters.resends, slot->seen_resends, slot->resends);
    forward(counters.timeouts, slot->seen_timeouts, slot->timeouts);
    forward(counters.reconnects, slot->seen_reconnects, slot->reconnects);
    slot->in_flight->Set(static_cast<double>(slot->replica->pending()));
    if (now >= slot->next_ping && slot->replica->connected()) {
      slot->next_ping = now + kPingInterval;
      prometheus::Histogram* histogram = slot->ping;
      slot->replica->Ping([histogram](absl::Duration rtt) {
        histogram->Observe(absl::ToDoubleSeconds(rtt));
      });
    }
  }
  const std::string state = this->state();
  for (size_t i = 0; i < state_gauges_.size(); ++i) {
    state_gauges_[i]->Set(state == kVolumeStates[i] ? 1 : 0);
  }
}

void Volume::PushGenerations() {
  for (size_t i = 0; i < slots_.size(); ++i) {
    Slot& slot = *slots_[i];
    v1::ClaimRequest claim;
    {
      absl::MutexLock lock(&mu_);
      if (!slot.push_generation || !slot.replica->connected() || epoch_ == 0 ||
          !fenced_.empty() || slot.sync != Sync::kInSync) {
        continue;
      }
      claim.set_epoch(epoch_);
      claim.set_owner(options_.gateway_id);
      claim.set_set_generations(true);
      for (uint64_t g : generations_) claim.add_generations(g);
    }
    absl::StatusOr<v1::ReplicaMetadata> claimed = slot.replica->Claim(claim);
    absl::MutexLock lock(&mu_);
    if (absl::IsAborted(claimed.status())) {
      FenceLocked(std::string(claimed.status().message()));
    } else if (claimed.ok() || absl::IsUnimplemented(claimed.status())) {
      if (!generations_.empty() && claim.generations(0) == generations_[0]) {
        slot.push_generation = false;
      }
      if (claimed.ok()) {
        slot.generations.assign(claimed->generations().begin(),
                                claimed->generations().end());
      }
    }
  }
}

void Volume::DriveResync(bool promote) {
  std::vector<std::pair<size_t, uint64_t>> copies;  // (target, region)
  std::vector<size_t> promotions;
  size_t source = slots_.size();
  {
    absl::MutexLock lock(&mu_);
    if (resync_paused_ || !decided_ || !fenced_.empty() || !diverged_.empty()) {
      return;
    }
    for (size_t i = 0; i < slots_.size(); ++i) {
      if (slots_[i]->sync == Sync::kInSync && slots_[i]->replica->connected()) {
        source = i;
        break;
      }
    }
    if (source == slots_.size()) return;
    const absl::Time now = Now();
    for (size_t i = 0; i < slots_.size(); ++i) {
      Slot& slot = *slots_[i];
      if (slot.sync != Sync::kOutOfSync || !slot.admitted ||
          slot.copying.size() >= kResyncDepth || !slot.replica->connected()) {
        continue;
      }
      // Transactions sent before it left the set must be over first: a late
      // one could land after the copy of its region.
      if (!slot.resync_ready) {
        if (slot.replica->pending() != 0) continue;
        slot.resync_ready = true;
      }
      if (slot.dirty.count() == 0) {
        if (slot.copying.empty()) promotions.push_back(i);
        continue;
      }
      if (slot.resync_total == 0) {
        slot.resync_total = slot.dirty.count() * config_.region_bytes();
        slot.resync_started = now;
        slot.copied_before = slot.copied;
        DST_LOG(Info,
                "gateway: volume %s: resync of replica %s from %s: %d "
                "dirty bytes",
                config_.name(), slot.replica->address(),
                slots_[source]->replica->address(), slot.resync_total);
      }
      // Up to kResyncDepth regions in flight, as the throttle allows.
      while (slot.copying.size() < kResyncDepth && now >= slot.next_copy) {
        uint64_t region = slot.dirty.NextSet(slot.cursor);
        for (size_t tries = 0;
             region < slot.dirty.size() && slot.copying.count(region) != 0 &&
             tries <= slot.copying.size();
             ++tries) {
          region = slot.dirty.NextSet(region + 1);
        }
        if (region >= slot.dirty.size() || slot.copying.count(region) != 0) {
          break;
        }
        slot.cursor = region + 1;
        slot.copying.insert(region);
        if (resync_rate_ > 0) {
          slot.next_copy =
              std::max(slot.next_copy, now) +
              absl::Seconds(static_cast<double>(config_.region_bytes()) /
                            static_cast<double>(resync_rate_));
        }
        copies.emplace_back(i, region);
      }
    }
  }
  for (auto [target, region] : copies) CopyRegion(target, source, region);
  if (!promote) {
    if (!promotions.empty()) KickWorker();
    return;
  }
  for (size_t target : promotions) Promote(target);
}

void Volume::CopyRegion(size_t target, size_t source, uint64_t region) {
  uint64_t offset;
  uint64_t end;
  {
    absl::MutexLock lock(&mu_);
    offset = region * config_.region_bytes();
    end = std::min(offset + config_.region_bytes(), geometry_.size());
  }
  // Under the range lock: no client write to the region meanwhile.
  modifications_.Acquire(offset, end - offset,
                         [this, target, source, region, offset, end] {
                           CopyChunk(target, source, region, offset, end);
                         });
}

void Volume::CopyChunk(size_t target, size_t source, uint64_t region,
                       uint64_t offset, uint64_t end) {
  const uint64_t region_start = region * config_.region_bytes();
  if (offset >= end) {
    EndCopy(target, region, true);
    modifications_.Release(region_start, end - region_start);
    return;
  }
  uint64_t length;
  {
    absl::MutexLock lock(&mu_);
    length = std::min<uint64_t>(end - offset, geometry_.max_transfer());
  }
  v1::Request read;
  read.set_op(v1::OP_READ);
  read.set_offset(offset);
  read.set_length(static_cast<uint32_t>(length));
  {
    absl::MutexLock lock(&mu_);
    if (geometry_.features() & ChecksumFeature(checksum_)) {
      read.set_checksum_algorithm(checksum_);
    }
  }
  auto fail = [this, target, region, region_start, end](const v1::Reply& why) {
    DST_LOG(Warning, "gateway: volume %s: resync of %s: region %d: %s",
            config_.name(), slots_[target]->replica->address(), region,
            why.message());
    EndCopy(target, region, false);
    modifications_.Release(region_start, end - region_start);
  };
  slots_[source]->replica->Submit(read, [this, target, source, region, offset,
                                         end, length, fail](v1::Reply&& reply,
                                                            Payload&& data) {
    if (reply.status() == 0 && !reply.checksum().empty()) {
      absl::Status intact =
          VerifyChecksum(checksum_, data, reply.checksum(), "resync data");
      if (!intact.ok()) reply = ErrorReply(reply.id(), intact);
    }
    if (reply.status() != 0) {
      fail(reply);
      return;
    }
    v1::Request write;
    write.set_op(v1::OP_WRITE);
    write.set_offset(offset);
    write.set_length(static_cast<uint32_t>(length));
    write.set_flags(v1::REQUEST_FLAG_FUA);  // durable before its bit clears
    if (!reply.checksum().empty()) {
      write.set_checksum_algorithm(checksum_);
      write.set_checksum(reply.checksum());  // the source's, end to end
    }
    // The data read goes on as it arrived, not copied.
    slots_[target]->replica->Submit(
        write,
        [this, target, source, region, offset, end, length, fail](
            v1::Reply&& written, Payload&&) {
          if (written.status() != 0) {
            fail(written);
            return;
          }
          {
            absl::MutexLock lock(&mu_);
            slots_[target]->copied += length;
          }
          slots_[target]->resync_bytes->Increment(static_cast<double>(length));
          CopyChunk(target, source, region, offset + length, end);
        },
        std::move(data));
  });
}

void Volume::EndCopy(size_t target, uint64_t region, bool ok) {
  {
    absl::MutexLock lock(&mu_);
    Slot& slot = *slots_[target];
    slot.copying.erase(region);
    if (!ok) {
      slot.next_copy = Now() + kCopyRetry;
      return;
    }
    slot.dirty.Clear(region);
    slot.dirty_bytes->Set(static_cast<double>(slot.dirty.count()) *
                          config_.region_bytes());
    save_later_ = true;
  }
  // The next region at once, not at the next tick (no blocking work here:
  // this runs on a reply's thread).
  DriveResync(/*promote=*/false);
}

void Volume::Promote(size_t target) {
  Slot& slot = *slots_[target];
  v1::ClaimRequest claim;
  {
    absl::MutexLock lock(&mu_);
    claim.set_epoch(epoch_);
    claim.set_owner(options_.gateway_id);
    claim.set_set_generations(true);
    for (uint64_t g : generations_) claim.add_generations(g);
  }
  if (claim.epoch() != 0) {
    absl::StatusOr<v1::ReplicaMetadata> claimed = slot.replica->Claim(claim);
    if (!claimed.ok() && !absl::IsUnimplemented(claimed.status())) {
      absl::MutexLock lock(&mu_);
      if (absl::IsAborted(claimed.status())) {
        FenceLocked(std::string(claimed.status().message()));
      }
      slot.next_copy = Now() + kCopyRetry;
      return;
    }
  }
  absl::MutexLock lock(&mu_);
  if (slot.sync != Sync::kOutOfSync || slot.dirty.count() != 0 ||
      !slot.copying.empty() || !slot.replica->connected()) {
    return;  // something changed meanwhile: the next round decides
  }
  slot.sync = Sync::kInSync;
  slot.in_sync->Set(1);
  slot.unflushed.ClearAll();
  slot.generations.assign(claim.generations().begin(),
                          claim.generations().end());
  if (generations_.empty() || slot.generations.empty() ||
      slot.generations[0] != generations_[0]) {
    slot.push_generation = true;
  }
  DST_LOG(Info,
          "gateway: volume %s: replica %s is in sync again (resync copied %d "
          "of %d dirty bytes in %s)",
          config_.name(), slot.replica->address(),
          slot.copied - slot.copied_before, slot.resync_total,
          absl::FormatDuration(Now() - slot.resync_started));
  slot.resync_total = 0;
  PersistLocked(nullptr);
}

// --- admin ----------------------------------------------------------------

std::string Volume::StateLocked() const {
  if (!fenced_.empty()) return "fenced";
  if (!diverged_.empty()) return "diverged";
  if (!decided_ || geometry_.size() == 0) return "unavailable";
  bool any_in_sync_connected = false;
  bool all_in_sync = true;
  for (const auto& slot : slots_) {
    if (slot->sync != Sync::kInSync) all_in_sync = false;
    if (slot->sync == Sync::kInSync && slot->replica->connected()) {
      any_in_sync_connected = true;
    }
  }
  if (!any_in_sync_connected) return "waiting";
  return all_in_sync ? "ready" : "degraded";
}

std::string Volume::state() const {
  absl::MutexLock lock(&mu_);
  return StateLocked();
}

v1::VolumeStatus Volume::Status() const {
  v1::VolumeStatus status;
  status.set_name(config_.name());
  absl::MutexLock lock(&mu_);
  *status.mutable_geometry() = geometry_;
  status.set_state(StateLocked());
  if (!fenced_.empty()) {
    status.set_message(fenced_);
  } else if (!diverged_.empty()) {
    status.set_message(diverged_);
  } else if (status.state() == "waiting") {
    status.set_message(
        "no up-to-date replica is reachable; I/O waits for one (out-of-sync "
        "replicas are never a source; `dstctl resolve` overrides)");
  }
  status.set_generation(generations_.empty() ? 0 : generations_[0]);
  status.set_epoch(epoch_);
  if (!lease_token_.empty() &&
      (lease_streams_ > 0 || Now() < lease_expiry_)) {
    status.set_lease_holder(lease_client_);
  }
  status.set_resync_rate_bytes(resync_rate_);
  status.set_resync_paused(resync_paused_);
  for (const auto& slot : slots_) {
    v1::ReplicaStatus* r = status.add_replicas();
    *r = slot->replica->Status();
    if (r->identity().empty()) r->set_identity(slot->identity);
    const bool connected = slot->replica->connected();
    switch (slot->sync) {
      case Sync::kUnknown:
        r->set_sync("unknown");
        break;
      case Sync::kInSync:
        r->set_sync("in_sync");
        break;
      case Sync::kOutOfSync:
        r->set_sync(!connected ? "stale"
                    : slot->resync_total > 0 || !slot->copying.empty()
                        ? "resyncing"
                        : "out_of_sync");
        break;
    }
    r->set_dirty_bytes(slot->sync == Sync::kInSync
                           ? 0
                           : slot->dirty.count() * config_.region_bytes());
    r->set_resync_copied_bytes(slot->copied);
    r->set_resync_total_bytes(slot->resync_total);
    r->set_generation(slot->generations.empty() ? 0 : slot->generations[0]);
    r->set_checksum_mismatches(slot->checksum_mismatches.load());
  }
  status.set_transactions_total(total_.load());
  status.set_transactions_failed(failed_.load());
  status.set_in_flight(in_flight_.load());
  return status;
}

absl::Status Volume::Resync(const v1::ResyncRequest& request) {
  absl::MutexLock lock(&mu_);
  if (request.has_rate_bytes()) resync_rate_ = request.rate_bytes();
  resync_paused_ = request.stop();
  if (!request.full()) return absl::OkStatus();
  if (!mirror()) {
    return absl::FailedPreconditionError(
        absl::StrCat("volume ", config_.name(), " is not a mirror"));
  }
  for (size_t i = 0; i < slots_.size(); ++i) {
    if (slots_[i]->replica->address() != request.replica()) continue;
    size_t in_sync_others = 0;
    for (size_t j = 0; j < slots_.size(); ++j) {
      if (j != i && slots_[j]->sync == Sync::kInSync) ++in_sync_others;
    }
    if (in_sync_others == 0) {
      return absl::FailedPreconditionError(absl::StrCat(
          "replica ", request.replica(),
          " is the only in-sync replica: there is nothing to copy from"));
    }
    if (!decided_) return absl::UnavailableError("volume is not ready");
    SizeBitmapsLocked();
    RegionBitmap all(slots_[i]->dirty.size());
    all.SetAll();
    MarkMissedLocked(i, all, "full resync requested");
    slots_[i]->resync_total = 0;
    PersistLocked(nullptr);
    return absl::OkStatus();
  }
  return absl::NotFoundError(absl::StrCat(
      "volume ", config_.name(), " has no replica ", request.replica()));
}

absl::Status Volume::Resolve(const std::string& source) {
  absl::MutexLock lock(&mu_);
  if (!mirror()) {
    return absl::FailedPreconditionError(
        absl::StrCat("volume ", config_.name(), " is not a mirror"));
  }
  size_t chosen = slots_.size();
  for (size_t i = 0; i < slots_.size(); ++i) {
    if (slots_[i]->replica->address() == source) chosen = i;
  }
  if (chosen == slots_.size()) {
    return absl::NotFoundError(
        absl::StrCat("volume ", config_.name(), " has no replica ", source));
  }
  if (!slots_[chosen]->admitted || geometry_.size() == 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "replica ", source, " has not connected: its data cannot be kept"));
  }
  SizeBitmapsLocked();
  generations_.insert(generations_.begin(), NewGeneration());
  if (generations_.size() > kGenerationHistory) {
    generations_.resize(kGenerationHistory);
  }
  for (size_t i = 0; i < slots_.size(); ++i) {
    Slot& slot = *slots_[i];
    slot.resync_total = 0;
    if (i == chosen) {
      slot.sync = Sync::kInSync;
      slot.dirty.ClearAll();
      slot.push_generation = true;
    } else {
      slot.sync = Sync::kOutOfSync;
      slot.dirty.SetAll();
      slot.resync_ready = false;
    }
    slot.in_sync->Set(slot.sync == Sync::kInSync ? 1 : 0);
    slot.dirty_bytes->Set(static_cast<double>(slot.dirty.count()) *
                          config_.region_bytes());
  }
  diverged_.clear();
  decided_ = true;
  DST_LOG(Warning,
          "gateway: volume %s resolved by the operator: keeping the data of "
          "replica %s (generation %s); every other replica is fully "
          "resynchronized from it",
          config_.name(), source, Hex(generations_[0]));
  PersistLocked(nullptr);
  return absl::OkStatus();
}

absl::StatusOr<v1::VerifyReply> Volume::Verify(
    const v1::VerifyRequest& request) {
  std::vector<size_t> compared;
  uint64_t size;
  uint64_t chunk;
  {
    absl::MutexLock lock(&mu_);
    if (!decided_ || geometry_.size() == 0) {
      return absl::UnavailableError("volume is not ready");
    }
    for (size_t i = 0; i < slots_.size(); ++i) {
      if (slots_[i]->sync == Sync::kInSync) compared.push_back(i);
    }
    size = geometry_.size();
    chunk =
        std::min<uint64_t>(config_.region_bytes(), geometry_.max_transfer());
  }
  const uint64_t begin = request.offset();
  const uint64_t end =
      request.length() == 0 ? size : std::min(size, begin + request.length());
  if (begin > size || begin % 512 != 0) {
    return absl::InvalidArgumentError(
        "offset must be a multiple of 512 inside the volume");
  }
  v1::VerifyReply reply;
  for (size_t i : compared) reply.add_replicas(slots_[i]->replica->address());
  if (compared.size() < 2) return reply;
  for (uint64_t offset = begin; offset < end; offset += chunk) {
    const uint64_t length = std::min(chunk, end - offset);
    std::string first;
    bool differs = false;
    // Under the range lock, so that a write in flight is not a difference.
    absl::Notification locked;
    modifications_.Acquire(offset, length, [&locked] { locked.Notify(); });
    locked.WaitForNotification();
    for (size_t k = 0; k < compared.size(); ++k) {
      v1::Request sum;
      sum.set_op(v1::OP_CHECKSUM);
      sum.set_offset(offset);
      sum.set_length(static_cast<uint32_t>(length));
      v1::Reply digest = WaitForReply([&](TransactionDone done) {
        slots_[compared[k]]->replica->Submit(sum, std::move(done));
      });
      if (digest.status() != 0) {
        modifications_.Release(offset, length);
        return absl::UnavailableError(
            absl::StrCat("replica ", slots_[compared[k]]->replica->address(),
                         ": ", digest.message()));
      }
      if (k == 0) {
        first = digest.data();
      } else if (digest.data() != first) {
        differs = true;
      }
    }
    modifications_.Release(offset, length);
    reply.set_compared_bytes(reply.compared_bytes() + length);
    if (differs) {
      v1::Range* range = reply.add_differing();
      range->set_offset(offset);
      range->set_length(length);
    }
  }
  return reply;
}

std::unique_ptr<Volume> MakeVolume(const v1::VolumeConfig& config,
                                   const VolumeOptions& options,
                                   int max_message_bytes,
                                   prometheus::Registry& registry) {
  std::vector<std::unique_ptr<ReplicaHandle>> replicas;
  for (const v1::ReplicaConfig& replica : config.replicas()) {
    ReplicaOptions r;
    r.address = replica.address();
    r.client_id = absl::StrCat(options.gateway_id, "/", config.name());
    r.read_only = config.read_only();
    r.max_message_bytes = max_message_bytes;
    r.keepalive = absl::Milliseconds(config.keepalive_ms());
    r.tls = options.tls;
    r.keepalive_timeout = absl::Milliseconds(config.keepalive_timeout_ms());
    // Every log line of the session names the volume and the replica.
    r.session.name =
        absl::StrCat("volume ", config.name(), " replica ", replica.address());
    r.session.request_timeout = absl::Milliseconds(config.request_timeout_ms());
    r.session.max_resends = static_cast<int>(config.max_resends());
    r.session.suspend_timeout = absl::Milliseconds(config.suspend_timeout_ms());
    replicas.push_back(std::make_unique<Replica>(r));
  }
  return std::make_unique<Volume>(config, options, std::move(replicas),
                                  registry);
}

absl::StatusOr<std::unique_ptr<Volume>> BuildVolume(
    const v1::VolumeConfig& config, const VolumeOptions& options,
    int max_message_bytes, prometheus::Registry& registry) {
  if (config.replicas_size() > 1 && !options.state_dir.empty()) {
    std::error_code error;
    std::filesystem::create_directories(options.state_dir, error);
    if (error) {
      return absl::FailedPreconditionError(
          absl::StrCat("state_dir ", options.state_dir, ": ", error.message()));
    }
  }
  std::unique_ptr<Volume> volume =
      MakeVolume(config, options, max_message_bytes, registry);
  if (absl::Status s = volume->Init(); !s.ok()) {
    return absl::Status(
        s.code(), absl::StrCat("volume ", config.name(), ": ", s.message()));
  }
  return volume;
}

}  // namespace dst
