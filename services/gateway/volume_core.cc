// What a volume's parts share, and the durability of its state: see
// volume_core.h.
#include "services/gateway/volume_core.h"

#include <random>
#include <utility>

#include "absl/strings/str_cat.h"

#include "services/common/base/log.h"

namespace dst {

namespace {

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

std::vector<std::unique_ptr<ReplicaSlot>> MakeSlots(
    std::vector<std::unique_ptr<ReplicaHandle>> replicas, Scheduler& timers,
    absl::Duration lag_limit) {
  std::vector<std::unique_ptr<ReplicaSlot>> slots;
  for (auto& replica : replicas) {
    auto slot = std::make_unique<ReplicaSlot>();
    slot->replica = std::move(replica);
    slot->lag = std::make_unique<LagDeadlines>(timers, lag_limit);
    slots.push_back(std::move(slot));
  }
  return slots;
}

std::vector<std::string> Addresses(
    const std::vector<std::unique_ptr<ReplicaSlot>>& slots) {
  std::vector<std::string> addresses;
  addresses.reserve(slots.size());
  for (const auto& slot : slots) addresses.push_back(slot->replica->address());
  return addresses;
}

v1::ChecksumAlgorithm ChecksumOf(const v1::VolumeConfig& config) {
  return config.checksum() == "sha256" ? v1::CHECKSUM_SHA256
         : config.checksum() == "none" ? v1::CHECKSUM_NONE
                                       : v1::CHECKSUM_CRC32C;
}

}  // namespace

VolumeCore::VolumeCore(const v1::VolumeConfig& config,
                       const VolumeOptions& options,
                       std::vector<std::unique_ptr<ReplicaHandle>> replicas,
                       prometheus::Registry& registry)
    : config(config),
      options(options),
      timers(
          (options.schedulers ? options.schedulers : TimerThreads())("timers")),
      worker(
          (options.schedulers ? options.schedulers : TimerThreads())("worker")),
      checksum(ChecksumOf(config)),
      slots(MakeSlots(std::move(replicas), *timers,
                      absl::Milliseconds(config.lag_limit_ms()))),
      metrics(registry, config.name(), Addresses(slots)),
      state(config.name(), Addresses(slots), config.region_bytes(),
            NewGeneration, config.activity_log_regions()),
      connected(slots.size(), false) {}

bool VolumeCore::DurableOrWaitLocked(uint64_t needed, Done then) {
  if (state.durable_version() >= needed) return true;
  if (!then) then = [](const absl::Status&) {};
  waiters_.push_back(Waiter{needed, std::move(then)});
  SaveLocked();
  return false;
}

void VolumeCore::SaveLocked() {
  if (saving_ || store == nullptr) return;
  if (!fenced.empty()) {
    // Another gateway owns the volume now: its state is not this one's to
    // write. What waits for a save fails.
    if (!waiters_.empty()) {
      timers->After(absl::ZeroDuration(), [this] {
        FailWaiters(absl::AbortedError("the volume is fenced"));
      });
    }
    return;
  }
  saving_ = true;
  saved_at_ = Now();
  const uint64_t version = state.version();
  store->Write(state.Snapshot(), [this, version](const absl::Status& status) {
    OnSaved(version, status);
  });
}

void VolumeCore::SaveIfRequiredLocked() {
  if (state.required_version() > state.durable_version()) SaveLocked();
}

void VolumeCore::OnSaved(uint64_t version, const absl::Status& status) {
  std::vector<std::pair<Done, absl::Status>> ready;
  {
    absl::MutexLock lock(&mu);
    saving_ = false;
    if (status.ok()) state.Saved(version);
    std::vector<Waiter> left;
    for (Waiter& waiter : waiters_) {
      if (waiter.needed <= state.durable_version()) {
        ready.emplace_back(std::move(waiter.then), absl::OkStatus());
      } else if (!status.ok() && waiter.needed <= version) {
        ready.emplace_back(
            std::move(waiter.then),
            absl::InternalError(absl::StrCat("cannot record the mirror state: ",
                                             status.message())));
      } else {
        left.push_back(std::move(waiter));
      }
    }
    waiters_.swap(left);
    if (!waiters_.empty() || state.required_version() > version) {
      SaveLocked();
    }
  }
  for (auto& [then, outcome] : ready) then(outcome);
}

void VolumeCore::FailWaiters(const absl::Status& why) {
  std::vector<Waiter> failed;
  {
    absl::MutexLock lock(&mu);
    failed.swap(waiters_);
  }
  for (Waiter& waiter : failed) waiter.then(why);
}

void VolumeCore::FenceLocked(const std::string& why) {
  if (fenced.empty()) {
    DST_LOG(Error, "gateway: volume %s is fenced: %s", config.name(), why);
  }
  fenced = why;
  if (options.deposed) options.deposed(why);
}

}  // namespace dst
