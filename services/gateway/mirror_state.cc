// A mirror's membership state and decisions: see mirror_state.h.
#include "services/gateway/mirror_state.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"

#include "services/common/base/log.h"

namespace dst {

namespace {

// Generations kept in the volume's history (and on its exporters). A
// replica away for longer is still known as stale by the generation it
// left with (Replica::left_generation).
constexpr size_t kGenerationHistory = 16;

bool Contains(const std::vector<uint64_t>& list, uint64_t g) {
  return std::find(list.begin(), list.end(), g) != list.end();
}

std::string Hex(uint64_t g) { return absl::StrCat(absl::Hex(g)); }

}  // namespace

const char* SyncName(SyncState sync) {
  switch (sync) {
    case SyncState::kUnknown:
      return "unknown";
    case SyncState::kInSync:
      return "in_sync";
    case SyncState::kOutOfSync:
      return "out_of_sync";
  }
  return "?";
}

MirrorState::MirrorState(std::string volume, std::vector<std::string> addresses,
                         uint32_t region_bytes,
                         std::function<uint64_t()> new_generation,
                         size_t keep_active)
    : volume_(std::move(volume)),
      region_bytes_(region_bytes),
      new_generation_(std::move(new_generation)),
      recent_(keep_active) {
  for (std::string& address : addresses) {
    Replica r;
    r.address = std::move(address);
    replicas_.push_back(std::move(r));
  }
}

// --- durable state -----------------------------------------------------------

absl::Status MirrorState::Load(const v1::VolumeState& state,
                               const std::string& where) {
  if (state.volume() != volume_) {
    return absl::DataLossError(absl::StrCat(
        where, ": not the state file of volume ", volume_,
        " (refusing to start rather than forget which replica is stale)"));
  }
  if (state.region_bytes() != region_bytes_) {
    return absl::FailedPreconditionError(absl::StrCat(
        where, ": written with region_bytes ", state.region_bytes(),
        "; the config says ", region_bytes_, ": put it back"));
  }
  state_size_ = state.size();
  regions_ = (state.size() + region_bytes_ - 1) / region_bytes_;
  generations_.assign(state.generations().begin(), state.generations().end());
  for (Replica& r : replicas_) {
    r.sync = SyncState::kOutOfSync;
    r.why = "new to the volume";
    r.dirty = All();  // a replica the state does not know: a full copy
    r.unflushed = RegionBitmap(regions_);
    r.flushing = RegionBitmap(regions_);
    for (const v1::VolumeState::Replica& known : state.replicas()) {
      if (known.address() != r.address) continue;
      r.identity = known.identity();
      r.instance = known.instance();
      r.left_generation = known.left_generation();
      r.why = "out of sync when the gateway started";
      if (known.in_sync()) {
        r.sync = SyncState::kInSync;
        r.dirty.ClearAll();
      } else if (!r.dirty.FromBytes(regions_, known.dirty())) {
        return absl::DataLossError(absl::StrCat(
            where, ": the dirty bitmap of ", known.address(), " is damaged"));
      }
    }
  }
  active_ = RegionBitmap(regions_);
  recent_.Clear();
  unsettled_ = RegionBitmap(regions_);
  if (!state.active().empty() &&
      !unsettled_.FromBytes(regions_, state.active())) {
    return absl::DataLossError(
        absl::StrCat(where, ": the activity log is damaged"));
  }
  version_ = required_version_ = durable_version_ = state.version();
  generation_version_ = version_;
  loaded_ = true;
  return absl::OkStatus();
}

v1::VolumeState MirrorState::Snapshot() const {
  v1::VolumeState state;
  state.set_volume(volume_);
  state.set_size(state_size_);
  state.set_region_bytes(region_bytes_);
  state.set_version(version_);
  for (uint64_t g : generations_) state.add_generations(g);
  RegionBitmap active = active_;
  active.Merge(unsettled_);
  if (active.count() > 0) state.set_active(active.ToBytes());
  for (const Replica& r : replicas_) {
    v1::VolumeState::Replica* out = state.add_replicas();
    out->set_address(r.address);
    out->set_identity(r.identity);
    out->set_instance(r.instance);
    out->set_in_sync(r.sync == SyncState::kInSync);
    if (r.sync != SyncState::kInSync) {
      out->set_dirty(r.dirty.ToBytes());
      out->set_left_generation(r.left_generation);
    }
  }
  return state;
}

void MirrorState::Saved(uint64_t version) {
  durable_version_ = std::max(durable_version_, version);
}

void MirrorState::Change(bool required) {
  ++version_;
  if (required) required_version_ = version_;
}

RegionBitmap MirrorState::All() const {
  RegionBitmap all(regions_);
  all.SetAll();
  return all;
}

void MirrorState::SetSize(uint64_t bytes) {
  if (state_size_ == bytes && regions_ != 0) return;
  state_size_ = bytes;
  regions_ = (bytes + region_bytes_ - 1) / region_bytes_;
  auto fit = [this](RegionBitmap& bitmap) {
    if (bitmap.size() != regions_) bitmap = RegionBitmap(regions_);
  };
  for (Replica& r : replicas_) {
    fit(r.dirty);
    fit(r.unflushed);
    fit(r.flushing);
  }
  fit(active_);
  fit(unsettled_);
  recent_.Clear();
}

void MirrorState::Grow(uint64_t bytes, const std::vector<std::string>& missed) {
  if (bytes <= state_size_) return;
  const uint64_t from = state_size_ / region_bytes_;
  state_size_ = bytes;
  regions_ = (bytes + region_bytes_ - 1) / region_bytes_;
  for (Replica& r : replicas_) {
    r.dirty.Grow(regions_);
    r.unflushed.Grow(regions_);
    r.flushing.Grow(regions_);
  }
  active_.Grow(regions_);
  unsettled_.Grow(regions_);
  // A plain volume keeps no state: nothing may wait for a save of it (its
  // size is its exporter's).
  Change(/*required=*/mirror());
  if (!mirror()) return;
  for (size_t i = 0; i < replicas_.size(); ++i) {
    if (missed[i].empty()) continue;
    MarkMissed(i, from, regions_ - 1, missed[i]);
    replicas_[i].why = missed[i];
  }
}

// --- decisions ---------------------------------------------------------------

bool MirrorState::OthersInSync(size_t i) const {
  for (size_t j = 0; j < replicas_.size(); ++j) {
    if (j != i && replicas_[j].sync == SyncState::kInSync) return true;
  }
  return false;
}

void MirrorState::NewGeneration() {
  generations_.insert(generations_.begin(), new_generation_());
  if (generations_.size() > kGenerationHistory) {
    generations_.resize(kGenerationHistory);
  }
  Change(/*required=*/true);
  generation_version_ = version_;
}

bool MirrorState::LeaveInSync(size_t i, const std::string& why) {
  Replica& r = replicas_[i];
  if (r.sync == SyncState::kOutOfSync) return false;
  r.sync = SyncState::kOutOfSync;
  r.why = why;
  r.drained = false;  // what was sent to it while in sync must end first
  ++r.leaves;
  r.left_generation = r.generations.empty() ? 0 : r.generations[0];
  NewGeneration();
  for (Replica& other : replicas_) {
    if (other.sync == SyncState::kInSync) other.push_generation = true;
  }
  ++exits_;
  DST_LOG(Warning,
          "gateway: volume %s: replica %s left the in-sync set (%s); "
          "generation %s",
          volume_, r.address, why, Hex(generations_[0]));
  return true;
}

bool MirrorState::MarkDirty(Replica& r, const RegionBitmap* regions) {
  for (uint64_t region : r.copying) {
    if (regions == nullptr || regions->Test(region)) r.recopy.insert(region);
  }
  if (regions != nullptr) return r.dirty.Merge(*regions);
  const uint64_t before = r.dirty.count();
  r.dirty.SetAll();
  return r.dirty.count() != before;
}

void MirrorState::MarkMissed(size_t i, const RegionBitmap& missed,
                             const std::string& why, bool sent) {
  Replica& r = replicas_[i];
  bool changed = LeaveInSync(i, why);
  changed |= MarkDirty(r, &missed);
  // A write sent to it and missed (it lagged, or failed by timeout) may
  // still land, after the region's copy: resync waits until nothing sent
  // before is pending.
  if (sent) r.drained = false;
  if (changed) Change(/*required=*/true);
}

void MirrorState::MarkMissed(size_t i, uint64_t first, uint64_t last,
                             const std::string& why, bool sent) {
  RegionBitmap missed(regions_);
  missed.Set(first, last);
  MarkMissed(i, missed, why, sent);
}

void MirrorState::Admit(size_t i, const Negotiated& n) {
  Replica& r = replicas_[i];
  std::vector<uint64_t> generations = n.generations;
  if (mirror() && !r.identity.empty() && r.identity != n.identity &&
      r.sync != SyncState::kUnknown) {
    DST_LOG(Warning,
            "gateway: volume %s: replica %s changed identity from '%s' to "
            "'%s': treating it as a new disk (full resync)",
            volume_, r.address, r.identity, n.identity);
    generations.clear();
    MarkMissed(i, All(), "replaced");
  }
  const bool restarted =
      r.instance != 0 && n.instance != 0 && n.instance != r.instance;
  if (r.identity != n.identity ||
      (n.instance != 0 && r.instance != n.instance)) {
    Change(/*required=*/false);
  }
  r.identity = n.identity;
  if (n.instance != 0) r.instance = n.instance;
  r.generations = std::move(generations);
  r.admitted = true;
  if (!mirror()) {
    r.sync = SyncState::kInSync;
    decided_ = true;
    return;
  }
  if (generations_.empty()) {
    DecideFirstStart();
    return;
  }
  if (first_start_) {  // back before it learned the first generation
    r.push_generation = true;
    return;
  }
  DecideByGenerations(i);
  if (!diverged_.empty()) return;
  if (restarted) {
    // A new instance: what it had not flushed may be gone, and what was
    // unsettled (it may have differed there) too. (A flush sent to the old
    // instance may answer from the new one: what it was to cover is lost
    // all the same.)
    RegionBitmap lost = r.unflushed;
    lost.Merge(r.flushing);
    lost.Merge(unsettled_);
    r.unflushed.ClearAll();
    if (lost.count() > 0) LostCache(i, lost);
  }
  // Unsettled regions (written when the gateway stopped, or by a write that
  // failed on every in-sync replica while none was reachable) may differ
  // between replicas, in sync or not: the first up-to-date replica back
  // whose exporter kept its cache is their source for every other. What it
  // holds there may not be flushed: those regions stay active, and
  // unflushed on it.
  if (!restarted && unsettled_.count() > 0) r.unflushed.Merge(unsettled_);
  if (!restarted && unsettled_.count() > 0 && r.sync == SyncState::kInSync) {
    for (size_t j = 0; j < replicas_.size(); ++j) {
      if (j != i) {
        MarkMissed(j, unsettled_,
                   "regions that may differ between replicas (in the "
                   "activity log when the gateway stopped, or a write that "
                   "failed everywhere)");
      }
    }
    DST_LOG(Warning,
            "gateway: volume %s: %d region(s) may differ between replicas "
            "(in the activity log when the gateway stopped, or a write "
            "that failed everywhere); replica %s is their source",
            volume_, unsettled_.count(), r.address);
    SettleUnsettled();
    Change(/*required=*/true);
  }
}

void MirrorState::SettleUnsettled() {
  // Still active: what replicas hold there may not be flushed yet.
  active_.Merge(unsettled_);
  unsettled_.ClearAll();
}

void MirrorState::LostCache(size_t i, const RegionBitmap& lost) {
  Replica& r = replicas_[i];
  if (r.sync != SyncState::kInSync || OthersInSync(i)) {
    DST_LOG(Warning,
            "gateway: volume %s: replica %s restarted (a new instance): %d "
            "region(s) it had not flushed are copied back to it",
            volume_, r.address, lost.count());
    MarkMissed(i, lost, "its exporter restarted before a flush");
    return;
  }
  // The only replica in sync: its contents are the volume's now. Every
  // other replica takes them, so that none reads differently.
  RegionBitmap differ = lost;
  differ.Merge(unsettled_);
  DST_LOG(Warning,
          "gateway: volume %s: replica %s, the only one in sync, restarted: "
          "writes it had not flushed to %d region(s) may be lost; the other "
          "replicas copy those regions from it",
          volume_, r.address, lost.count());
  for (size_t j = 0; j < replicas_.size(); ++j) {
    if (j != i) MarkMissed(j, differ, "the only in-sync replica restarted");
  }
  SettleUnsettled();
  Change(/*required=*/true);
}

void MirrorState::DecideByGenerations(size_t i) {
  Replica& r = replicas_[i];
  const uint64_t current = r.generations.empty() ? 0 : r.generations[0];
  if (current == generations_[0] ||
      (current != 0 && Contains(generations_, current)) ||
      (r.sync == SyncState::kOutOfSync && current != 0 &&
       current == r.left_generation)) {
    // Known history: the state says whether it is in sync.
    if (r.sync == SyncState::kInSync && current != generations_[0]) {
      r.push_generation = true;
    }
  } else if (current == 0) {
    if (r.sync != SyncState::kOutOfSync || r.dirty.count() == 0) {
      DST_LOG(Warning,
              "gateway: volume %s: replica %s has no generation (a new or "
              "wiped disk): full resync",
              volume_, r.address);
      MarkMissed(i, All(), "new disk");
    }
  } else {
    diverged_ = absl::StrCat(
        "replica ", r.address, " has generation ", Hex(current),
        Contains(r.generations, generations_[0])
            ? ", newer than this gateway's state (written by another gateway?)"
            : ", unknown to this gateway's history (split brain)",
        "; keep one replica's data with: dstctl resolve ", volume_,
        " --source=ADDRESS");
    DST_LOG(Error, "gateway: volume %s diverged: %s", volume_, diverged_);
  }
  decided_ = true;
  if (r.sync == SyncState::kUnknown) r.sync = SyncState::kOutOfSync;
}

void MirrorState::DecideFirstStart() {
  for (const Replica& r : replicas_) {
    if (!r.admitted) return;  // first start: every replica must speak
  }
  // Pick the replica whose history contains every other's current one.
  const Replica* newest = nullptr;
  bool all_new = true;
  for (const Replica& candidate : replicas_) {
    if (!candidate.generations.empty()) all_new = false;
    bool covers = true;
    for (const Replica& other : replicas_) {
      if (!other.generations.empty() &&
          !Contains(candidate.generations, other.generations[0])) {
        covers = false;
      }
    }
    if (covers && !candidate.generations.empty() &&
        (newest == nullptr ||
         candidate.generations.size() > newest->generations.size())) {
      newest = &candidate;
    }
  }
  if (all_new) {
    generations_ = {new_generation_()};
    for (Replica& r : replicas_) {
      r.sync = SyncState::kInSync;
      r.push_generation = true;
    }
    first_start_ = true;
    generation_version_ = 0;  // pushed before any state is saved
    DST_LOG(Info,
            "gateway: volume %s: new mirror of %d replicas (fresh exporters, "
            "assumed identical; `dstctl verify` compares them), generation %s",
            volume_, replicas_.size(), Hex(generations_[0]));
    return;
  } else if (newest == nullptr) {
    diverged_ = absl::StrCat(
        "the replicas' generation histories diverged (split brain); keep one "
        "replica's data with: dstctl resolve ",
        volume_, " --source=ADDRESS");
    DST_LOG(Error, "gateway: volume %s diverged: %s", volume_, diverged_);
    return;
  } else {
    generations_ = newest->generations;
    for (Replica& r : replicas_) {
      if (!r.generations.empty() && r.generations[0] == generations_[0]) {
        r.sync = SyncState::kInSync;
      } else {
        r.sync = SyncState::kOutOfSync;
        r.left_generation = r.generations.empty() ? 0 : r.generations[0];
        r.dirty.SetAll();  // no bitmap survived: copy everything
        DST_LOG(Warning,
                "gateway: volume %s: replica %s is behind (no state file): "
                "full resync",
                volume_, r.address);
      }
    }
  }
  decided_ = true;
  Change(/*required=*/true);
  generation_version_ = version_;
}

// --- writes
// -------------------------------------------------------------------

MirrorState::WritePlan MirrorState::PlanWrite(
    uint64_t first_region, uint64_t last_region,
    const std::vector<bool>& connected) {
  WritePlan plan;
  if (mirror()) {
    if (active_.Set(first_region, last_region)) Change(/*required=*/true);
    for (uint64_t region = first_region; region <= last_region; ++region) {
      recent_.Touch(region);
    }
  }
  for (size_t i = 0; i < replicas_.size(); ++i) {
    Replica& r = replicas_[i];
    if (r.sync == SyncState::kInSync) {
      plan.targets.push_back({i, true});
    } else if (r.drained && connected[i] &&
               r.dirty.AllClear(first_region, last_region)) {
      // Keeps a region it already has (resynced) clean.
      plan.targets.push_back({i, false});
    } else {
      MarkMissed(i, first_region, last_region, "out of sync");
    }
  }
  plan.needed_version = mirror() ? required_version_ : 0;
  return plan;
}

void MirrorState::BeginWrite(uint64_t first_region, uint64_t last_region) {
  if (!mirror()) return;
  for (uint64_t region = first_region; region <= last_region; ++region) {
    ++writing_[region];
  }
}

void MirrorState::Took(size_t i, uint64_t first_region, uint64_t last_region) {
  if (mirror()) replicas_[i].unflushed.Set(first_region, last_region);
}

bool MirrorState::HeldInSync(const std::vector<Target>& targets,
                             const std::vector<Outcome>& outcomes,
                             const std::vector<bool>& connected) const {
  for (size_t t = 0; t < targets.size(); ++t) {
    const size_t i = targets[t].replica;
    if (outcomes[t] == Outcome::kOk && connected[i] &&
        replicas_[i].sync == SyncState::kInSync) {
      return true;
    }
  }
  return false;
}

uint64_t MirrorState::EndWrite(uint64_t first_region, uint64_t last_region,
                               const std::vector<Target>& targets,
                               const std::vector<Outcome>& outcomes,
                               bool acknowledged,
                               const std::vector<bool>& connected) {
  if (!mirror()) return 0;
  for (uint64_t region = first_region; region <= last_region; ++region) {
    auto it = writing_.find(region);
    if (it != writing_.end() && --it->second <= 0) writing_.erase(it);
  }
  // Nothing in sync took it, yet a replica that timed out may have run it
  // all the same: the replicas in sync may differ there now. One that is
  // reachable stays the region's source (whatever it holds is the write's
  // outcome) and the others copy it; with none reachable, the region is
  // unsettled until one is back with its cache (Admit).
  if (!acknowledged) {
    std::optional<size_t> source;
    bool in_sync = false;
    for (const Target& t : targets) {
      if (replicas_[t.replica].sync != SyncState::kInSync) continue;
      in_sync = true;
      if (!source && connected[t.replica]) source = t.replica;
    }
    for (const Target& t : targets) {
      if (source && t.replica != *source &&
          replicas_[t.replica].sync == SyncState::kInSync) {
        MarkMissed(t.replica, first_region, last_region,
                   "a write failed on every in-sync replica; the region is "
                   "made the same again");
      }
    }
    if (!source && in_sync && unsettled_.Set(first_region, last_region)) {
      Change(/*required=*/true);
    }
  }
  for (size_t t = 0; t < targets.size(); ++t) {
    const size_t i = targets[t].replica;
    Replica& r = replicas_[i];
    if (!acknowledged) {
      // Nothing in sync took it: a replica out of sync that took it, or
      // may have (a failure by timeout is no proof it did not), must not
      // keep the region clean (the others may lack it).
      RegionBitmap written(regions_);
      written.Set(first_region, last_region);
      if (r.sync != SyncState::kInSync && MarkDirty(r, &written)) {
        r.drained = false;
        Change(/*required=*/true);
      }
    } else if (outcomes[t] != Outcome::kOk) {
      MarkMissed(i, first_region, last_region,
                 outcomes[t] == Outcome::kFailed ? "a transaction failed"
                                                 : "lagged past lag_limit_ms",
                 /*sent=*/true);
    }
  }
  return required_version_;
}

MirrorState::FlushPlan MirrorState::PlanFlush(
    const std::vector<bool>& connected) {
  FlushPlan plan;
  for (size_t i = 0; i < replicas_.size(); ++i) {
    Replica& r = replicas_[i];
    const bool in_sync = r.sync == SyncState::kInSync;
    // Out of sync, it is flushed too when it took writes: what it keeps
    // of them must be durable before it may rejoin or be trusted.
    if (!in_sync && !(connected[i] && r.unflushed.count() > 0)) continue;
    plan.targets.push_back({i, in_sync});
    plan.covers.push_back(r.unflushed);
    FlushSent(r);
  }
  return plan;
}

void MirrorState::FlushSent(Replica& r) {
  r.flushing.Merge(r.unflushed);
  ++r.flushes;
  r.unflushed.ClearAll();
}

void MirrorState::FlushAnswered(Replica& r, const RegionBitmap& covered,
                                bool ok) {
  if (!ok) r.unflushed.Merge(covered);
  if (--r.flushes == 0) r.flushing.ClearAll();
}

uint64_t MirrorState::EndFlush(const FlushPlan& plan,
                               const std::vector<Outcome>& outcomes,
                               bool acknowledged) {
  for (size_t t = 0; t < plan.targets.size(); ++t) {
    const size_t i = plan.targets[t].replica;
    const bool ok = outcomes[t] == Outcome::kOk;
    // Not acknowledged: what the flush was to cover stays to be flushed.
    FlushAnswered(replicas_[i], plan.covers[t], ok && acknowledged);
    if (!ok && acknowledged && plan.targets[t].required) {
      MarkMissed(i, plan.covers[t],
                 outcomes[t] == Outcome::kFailed ? "a flush failed"
                                                 : "lagged past lag_limit_ms");
    }
  }
  if (!mirror() || !acknowledged) return required_version_;
  // A region stays active while a modification is in flight there or some
  // replica has not flushed it, and while it is among the recent ones.
  // The recent ones are all active: when they are all there is, nothing
  // is to be cleared (a hot set's flushes skip the walk).
  if (active_.count() == recent_.size()) return required_version_;
  bool cleared = false;
  for (uint64_t region = active_.NextSet(0); region < active_.size();) {
    bool keep = writing_.count(region) != 0 || recent_.Contains(region);
    for (const Replica& r : replicas_) {
      keep |= r.unflushed.Test(region) || r.flushing.Test(region);
    }
    if (!keep) {
      active_.Clear(region);
      cleared = true;
    }
    const uint64_t next = region + 1 < active_.size()
                              ? active_.NextSet(region + 1)
                              : active_.size();
    if (next <= region) break;  // wrapped around: done
    region = next;
  }
  if (cleared) Change(/*required=*/false);
  return required_version_;
}

bool MirrorState::Heal(size_t i, uint64_t first_region, uint64_t last_region) {
  // Without another in-sync copy there is nothing to heal from: the read
  // fails over or fails, and the replica stays.
  if (!mirror() || !OthersInSync(i)) return false;
  const uint64_t before = version_;
  MarkMissed(i, first_region, last_region,
             "its data failed a checksum; the region is recopied");
  return version_ != before;
}

// --- resync
// -------------------------------------------------------------------

bool MirrorState::Resyncing(size_t i) const {
  const Replica& r = replicas_[i];
  return r.sync == SyncState::kOutOfSync && r.admitted;
}

std::optional<uint64_t> MirrorState::NextCopy(size_t i) {
  Replica& r = replicas_[i];
  uint64_t region = r.dirty.NextSet(r.cursor);
  for (size_t tries = 0; region < r.dirty.size() && r.copying.count(region) &&
                         tries <= r.copying.size();
       ++tries) {
    region = r.dirty.NextSet(region + 1);
  }
  if (region >= r.dirty.size() || r.copying.count(region) != 0) {
    return std::nullopt;
  }
  r.cursor = region + 1;
  r.copying.insert(region);
  return region;
}

std::optional<size_t> MirrorState::Source(
    size_t i, const std::vector<bool>& connected) const {
  for (size_t j = 0; j < replicas_.size(); ++j) {
    if (j != i && replicas_[j].sync == SyncState::kInSync && connected[j]) {
      return j;
    }
  }
  return std::nullopt;
}

void MirrorState::CopyDone(size_t i, uint64_t region, bool ok) {
  Replica& r = replicas_[i];
  r.copying.erase(region);
  const bool overtaken = r.recopy.erase(region) != 0;
  if (ok && !overtaken && r.dirty.Test(region)) {
    r.dirty.Clear(region);
    Change(/*required=*/false);
  }
}

bool MirrorState::CanPromote(size_t i) const {
  const Replica& r = replicas_[i];
  return r.sync == SyncState::kOutOfSync && r.admitted && r.drained &&
         !r.promoting && r.dirty.count() == 0 && r.copying.empty() &&
         diverged_.empty();
}

RegionBitmap MirrorState::StartPromotion(size_t i) {
  Replica& r = replicas_[i];
  r.promoting = true;
  RegionBitmap covered = r.unflushed;
  FlushSent(r);
  return covered;
}

bool MirrorState::FinishPromotion(size_t i, const RegionBitmap& covered,
                                  bool flushed,
                                  const std::vector<uint64_t>& generations) {
  Replica& r = replicas_[i];
  r.promoting = false;
  FlushAnswered(r, covered, flushed);
  // Something changed meanwhile (a miss, a restart): the next round decides.
  if (!flushed || r.sync != SyncState::kOutOfSync || r.dirty.count() != 0 ||
      !r.copying.empty() || !r.drained) {
    return false;
  }
  r.sync = SyncState::kInSync;
  r.left_generation = 0;
  r.generations = generations;
  if (generations_.empty() || r.generations.empty() ||
      r.generations[0] != generations_[0]) {
    r.push_generation = true;
  }
  Change(/*required=*/false);
  return true;
}

// --- generations
// --------------------------------------------------------------

bool MirrorState::GenerationDue(size_t i) const {
  const Replica& r = replicas_[i];
  return r.push_generation && r.sync == SyncState::kInSync &&
         !generations_.empty() &&
         (first_start_ || durable_version_ >= generation_version_);
}

void MirrorState::GenerationPushed(size_t i, uint64_t pushed,
                                   const std::vector<uint64_t>& generations) {
  Replica& r = replicas_[i];
  if (!generations_.empty() && pushed == generations_[0]) {
    r.push_generation = false;
  }
  if (!generations.empty()) r.generations = generations;
  if (first_start_) {
    for (const Replica& other : replicas_) {
      if (other.push_generation) return;
    }
    first_start_ = false;
    decided_ = true;
    Change(/*required=*/true);
    generation_version_ = version_;
  }
}

// --- operator
// -----------------------------------------------------------------

absl::Status MirrorState::ResyncFull(size_t i) {
  if (!mirror()) {
    return absl::FailedPreconditionError(
        absl::StrCat("volume ", volume_, " is not a mirror"));
  }
  if (!OthersInSync(i)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "replica ", replicas_[i].address,
        " is the only in-sync replica: there is nothing to copy from"));
  }
  if (!decided_) return absl::UnavailableError("volume is not ready");
  MarkMissed(i, All(), "full resync requested");
  return absl::OkStatus();
}

absl::Status MirrorState::Resolve(size_t chosen) {
  if (!mirror()) {
    return absl::FailedPreconditionError(
        absl::StrCat("volume ", volume_, " is not a mirror"));
  }
  if (!replicas_[chosen].admitted || regions_ == 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("replica ", replicas_[chosen].address,
                     " has not connected: its data cannot be kept"));
  }
  NewGeneration();
  for (size_t i = 0; i < replicas_.size(); ++i) {
    Replica& r = replicas_[i];
    if (i == chosen) {
      r.sync = SyncState::kInSync;
      r.dirty.ClearAll();
      r.push_generation = true;
    } else {
      if (r.sync != SyncState::kOutOfSync) {
        r.left_generation = r.generations.empty() ? 0 : r.generations[0];
        ++r.leaves;
      }
      r.sync = SyncState::kOutOfSync;
      MarkDirty(r, nullptr);
      r.drained = false;
    }
  }
  SettleUnsettled();
  diverged_.clear();
  decided_ = true;
  Change(/*required=*/true);
  DST_LOG(Warning,
          "gateway: volume %s resolved by the operator: keeping the data of "
          "replica %s (generation %s); every other replica is fully "
          "resynchronized from it",
          volume_, replicas_[chosen].address, Hex(generations_[0]));
  return absl::OkStatus();
}

std::string MirrorState::CheckInvariants() const {
  if (durable_version_ > version_ || required_version_ > version_) {
    return absl::StrCat("versions out of order: durable ", durable_version_,
                        ", required ", required_version_, ", latest ",
                        version_);
  }
  if (!mirror() || regions_ == 0) return "";
  std::string lost;
  recent_.ForEach([&](uint64_t region) {
    if (lost.empty() && !active_.Test(region)) {
      lost = absl::StrCat("region ", region,
                          " is a recent one but not in the activity log");
    }
  });
  if (!lost.empty()) return lost;
  for (const auto& [region, count] : writing_) {
    if (count > 0 && !active_.Test(region)) {
      return absl::StrCat("region ", region,
                          " is being written but is not in the activity log");
    }
  }
  for (const Replica& r : replicas_) {
    if (r.sync == SyncState::kInSync && r.dirty.count() != 0) {
      return absl::StrCat("in-sync replica ", r.address, " has ",
                          r.dirty.count(), " dirty region(s)");
    }
    for (uint64_t region : r.recopy) {
      if (r.copying.count(region) == 0) {
        return absl::StrCat("region ", region, " is to be copied again to ",
                            r.address, " but no copy of it is in flight");
      }
    }
    RegionBitmap unflushed = r.unflushed;
    unflushed.Merge(r.flushing);
    for (uint64_t region = unflushed.NextSet(0); region < unflushed.size();) {
      if (!active_.Test(region) && !unsettled_.Test(region)) {
        return absl::StrCat("region ", region, " is unflushed on ", r.address,
                            " but not in the activity log");
      }
      const uint64_t next = region + 1 < unflushed.size()
                                ? unflushed.NextSet(region + 1)
                                : unflushed.size();
      if (next <= region) break;
      region = next;
    }
  }
  if (decided_ && diverged_.empty() && generations_.empty()) {
    return "decided without a generation";
  }
  return "";
}

}  // namespace dst
