// Online growth of a volume: see resizer.h.
#include "services/gateway/resizer.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"

#include "services/common/base/log.h"

namespace dst {

void Resizer::Resize(uint64_t size,
                     const std::function<void(const absl::Status&)>& done) {
  struct Ask {
    size_t index;
    uint64_t epoch;
  };
  std::vector<Ask> asks;
  uint64_t from = 0;
  absl::Status refused;
  bool already = false;  // that size already (a resize retried)
  {
    absl::MutexLock lock(&core_.mu);
    const uint64_t block = core_.geometry.logical_block_size();
    from = core_.geometry.size();
    if (!core_.fenced.empty()) {
      refused =
          absl::AbortedError(absl::StrCat("volume is fenced: ", core_.fenced));
    } else if (!core_.state.decided() || from == 0) {
      refused = absl::UnavailableError("volume is not ready");
    } else if (core_.config.read_only() || core_.geometry.read_only()) {
      refused = absl::FailedPreconditionError(
          absl::StrCat("volume ", core_.config.name(), " is read-only"));
    } else if (size % block != 0) {
      refused = absl::InvalidArgumentError(absl::StrCat(
          "size ", size, " is not a multiple of the block size ", block));
    } else if (size < from) {
      refused = absl::FailedPreconditionError(
          absl::StrCat("volume ", core_.config.name(), " is ", from,
                       " bytes; it cannot shrink to ", size,
                       " (only growing is supported)"));
    } else if (resizing_) {
      refused = absl::UnavailableError(absl::StrCat(
          "a resize of volume ", core_.config.name(), " is in progress"));
    } else if (size == from) {
      already = true;
    } else {
      resizing_ = true;
      for (size_t i = 0; i < core_.slots.size(); ++i) {
        if (core_.state.replica(i).admitted && core_.connected[i]) {
          asks.push_back({i, core_.slots[i]->epoch});
        }
      }
    }
  }
  if (!refused.ok() || already) {
    core_.metrics.Resized(refused.ok());
    done(refused);
    return;
  }
  DST_LOG(Info, "gateway: volume %s: growing from %d to %d bytes",
          core_.config.name(), from, size);
  // Every exporter grows first (outside the lock: each call blocks).
  std::vector<std::string> why(core_.slots.size(), "not connected");
  std::vector<uint64_t> confirmed(core_.slots.size(), 0);
  for (const Ask& ask : asks) {
    v1::GrowRequest request;
    request.set_size(size);
    request.set_epoch(ask.epoch);
    absl::StatusOr<uint64_t> grown = core_.replica(ask.index).Grow(request);
    if (grown.ok() && *grown >= size) {
      confirmed[ask.index] = *grown;
      why[ask.index].clear();
    } else {
      why[ask.index] = grown.ok() ? absl::StrCat("it has ", *grown, " bytes")
                                  : std::string(grown.status().message());
    }
  }
  absl::Status failed;
  uint64_t needed = 0;
  {
    absl::MutexLock lock(&core_.mu);
    // The set may have changed meanwhile: what counts is now.
    bool any = false;
    std::string reasons;
    for (size_t i = 0; i < core_.slots.size(); ++i) {
      ReplicaSlot& slot = *core_.slots[i];
      if (why[i].empty()) {
        slot.size = std::max(slot.size, confirmed[i]);
        any |= core_.state.replica(i).sync == SyncState::kInSync;
        continue;
      }
      why[i] = absl::StrCat("could not grow to ", size, " bytes: ", why[i]);
      absl::StrAppend(&reasons, reasons.empty() ? "" : "; ",
                      slot.replica->address(), ": ", why[i]);
    }
    if (!core_.fenced.empty()) {
      failed =
          absl::AbortedError(absl::StrCat("volume is fenced: ", core_.fenced));
    } else if (!any) {
      failed = absl::FailedPreconditionError(absl::StrCat(
          "no in-sync replica of volume ", core_.config.name(), " could grow (",
          reasons, "); the volume stays at ", from, " bytes"));
    }
    if (!failed.ok()) {
      resizing_ = false;
    } else {
      core_.state.Grow(size, why);
      needed = core_.state.required_version();
      // A mirror's size is in its state file; a plain volume's is its
      // exporter's, grown durably already.
      if (core_.mirror() &&
          !core_.DurableOrWaitLocked(
              needed, [this, from, size, done](const absl::Status& saved) {
                Finish(from, size, saved, done);
              })) {
        return;
      }
    }
  }
  if (!failed.ok()) {
    DST_LOG(Warning, "gateway: volume %s: resize to %d bytes failed: %s",
            core_.config.name(), size, failed.message());
    core_.metrics.Resized(false);
    done(failed);
    return;
  }
  Finish(from, size, absl::OkStatus(), done);
}

void Resizer::Finish(uint64_t from, uint64_t size, const absl::Status& saved,
                     const std::function<void(const absl::Status&)>& done) {
  {
    absl::MutexLock lock(&core_.mu);
    resizing_ = false;
    if (saved.ok() && size > core_.geometry.size()) {
      core_.geometry.set_size(size);
    }
  }
  core_.metrics.Resized(saved.ok());
  if (!saved.ok()) {
    DST_LOG(Warning,
            "gateway: volume %s: resize to %d bytes failed: the state could "
            "not be saved: %s",
            core_.config.name(), size, saved.message());
    done(absl::Status(
        saved.code(),
        absl::StrCat("the new size could not be saved: ", saved.message())));
    return;
  }
  core_.metrics.Size(size);
  DST_LOG(Info, "gateway: volume %s: grown from %d to %d bytes",
          core_.config.name(), from, size);
  done(absl::OkStatus());
}

bool Resizer::HoldsSizeLocked(size_t i) const {
  return core_.slots[i]->size >= core_.state.state_size();
}

std::string Resizer::CheckInvariantsLocked() const {
  if (!core_.mirror()) return "";
  for (size_t i = 0; i < core_.slots.size(); ++i) {
    const MirrorState::Replica& r = core_.state.replica(i);
    if (r.admitted && r.sync == SyncState::kInSync && !HoldsSizeLocked(i)) {
      return absl::StrCat("replica ", r.address, " is in sync with ",
                          core_.slots[i]->size, " bytes; the volume has ",
                          core_.state.state_size());
    }
  }
  return "";
}

void Resizer::GrowLagging() {
  struct Ask {
    size_t index;
    uint64_t epoch;
  };
  std::vector<Ask> asks;
  uint64_t size = 0;
  const absl::Time now = core_.Now();
  {
    absl::MutexLock lock(&core_.mu);
    if (!core_.fenced.empty()) return;
    size = core_.state.state_size();
    for (size_t i = 0; i < core_.slots.size(); ++i) {
      ReplicaSlot& slot = *core_.slots[i];
      if (!core_.state.replica(i).admitted || !core_.connected[i] ||
          slot.size >= size || now < slot.next_grow) {
        continue;
      }
      slot.next_grow = now + kGrowRetry;
      asks.push_back({i, slot.epoch});
    }
  }
  for (const Ask& ask : asks) {
    v1::GrowRequest request;
    request.set_size(size);
    request.set_epoch(ask.epoch);
    absl::StatusOr<uint64_t> grown = core_.replica(ask.index).Grow(request);
    absl::MutexLock lock(&core_.mu);
    ReplicaSlot& slot = *core_.slots[ask.index];
    if (grown.ok() && *grown >= size) {
      slot.size = std::max(slot.size, *grown);
      DST_LOG(Info, "gateway: volume %s: replica %s grew to %d bytes",
              core_.config.name(), slot.replica->address(), *grown);
      continue;
    }
    core_.state.Explain(
        ask.index,
        absl::StrCat("could not grow to ", size, " bytes: ",
                     grown.ok() ? absl::StrCat("it has ", *grown, " bytes")
                                : std::string(grown.status().message())));
  }
}

}  // namespace dst
