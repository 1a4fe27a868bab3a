// Fencing and admission of a volume's replicas: see fencing.h.
#include "services/gateway/fencing.h"

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"

#include "services/common/base/log.h"

namespace dst {

absl::StatusOr<uint64_t> Fencing::Admit(size_t index,
                                        const v1::NegotiateReply& reply) {
  ReplicaSlot& slot = *core_.slots[index];
  const v1::Geometry& g = reply.geometry();
  const v1::ReplicaMetadata& md = reply.metadata();
  uint64_t epoch = 0;
  bool first_claim = false;
  // The volume's size (0: not known yet): a smaller exporter grows to it
  // (it was away during a resize) once claimed.
  uint64_t volume_size = 0;
  {
    absl::MutexLock lock(&core_.mu);
    if (!core_.fenced.empty()) return absl::AbortedError(core_.fenced);
    volume_size = std::max(core_.geometry.size(), core_.state.state_size());
    if (core_.geometry.size() != 0) {
      // Clients already hold the volume's geometry. Block status and fast
      // zero are not required: a replica without the one counts as all
      // data, without the other makes fast zeroes fail.
      const uint32_t needed =
          core_.geometry.features() &
          ~(v1::FEATURE_BLOCK_STATUS | v1::FEATURE_FAST_ZERO);
      if (g.logical_block_size() > core_.geometry.logical_block_size() ||
          g.max_transfer() < core_.geometry.max_transfer() ||
          (g.features() & needed) != needed) {
        return absl::FailedPreconditionError(
            "exporter geometry (block size, max transfer or features) "
            "does not fit the volume's");
      }
    }
    if (slot.epoch == 0) {
      // The first claim of this run at this exporter goes above whatever
      // it holds: an earlier run of this gateway may still have writes in
      // flight there, and the exporter refuses them once claimed.
      first_claim = true;
      epoch = std::max(core_.epoch, md.epoch() + 1);
    } else if (md.epoch() > slot.epoch ||
               (md.epoch() == slot.epoch &&
                md.owner() != core_.options.gateway_id)) {
      core_.FenceLocked(absl::StrCat(
          "replica ", slot.replica->address(), " was claimed by '", md.owner(),
          "' (epoch ", md.epoch(), "); this gateway holds epoch ", slot.epoch));
      return absl::AbortedError(core_.fenced);
    } else {
      epoch = slot.epoch;
    }
  }
  if (first_claim && core_.options.epoch_above) {
    // HA mode: the epoch comes from etcd, above every earlier leader's.
    absl::StatusOr<uint64_t> above = core_.options.epoch_above(md.epoch());
    if (!above.ok()) {
      absl::MutexLock lock(&core_.mu);
      core_.FenceLocked(std::string(above.status().message()));
      return absl::AbortedError(core_.fenced);
    }
    epoch = *above;
  }
  std::vector<uint64_t> generations(md.generations().begin(),
                                    md.generations().end());
  if (!core_.config.read_only()) {
    v1::ClaimRequest claim;
    claim.set_epoch(epoch);
    claim.set_owner(core_.options.gateway_id);
    absl::StatusOr<v1::ReplicaMetadata> claimed = slot.replica->Claim(claim);
    if (absl::IsUnimplemented(claimed.status())) {
      epoch = 0;  // an exporter without metadata: no fencing, no history
    } else if (absl::IsAborted(claimed.status())) {
      absl::MutexLock lock(&core_.mu);
      core_.FenceLocked(std::string(claimed.status().message()));
      return claimed.status();
    } else if (!claimed.ok()) {
      return claimed.status();
    } else {
      generations.assign(claimed->generations().begin(),
                         claimed->generations().end());
    }
  } else {
    epoch = 0;
  }
  uint64_t size = g.size();
  if (size < volume_size) {
    v1::GrowRequest grow;
    grow.set_size(volume_size);
    grow.set_epoch(epoch);
    absl::StatusOr<uint64_t> grown =
        core_.config.read_only()
            ? absl::FailedPreconditionError("the volume is read-only")
            : slot.replica->Grow(grow);
    if (!grown.ok() || *grown < volume_size) {
      return absl::FailedPreconditionError(
          absl::StrCat("exporter has ", size, " bytes; the volume has ",
                       volume_size, ", and it could not grow: ",
                       grown.ok() ? absl::StrCat("it has ", *grown, " bytes")
                                  : std::string(grown.status().message())));
    }
    DST_LOG(Info, "gateway: volume %s: replica %s grew from %d to %d bytes",
            core_.config.name(), slot.replica->address(), size, *grown);
    size = *grown;
  }
  absl::MutexLock lock(&core_.mu);
  slot.epoch = epoch;
  slot.size = size;
  slot.block_status = (g.features() & v1::FEATURE_BLOCK_STATUS) != 0;
  slot.fast_zero = (g.features() & v1::FEATURE_FAST_ZERO) != 0;
  core_.epoch = std::max(core_.epoch, epoch);
  if (core_.geometry.size() == 0) {
    core_.geometry = g;
    core_.geometry.set_size(
        core_.state.state_size() != 0 ? core_.state.state_size() : g.size());
    core_.geometry.set_size(core_.geometry.size() -
                            core_.geometry.size() %
                                core_.geometry.logical_block_size());
    core_.geometry.set_identity(core_.config.name());
    core_.geometry.set_read_only(g.read_only() || core_.config.read_only());
    core_.geometry.clear_attributes();
  }
  // Once (a resize may have grown the state past the geometry already).
  if (core_.state.state_size() == 0) {
    core_.state.SetSize(core_.geometry.size());
  }
  Negotiated negotiated;
  negotiated.identity = g.identity();
  negotiated.instance = reply.instance();
  negotiated.generations = std::move(generations);
  core_.state.Admit(index, negotiated);
  core_.SaveIfRequiredLocked();
  return epoch;
}

void Fencing::PushGenerations() {
  for (size_t i = 0; i < core_.slots.size(); ++i) {
    ReplicaSlot& slot = *core_.slots[i];
    v1::ClaimRequest claim;
    {
      absl::MutexLock lock(&core_.mu);
      if (!core_.state.GenerationDue(i) || !slot.replica->connected() ||
          !core_.fenced.empty()) {
        continue;
      }
      if (slot.epoch == 0) {  // an exporter that keeps no metadata
        core_.state.GenerationPushed(i, core_.state.generations()[0], {});
        continue;
      }
      claim.set_epoch(slot.epoch);
      claim.set_owner(core_.options.gateway_id);
      claim.set_set_generations(true);
      for (uint64_t g : core_.state.generations()) claim.add_generations(g);
    }
    absl::StatusOr<v1::ReplicaMetadata> claimed = slot.replica->Claim(claim);
    absl::MutexLock lock(&core_.mu);
    if (absl::IsAborted(claimed.status())) {
      core_.FenceLocked(std::string(claimed.status().message()));
    } else if (claimed.ok()) {
      core_.state.GenerationPushed(
          i, claim.generations(0),
          {claimed->generations().begin(), claimed->generations().end()});
    }
  }
}

}  // namespace dst
