// Resync of returning replicas: see resyncer.h.
#include "services/gateway/resyncer.h"

#include <algorithm>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"

#include "services/common/base/log.h"
#include "services/common/protocol/checksum.h"
#include "services/common/transport/transaction_stream.h"

namespace dst {

Resyncer::Resyncer(VolumeCore& core, std::function<void()> kick_worker,
                   uint64_t yield_chunk_bytes)
    : core_(core),
      kick_worker_(std::move(kick_worker)),
      yield_chunk_bytes_(yield_chunk_bytes),
      progress_(core.slots.size()),
      rate_(core.config.resync_rate_bytes()) {}

void Resyncer::Drive(bool promote) {
  std::vector<std::pair<size_t, uint64_t>> copies;  // (target, region)
  std::vector<size_t> flushes;                      // promotion flushes
  std::vector<size_t> finishes;                     // flushed: rejoin
  std::optional<absl::Duration> wake;  // when the throttle allows a copy
  {
    absl::MutexLock lock(&core_.mu);
    if (paused_ || !core_.state.decided() || !core_.fenced.empty() ||
        !core_.state.diverged().empty()) {
      return;
    }
    const std::vector<bool>& connected = core_.connected;
    const absl::Time now = core_.Now();
    const size_t depth =
        core_.ClientIoSince(now - kYieldWindow) ? 1 : kResyncDepth;
    for (size_t i = 0; i < core_.slots.size(); ++i) {
      Progress& progress = progress_[i];
      if (progress.promotion_answered) {
        finishes.push_back(i);
        continue;
      }
      if (!core_.state.Resyncing(i) || !connected[i]) continue;
      // Its exporter must hold the volume's size first (Resizer).
      if (core_.slots[i]->size < core_.state.state_size()) continue;
      const MirrorState::Replica& r = core_.state.replica(i);
      // Transactions sent before its last miss must be over first: a late
      // one could land after the copy of its region.
      if (!r.drained) {
        if (core_.replica(i).pending() != 0) continue;
        core_.state.SetDrained(i, true);
      }
      if (core_.state.CanPromote(i)) {
        flushes.push_back(i);
        continue;
      }
      if (r.dirty.count() == 0 || !core_.state.Source(i, connected)) continue;
      if (progress.total == 0) {
        progress.total = r.dirty.count() * core_.config.region_bytes();
        progress.started = now;
        progress.copied_before = progress.copied;
        progress.next_copy = std::max(progress.next_copy, now);  // no burst
        DST_LOG(
            Info, "gateway: volume %s: resync of replica %s: %d dirty bytes",
            core_.config.name(), core_.replica(i).address(), progress.total);
      }
      // Up to `depth` regions in flight, as the throttle allows.
      while (core_.state.replica(i).copying.size() < depth &&
             now >= progress.next_copy) {
        std::optional<uint64_t> region = core_.state.NextCopy(i);
        if (!region.has_value()) break;
        if (rate_ > 0) {
          // A copy due up to kPaceSlack ago still counts from when it was
          // due: timers fire late (by their resolution), and the rate is
          // kept on average. Beyond that, idle time is not saved up.
          progress.next_copy =
              std::max(progress.next_copy, now - kPaceSlack) +
              absl::Seconds(static_cast<double>(core_.config.region_bytes()) /
                            static_cast<double>(rate_));
        }
        copies.emplace_back(i, *region);
      }
      // Held back by the throttle alone: a drive is due when it allows the
      // next copy (the worker's tick is too coarse for rates above a
      // region per tick).
      if (now < progress.next_copy &&
          core_.state.replica(i).copying.size() < depth && !wake_armed_) {
        const absl::Duration wait = progress.next_copy - now;
        wake = wake.has_value() ? std::min(*wake, wait) : wait;
      }
    }
    if (wake.has_value()) wake_armed_ = true;
  }
  if (wake.has_value()) {
    core_.timers->After(*wake, [this] {
      {
        absl::MutexLock lock(&core_.mu);
        wake_armed_ = false;
      }
      Drive(/*promote=*/false);
    });
  }
  for (auto [target, region] : copies) CopyRegion(target, region);
  for (size_t target : flushes) {
    // Before it rejoins, what it took while out of sync is made durable:
    // a power cut right after must not lose it unnoticed.
    RegionBitmap covered;
    {
      absl::MutexLock lock(&core_.mu);
      if (!core_.state.CanPromote(target)) continue;
      covered = core_.state.StartPromotion(target);
    }
    v1::Request flush;
    flush.set_op(v1::OP_FLUSH);
    core_.replica(target).Submit(
        flush, [this, target, covered](v1::Reply&& reply, Payload&&) {
          {
            absl::MutexLock lock(&core_.mu);
            Progress& progress = progress_[target];
            progress.promotion_answered = true;
            progress.promotion_flushed = reply.status() == 0;
            progress.promotion_covered = covered;
          }
          kick_worker_();
        });
  }
  if (!finishes.empty() && !promote) kick_worker_();
  if (promote) {
    for (size_t target : finishes) FinishPromotion(target);
  }
}

void Resyncer::CopyRegion(size_t target, uint64_t region) {
  uint64_t offset;
  uint64_t end;
  {
    absl::MutexLock lock(&core_.mu);
    offset = region * core_.config.region_bytes();
    // The state's size: a resize grows it before clients see the size.
    end = std::min(offset + core_.config.region_bytes(),
                   core_.state.state_size());
  }
  // Under the range lock: no client write to the region meanwhile.
  core_.modifications.Acquire(offset, end - offset,
                              [this, target, region, offset, end] {
                                CopyChunk(target, region, offset, end);
                              });
}

void Resyncer::CopyChunk(size_t target, uint64_t region, uint64_t offset,
                         uint64_t end) {
  const uint64_t region_start = region * core_.config.region_bytes();
  if (offset >= end) {
    EndCopy(target, region, true);
    core_.modifications.Release(region_start, end - region_start);
    return;
  }
  auto fail = [this, target, region, region_start,
               end](const std::string& why) {
    DST_LOG(Warning, "gateway: volume %s: resync of %s: region %d: %s",
            core_.config.name(), core_.replica(target).address(), region, why);
    EndCopy(target, region, false);
    core_.modifications.Release(region_start, end - region_start);
  };
  uint64_t length;
  v1::Request read;
  std::optional<size_t> source;
  uint64_t leaves = 0;
  {
    absl::MutexLock lock(&core_.mu);
    length = std::min<uint64_t>(end - offset, core_.geometry.max_transfer());
    if (core_.ClientIoSince(core_.Now() - kYieldWindow)) {
      length = std::min(length, yield_chunk_bytes_);
    }
    if (core_.geometry.features() & ChecksumFeature(core_.checksum)) {
      read.set_checksum_algorithm(core_.checksum);
    }
    // Chosen now, under the range lock: a replica in sync when the copy
    // was planned may have left the set since, missing the very write that
    // held the lock.
    source = core_.state.Source(target, core_.connected);
    if (source.has_value()) leaves = core_.state.replica(*source).leaves;
  }
  if (!source.has_value()) {
    fail("no in-sync replica to copy from");
    return;
  }
  read.set_op(v1::OP_READ);
  read.set_offset(offset);
  read.set_length(static_cast<uint32_t>(length));
  core_.replica(*source).Submit(read, [this, target, region, offset, end,
                                       length, fail, source = *source, leaves](
                                          v1::Reply&& reply, Payload&& data) {
    if (reply.status() == 0) {
      absl::MutexLock lock(&core_.mu);
      if (!core_.state.StillInSync(source, leaves)) {
        reply = ErrorReply(reply.id(), absl::UnavailableError(
                                           "the source left the in-sync set"));
      }
    }
    if (reply.status() == 0 && !reply.checksum().empty()) {
      absl::Status intact =
          VerifyChecksum(core_.checksum, data, reply.checksum(), "resync data");
      if (!intact.ok()) reply = ErrorReply(reply.id(), intact);
    }
    if (reply.status() != 0) {
      fail(reply.message());
      return;
    }
    v1::Request write;
    write.set_offset(offset);
    write.set_length(static_cast<uint32_t>(length));
    write.set_flags(v1::REQUEST_FLAG_FUA);  // durable before its bit clears
    if (data.AllZero()) {
      // Zeroes go as a write-zeroes that may punch: no data on the wire,
      // and the target stays as sparse as its source (block status).
      write.set_op(v1::OP_WRITE_ZEROES);
      data = Payload();
    } else {
      write.set_op(v1::OP_WRITE);
      if (!reply.checksum().empty()) {
        write.set_checksum_algorithm(core_.checksum);
        write.set_checksum(reply.checksum());  // the source's, end to end
      }
    }
    // The data read goes on as it arrived, not copied.
    core_.replica(target).Submit(
        write,
        [this, target, region, offset, end, length, fail](v1::Reply&& written,
                                                          Payload&&) {
          if (written.status() != 0) {
            fail(written.message());
            return;
          }
          {
            absl::MutexLock lock(&core_.mu);
            progress_[target].copied += length;
          }
          core_.metrics.ResyncCopied(target, length);
          CopyChunk(target, region, offset + length, end);
        },
        std::move(data));
  });
}

void Resyncer::EndCopy(size_t target, uint64_t region, bool ok) {
  {
    absl::MutexLock lock(&core_.mu);
    core_.state.CopyDone(target, region, ok);
    if (!ok) progress_[target].next_copy = core_.Now() + kCopyRetry;
  }
  // The next region at once, not at the next tick (no blocking work here:
  // this runs on a reply's thread).
  if (ok) Drive(/*promote=*/false);
}

void Resyncer::FinishPromotion(size_t target) {
  const ReplicaSlot& slot = *core_.slots[target];
  Progress& progress = progress_[target];
  v1::ClaimRequest claim;
  RegionBitmap covered;
  bool flushed;
  {
    absl::MutexLock lock(&core_.mu);
    if (!progress.promotion_answered) return;
    flushed = progress.promotion_flushed;
    covered = progress.promotion_covered;
    if (flushed &&
        core_.state.durable_version() < core_.state.required_version()) {
      // The generation it is to learn must be durable first.
      core_.SaveLocked();
      return;
    }
    progress.promotion_answered = false;
    claim.set_epoch(slot.epoch);
    claim.set_owner(core_.options.gateway_id);
    claim.set_set_generations(true);
    for (uint64_t g : core_.state.generations()) claim.add_generations(g);
  }
  std::vector<uint64_t> generations(claim.generations().begin(),
                                    claim.generations().end());
  if (flushed && claim.epoch() != 0) {
    absl::StatusOr<v1::ReplicaMetadata> claimed =
        core_.replica(target).Claim(claim);
    if (!claimed.ok()) {
      flushed = false;
      absl::MutexLock lock(&core_.mu);
      if (absl::IsAborted(claimed.status())) {
        core_.FenceLocked(std::string(claimed.status().message()));
      }
    }
  }
  absl::MutexLock lock(&core_.mu);
  if (!core_.state.FinishPromotion(target, covered, flushed, generations)) {
    progress.next_copy = core_.Now() + kCopyRetry;
    return;
  }
  DST_LOG(Info,
          "gateway: volume %s: replica %s is in sync again (resync copied %d "
          "of %d dirty bytes in %s)",
          core_.config.name(), core_.replica(target).address(),
          progress.copied - progress.copied_before, progress.total,
          absl::FormatDuration(core_.Now() - progress.started));
  progress.last_bytes = progress.total;
  progress.last_took = core_.Now() - progress.started;
  progress.total = 0;
  core_.SaveLocked();
}

void Resyncer::Configure(const v1::ResyncRequest& request,
                         VolumeCore::Done done) {
  absl::Status status;
  {
    absl::MutexLock lock(&core_.mu);
    if (request.has_rate_bytes()) rate_ = request.rate_bytes();
    paused_ = request.stop();
    if (request.full() && !core_.mirror()) {
      status = absl::FailedPreconditionError(
          absl::StrCat("volume ", core_.config.name(), " is not a mirror"));
    } else if (request.full()) {
      size_t i = 0;
      while (i < core_.slots.size() &&
             core_.replica(i).address() != request.replica()) {
        ++i;
      }
      if (i == core_.slots.size()) {
        status = absl::NotFoundError(
            absl::StrCat("volume ", core_.config.name(), " has no replica ",
                         request.replica()));
      } else {
        status = core_.state.ResyncFull(i);
        progress_[i].total = 0;
      }
      // Answered once the state that will copy everything is durable.
      if (status.ok() &&
          core_.state.durable_version() < core_.state.required_version()) {
        core_.DurableOrWaitLocked(core_.state.required_version(),
                                  std::move(done));
        return;
      }
    }
  }
  done(status);
}

void Resyncer::ForgetProgressLocked() {
  for (Progress& progress : progress_) progress.total = 0;
}

bool Resyncer::ActiveLocked(size_t index) const {
  return progress_[index].total > 0 ||
         !core_.state.replica(index).copying.empty();
}

void Resyncer::ReportLocked(v1::VolumeStatus* status) const {
  status->set_resync_rate_bytes(rate_);
  status->set_resync_paused(paused_);
  for (size_t i = 0; i < progress_.size(); ++i) {
    v1::ReplicaStatus* r = status->mutable_replicas(static_cast<int>(i));
    r->set_resync_copied_bytes(progress_[i].copied);
    r->set_resync_total_bytes(progress_[i].total);
    r->set_last_resync_bytes(progress_[i].last_bytes);
    r->set_last_resync_seconds(absl::ToDoubleSeconds(progress_[i].last_took));
  }
}

}  // namespace dst
