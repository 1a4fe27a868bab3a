// What a volume reports: its health, its status for dstctl, and the
// metrics the worker polls (sessions, sync, keepalive pings). Part of the
// Volume facade (volume.h), apart from its I/O and lifecycle.
#include <cstddef>

#include "services/gateway/volume.h"

namespace dst {

namespace {

constexpr absl::Duration kPingInterval = absl::Seconds(5);

}  // namespace

void Volume::UpdateMetrics() {
  const absl::Time now = core_.Now();
  for (size_t i = 0; i < core_.slots.size(); ++i) {
    ReplicaSlot& slot = *core_.slots[i];
    core_.metrics.PollSession(i, slot.replica->counters(),
                              slot.replica->pending());
    if (now >= slot.next_ping && slot.replica->connected()) {
      slot.next_ping = now + kPingInterval;
      slot.replica->Ping(core_.metrics.PingObserver(i));
    }
  }
  VolumeHealth health;
  {
    absl::MutexLock lock(&core_.mu);
    for (size_t i = 0; i < core_.slots.size(); ++i) {
      const MirrorState::Replica& r = core_.state.replica(i);
      const bool in_sync = r.sync == SyncState::kInSync;
      core_.metrics.PollSync(
          i, in_sync,
          in_sync ? 0 : r.dirty.count() * core_.config.region_bytes());
    }
    core_.metrics.PollLagExits(core_.state.exits());
    core_.metrics.Size(core_.geometry.size());
    health = HealthLocked();
  }
  core_.metrics.PollHealth(health);
}

// --- admin -----------------------------------------------------------------

VolumeHealth Volume::HealthLocked() const {
  if (!core_.fenced.empty()) return VolumeHealth::kFenced;
  if (!core_.state.diverged().empty()) return VolumeHealth::kDiverged;
  if (!core_.state.decided() || core_.geometry.size() == 0) {
    return VolumeHealth::kUnavailable;
  }
  bool any_in_sync_connected = false;
  bool all_in_sync = true;
  for (size_t i = 0; i < core_.slots.size(); ++i) {
    const bool in_sync = core_.state.replica(i).sync == SyncState::kInSync;
    if (!in_sync) all_in_sync = false;
    if (in_sync && core_.slots[i]->replica->connected()) {
      any_in_sync_connected = true;
    }
  }
  if (!any_in_sync_connected) return VolumeHealth::kWaiting;
  return all_in_sync ? VolumeHealth::kReady : VolumeHealth::kDegraded;
}

VolumeHealth Volume::health() const {
  absl::MutexLock lock(&core_.mu);
  return HealthLocked();
}

v1::VolumeStatus Volume::Status() const {
  v1::VolumeStatus status;
  status.set_name(core_.config.name());
  absl::MutexLock lock(&core_.mu);
  *status.mutable_geometry() = core_.geometry;
  const VolumeHealth health = HealthLocked();
  status.set_state(HealthName(health));
  if (!core_.fenced.empty()) {
    status.set_message(core_.fenced);
  } else if (!core_.state.diverged().empty()) {
    status.set_message(core_.state.diverged());
  } else if (health == VolumeHealth::kWaiting) {
    status.set_message(
        "no up-to-date replica is reachable; I/O waits for one (out-of-sync "
        "replicas are never a source; `dstctl resolve` overrides)");
  }
  status.set_generation(
      core_.state.generations().empty() ? 0 : core_.state.generations()[0]);
  status.set_epoch(core_.epoch);
  status.set_lease_holder(lease_.Holder(core_.Now()));
  if (core_.options.add_leadership) core_.options.add_leadership(&status);
  for (size_t i = 0; i < core_.slots.size(); ++i) {
    const ReplicaSlot& slot = *core_.slots[i];
    const MirrorState::Replica& state = core_.state.replica(i);
    v1::ReplicaStatus* r = status.add_replicas();
    *r = slot.replica->Status();
    if (r->identity().empty()) r->set_identity(state.identity);
    const bool connected = slot.replica->connected();
    switch (state.sync) {
      case SyncState::kUnknown:
      case SyncState::kInSync:
        r->set_sync(SyncName(state.sync));
        break;
      case SyncState::kOutOfSync:
        r->set_sync(!connected                  ? "stale"
                    : resyncer_.ActiveLocked(i) ? "resyncing"
                                                : "out_of_sync");
        break;
    }
    if (state.sync == SyncState::kOutOfSync) r->set_sync_reason(state.why);
    r->set_dirty_bytes(state.sync == SyncState::kInSync
                           ? 0
                           : state.dirty.count() * core_.config.region_bytes());
    r->set_generation(state.generations.empty() ? 0 : state.generations[0]);
    r->set_checksum_mismatches(slot.checksum_mismatches.load());
  }
  resyncer_.ReportLocked(&status);
  status.set_transactions_total(total_.load());
  status.set_transactions_failed(failed_.load());
  status.set_in_flight(in_flight_.load());
  return status;
}

}  // namespace dst
