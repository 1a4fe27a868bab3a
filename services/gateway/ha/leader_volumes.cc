// HA mode's wiring of a gateway's volumes: see leader_volumes.h.
#include "services/gateway/ha/leader_volumes.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"

#include "services/common/base/log.h"
#include "services/common/base/status.h"
#include "services/gateway/volume_builder.h"

namespace dst {

absl::StatusOr<std::unique_ptr<LeaderVolumes>> LeaderVolumes::Start(
    const v1::GatewayConfig& config, const std::string& advertise,
    std::shared_ptr<Tls> etcd_tls, const VolumeOptions& base,
    int max_message_bytes, GatewayService& service,
    prometheus::Registry& registry, Deposed deposed) {
  std::unique_ptr<LeaderVolumes> volumes(new LeaderVolumes(
      config, base, max_message_bytes, service, registry, std::move(deposed)));
  HaOptions options;
  options.endpoints.assign(config.etcd().endpoints().begin(),
                           config.etcd().endpoints().end());
  options.lease_ttl = absl::Milliseconds(config.etcd().lease_ttl_ms());
  options.prefix = config.etcd().prefix();
  options.gateway_id = base.gateway_id;
  options.address = advertise;
  options.metrics = &registry;
  options.etcd_tls = std::move(etcd_tls);
  LeaderVolumes* v = volumes.get();
  ASSIGN_OR_RETURN(
      v->coordinator_,
      HaCoordinator::Start(std::move(options),
                           [v](const std::string& why) { v->Depose(why); }));
  std::vector<std::string> names;
  for (const v1::VolumeConfig& volume : config.volumes()) {
    names.push_back(volume.name());
  }
  service.SetStandby(names, [v](const std::string& name) {
    return std::optional<v1::VolumeStatus>(v->StandbyStatus(name));
  });
  v->coordinator_->Campaign(names,
                            [v](const std::string& name) { v->Elected(name); });
  return volumes;
}

LeaderVolumes::LeaderVolumes(const v1::GatewayConfig& config,
                             const VolumeOptions& base, int max_message_bytes,
                             GatewayService& service,
                             prometheus::Registry& registry, Deposed deposed)
    : config_(config),
      base_(base),
      max_message_bytes_(max_message_bytes),
      service_(service),
      registry_(registry),
      deposed_(std::move(deposed)) {}

LeaderVolumes::~LeaderVolumes() { Stop(); }

void LeaderVolumes::Stop() {
  if (coordinator_) coordinator_->Stop();
}

void LeaderVolumes::Elected(const std::string& name) {
  const v1::VolumeConfig* config = nullptr;
  for (const v1::VolumeConfig& volume : config_.volumes()) {
    if (volume.name() == name) config = &volume;
  }
  HaCoordinator* coordinator = coordinator_.get();
  VolumeOptions options = base_;
  options.state_dir.clear();  // the state lives in etcd: no directory needed
  options.open_state_store = [coordinator](const std::string& volume) {
    return coordinator->StateStoreFor(volume);
  };
  options.epoch_above = [coordinator, name](uint64_t held) {
    return coordinator->EpochAbove(name, held);
  };
  options.self_fence = &coordinator->fence();
  options.deposed = [this](const std::string& why) { Depose(why); };
  const std::string advertise = coordinator->options().address;
  options.add_leadership = [coordinator, name,
                            advertise](v1::VolumeStatus* status) {
    status->set_leader(coordinator->options().gateway_id);
    status->set_leader_address(advertise);
    if (std::optional<HaCoordinator::Term> term = coordinator->TermOf(name)) {
      status->set_epoch(std::max(status->epoch(), term->epoch));
    }
    status->set_lease_age_ms(static_cast<uint64_t>(
        absl::ToInt64Milliseconds(coordinator->LeaseAge())));
  };
  absl::StatusOr<std::unique_ptr<Volume>> volume =
      BuildVolume(*config, options, max_message_bytes_, registry_);
  if (!volume.ok()) {
    // The leadership stays (a standby could not do better with the same
    // config): the volume answers nothing, and the error is logged.
    DST_LOG(Error, "ha: volume %s: elected but cannot start: %s", name,
            volume.status().ToString());
    Depose(absl::StrCat("volume ", name,
                        " cannot start: ", volume.status().message()));
    return;
  }
  service_.AddVolume(*std::move(volume));
}

void LeaderVolumes::Depose(const std::string& why) {
  // Only a leader is deposed: coordinator_ is set (before the first
  // campaign) and its fence has a deadline (from the lease's grant).
  const absl::Duration left = coordinator_->fence().Left();
  deposed_(
      absl::StrCat(why, "; no reply after ",
                   absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::Now() + left,
                                    absl::UTCTimeZone()),
                   " (the self-fence deadline)"));
}

v1::VolumeStatus LeaderVolumes::StandbyStatus(const std::string& name) {
  v1::VolumeStatus status;
  status.set_name(name);
  status.set_state("standby");
  status.set_lease_age_ms(static_cast<uint64_t>(
      absl::ToInt64Milliseconds(coordinator_->LeaseAge())));
  absl::StatusOr<std::optional<HaCoordinator::Leader>> leader =
      coordinator_->LeaderOf(name);
  if (!leader.ok()) {
    status.set_message(absl::StrCat("cannot ask etcd who leads it: ",
                                    leader.status().message()));
  } else if (!leader->has_value()) {
    status.set_message("no leader yet (an election is under way)");
  } else {
    status.set_leader((*leader)->id);
    status.set_leader_address((*leader)->address);
    status.set_message(
        absl::StrCat("led by ", (*leader)->id, " at ", (*leader)->address));
  }
  return status;
}

}  // namespace dst
