// Execution-time fencing: see write_fence.h.
#include "services/exporter/write_fence.h"

#include "absl/strings/str_cat.h"

#include "services/common/base/status.h"

namespace dst {

uint64_t WriteFence::OpenStream(uint64_t epoch) {
  absl::MutexLock lock(&mu_);
  const uint64_t ticket = ++next_ticket_;
  // Only the epoch's holder replaces its streams: a fenced gateway's new
  // stream must not disturb the current one's.
  if (epoch != 0 && (metadata_ == nullptr || epoch >= metadata_->epoch())) {
    newest_ = ticket;
  }
  return ticket;
}

bool WriteFence::OlderRunningLocked(uint64_t ticket) const {
  return !running_.empty() && running_.begin()->first < ticket;
}

absl::Status WriteFence::Enter(uint64_t epoch, uint64_t ticket) {
  absl::MutexLock lock(&mu_);
  if (metadata_ != nullptr) {
    RETURN_IF_ERROR(metadata_->CheckWriter(epoch));
  }
  if (epoch != 0) {
    if (ticket != newest_) {
      return absl::UnavailableError(
          "superseded: the gateway opened a newer stream to this exporter");
    }
    // What older streams are still running finishes first.
    auto older_done = [this, ticket]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return !OlderRunningLocked(ticket);
    };
    mu_.Await(absl::Condition(&older_done));
    if (ticket != newest_) {
      return absl::UnavailableError(
          "superseded: the gateway opened a newer stream to this exporter");
    }
    if (metadata_ != nullptr) RETURN_IF_ERROR(metadata_->CheckWriter(epoch));
  }
  Running& running = running_[ticket];
  running.epoch = epoch;
  ++running.count;
  return absl::OkStatus();
}

void WriteFence::Exit(uint64_t ticket) {
  absl::MutexLock lock(&mu_);
  auto it = running_.find(ticket);
  if (it != running_.end() && --it->second.count == 0) running_.erase(it);
}

absl::StatusOr<v1::ReplicaMetadata> WriteFence::Claim(
    const v1::ClaimRequest& request) {
  absl::MutexLock lock(&mu_);
  const uint64_t before = metadata_->epoch();
  absl::StatusOr<v1::ReplicaMetadata> claimed = metadata_->Claim(request);
  if (!claimed.ok() || claimed->epoch() == before) return claimed;
  // Requests admitted under the older epoch may still be running: the
  // claim is not done until none is (later ones are refused in Enter).
  const uint64_t epoch = claimed->epoch();
  auto drained = [this, epoch]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    for (const auto& [ticket, running] : running_) {
      if (running.epoch != epoch) return false;
    }
    return true;
  };
  mu_.Await(absl::Condition(&drained));
  return claimed;
}

}  // namespace dst
