// A plain or mirrored volume, the facade over its parts (write path, read
// router, resync, fencing): see volume.h.
#include "services/gateway/volume.h"

#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"

#include "services/common/base/log.h"
#include "services/common/base/status.h"
#include "services/common/protocol/checksum.h"
#include "services/common/protocol/request_validation.h"
#include "services/common/transport/transaction_stream.h"
#include "services/gateway/verifier.h"

namespace dst {

namespace {

constexpr absl::Duration kWorkTick = absl::Milliseconds(50);
constexpr absl::Duration kLazySave = absl::Seconds(1);
constexpr absl::Duration kPingInterval = absl::Seconds(5);

}  // namespace

Volume::Volume(const v1::VolumeConfig& config, const VolumeOptions& options,
               std::vector<std::unique_ptr<ReplicaHandle>> replicas,
               prometheus::Registry& registry)
    : core_(config, options, std::move(replicas), registry),
      resyncer_(core_, [this] { KickWorker(); }),
      reads_(core_),
      block_status_(core_),
      writes_(core_),
      fencing_(core_),
      resizer_(core_),
      lease_(config.name(), absl::Milliseconds(config.lease_timeout_ms())) {}

Volume::~Volume() {
  Close();
  core_.store.reset();  // writes what is pending
}

void Volume::Close() {
  core_.timers->Shutdown();
  core_.worker->Shutdown();
  for (const auto& slot : core_.slots) slot->replica->Stop();
  // While the volume is whole: the transactions still pending call back
  // into it (range locks, metrics, the state store) as they end.
  for (const auto& slot : core_.slots) slot->replica->Close();
}

absl::Status Volume::Init() {
  if (!core_.mirror()) return absl::OkStatus();
  if (core_.options.open_state_store) {
    ASSIGN_OR_RETURN(core_.store,
                     core_.options.open_state_store(core_.config.name()));
  } else {
    if (core_.options.state_dir.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "volume ", core_.config.name(), ": a mirror needs state_dir"));
    }
    ASSIGN_OR_RETURN(core_.store, OpenFileStateStore(absl::StrCat(
                                      core_.options.state_dir, "/",
                                      core_.config.name(), ".state")));
  }
  absl::StatusOr<v1::VolumeState> loaded = core_.store->Load();
  absl::MutexLock lock(&core_.mu);
  if (loaded.ok()) {
    RETURN_IF_ERROR(core_.state.Load(*loaded, core_.store->name()));
    DST_LOG(Info, "gateway: volume %s: loaded %s (generation %s)",
            core_.config.name(), core_.store->name(),
            core_.state.generations().empty()
                ? "none"
                : absl::StrCat(absl::Hex(core_.state.generations()[0])));
  } else if (absl::IsDataLoss(loaded.status())) {
    return absl::DataLossError(absl::StrCat(
        loaded.status().message(),
        " (refusing to start rather than forget which replica is stale)"));
  } else if (!absl::IsNotFound(loaded.status())) {
    return loaded.status();
  }
  return absl::OkStatus();
}

void Volume::Start() {
  core_.worker->After(kWorkTick, [this] { Work(/*periodic=*/true); });
  for (size_t i = 0; i < core_.slots.size(); ++i) {
    core_.slots[i]->replica->Start([this, i] { OnReplicaChange(i); },
                                   [this, i](const v1::NegotiateReply& reply) {
                                     return fencing_.Admit(i, reply);
                                   });
  }
}

void Volume::Save() {
  auto flushed = std::make_shared<absl::Notification>();
  FlushForStop([flushed] { flushed->Notify(); });
  if (!flushed->WaitForNotificationWithTimeout(kStopFlushLimit)) {
    DST_LOG(Warning,
            "gateway: volume %s: the flush at stop is unanswered after %s; "
            "its recent regions stay in the activity log (copied at the next "
            "start)",
            core_.config.name(), absl::FormatDuration(kStopFlushLimit));
  }
  absl::Notification saved;
  SaveThen([&saved](const absl::Status&) { saved.Notify(); });
  saved.WaitForNotification();
}

void Volume::FlushForStop(std::function<void()> flushed) {
  bool reachable = false;
  {
    absl::MutexLock lock(&core_.mu);
    // A replica away would hold the flush up to suspend_timeout_ms: the
    // recent regions then stay, copied at the next start.
    reachable = core_.mirror() && core_.state.decided();
    for (size_t i = 0; reachable && i < core_.slots.size(); ++i) {
      reachable = core_.connected[i] ||
                  core_.state.replica(i).sync != SyncState::kInSync;
    }
    if (reachable) core_.state.ForgetRecent();
  }
  if (!reachable) {
    flushed();
    return;
  }
  v1::Request flush;
  flush.set_op(v1::OP_FLUSH);
  writes_.Submit(
      std::move(flush), Payload(),
      [flushed = std::move(flushed)](v1::Reply&&, Payload&&) { flushed(); });
}

void Volume::SaveThen(Done then) {
  {
    absl::MutexLock lock(&core_.mu);
    if (core_.store != nullptr && core_.state.decided() &&
        core_.fenced.empty() &&
        core_.state.durable_version() < core_.state.version()) {
      core_.DurableOrWaitLocked(core_.state.version(), std::move(then));
      return;
    }
  }
  if (then) then(absl::OkStatus());
}

std::string Volume::CheckInvariants() const {
  absl::MutexLock lock(&core_.mu);
  std::string broken = core_.state.CheckInvariants();
  if (!broken.empty()) return broken;
  return resizer_.CheckInvariantsLocked();
}

void Volume::OnReplicaChange(size_t index) {
  ReplicaSlot& slot = *core_.slots[index];
  const bool connected = slot.replica->connected();
  core_.metrics.Connected(index, connected);
  absl::MutexLock lock(&core_.mu);
  core_.connected[index] = connected;
  // A new stream replays what the last one did not finish: resync waits
  // for it again.
  core_.state.SetDrained(index, false);
}

// --- lease --------------------------------------------------------------

absl::StatusOr<v1::Geometry> Volume::Open(bool read_only,
                                          const std::string& lease_token,
                                          const std::string& client_id) {
  absl::MutexLock lock(&core_.mu);
  if (!core_.fenced.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "volume ", core_.config.name(), " is fenced: ", core_.fenced));
  }
  if (!core_.state.diverged().empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "volume ", core_.config.name(), " diverged: ", core_.state.diverged()));
  }
  if (!core_.state.decided() || core_.geometry.size() == 0) {
    return absl::UnavailableError(absl::StrCat(
        "volume ", core_.config.name(), " is not ready: ",
        core_.mirror() && core_.state.generations().empty()
            ? "a new mirror waits for all its replicas to connect once"
            : "no replica has connected yet"));
  }
  v1::Geometry geometry = core_.geometry;
  if (read_only || geometry.read_only()) {
    geometry.set_read_only(true);
    return geometry;
  }
  if (absl::Status s = lease_.Acquire(lease_token, client_id, core_.Now());
      !s.ok()) {
    return s;
  }
  return geometry;
}

absl::Status Volume::AttachWriter(const std::string& lease_token) {
  return lease_.Attach(lease_token);
}

void Volume::DetachWriter() { lease_.Detach(core_.Now()); }

// --- I/O -------------------------------------------------------------------

void Volume::Submit(v1::Request request, Payload data, bool read_only,
                    TransactionDone done) {
  if (!request.data().empty()) data = TakeData(&request);
  total_.fetch_add(1, std::memory_order_relaxed);
  in_flight_.fetch_add(1, std::memory_order_relaxed);
  core_.metrics.RequestStarted();
  core_.NoteClientIo();
  TransactionDone counted = [this, done = std::move(done), op = request.op(),
                             written = data.size(), start = absl::Now()](
                                v1::Reply&& reply, Payload&& reply_data) {
    const bool ok = reply.status() == 0;
    if (!ok) failed_.fetch_add(1, std::memory_order_relaxed);
    in_flight_.fetch_sub(1, std::memory_order_relaxed);
    core_.metrics.RequestAnswered(op, ok, written + reply_data.size(),
                                  absl::Now() - start);
    if (core_.options.self_fence != nullptr &&
        core_.options.self_fence->Expired()) {
      // HA: the lease could have expired; another gateway may lead.
      core_.options.deposed("the etcd lease could have expired");
      const uint64_t id = reply.id();
      done(ErrorReply(id, absl::UnavailableError(
                              "this gateway no longer leads the volume")),
           Payload());
      return;
    }
    done(std::move(reply), std::move(reply_data));
  };
  v1::Geometry geometry;
  absl::Status status;
  {
    absl::MutexLock lock(&core_.mu);
    geometry = core_.geometry;
    if (!core_.fenced.empty()) {
      status =
          absl::AbortedError(absl::StrCat("volume is fenced: ", core_.fenced));
    } else if (!core_.state.diverged().empty()) {
      status = absl::FailedPreconditionError(
          absl::StrCat("volume diverged: ", core_.state.diverged()));
    } else if (!core_.state.decided() || core_.geometry.size() == 0) {
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
  if (status.ok() && (request.flags() & v1::REQUEST_FLAG_FAST_ZERO)) {
    status = CanZeroFast();
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
      geometry.features() & ChecksumFeature(core_.checksum) ? core_.checksum
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
    reads_.Read(std::move(request), client_checksum, std::move(counted));
    return;
  }
  if (request.op() == v1::OP_BLOCK_STATUS) {
    block_status_.Query(std::move(request), std::move(counted));
    return;
  }
  writes_.Submit(std::move(request), std::move(data), std::move(counted));
}

absl::Status Volume::CanZeroFast() const {
  absl::MutexLock lock(&core_.mu);
  for (size_t k = 0; k < core_.slots.size(); ++k) {
    if (core_.state.replica(k).sync == SyncState::kInSync &&
        !core_.slots[k]->fast_zero) {
      return absl::UnimplementedError(
          absl::StrCat("replica ", core_.slots[k]->replica->address(),
                       " cannot zero fast (its exporter predates it)"));
    }
  }
  return absl::OkStatus();
}

// --- timers and the worker
// ----------------------------------------------------

void Volume::KickWorker() {
  {
    absl::MutexLock lock(&work_mu_);
    if (kicked_) return;  // one queued run does it
    kicked_ = true;
  }
  core_.worker->After(absl::ZeroDuration(),
                      [this] { Work(/*periodic=*/false); });
}

void Volume::Work(bool periodic) {
  if (periodic) {
    core_.worker->After(kWorkTick, [this] { Work(/*periodic=*/true); });
  } else {
    absl::MutexLock lock(&work_mu_);
    kicked_ = false;
  }
  UpdateMetrics();
  if (!core_.mirror()) return;
  fencing_.PushGenerations();
  resizer_.GrowLagging();
  resyncer_.Drive(/*promote=*/true);
  absl::MutexLock lock(&core_.mu);
  if (core_.state.version() > core_.state.durable_version() &&
      core_.state.decided() && core_.Now() - core_.saved_at() > kLazySave) {
    core_.SaveLocked();
  }
}

// --- admin -----------------------------------------------------------------

namespace {
// Runs `start`, which takes a callback, and waits for it.
absl::Status Wait(
    const std::function<void(std::function<void(const absl::Status&)>)>&
        start) {
  absl::Notification done;
  absl::Status outcome;
  start([&](const absl::Status& status) {
    outcome = status;
    done.Notify();
  });
  done.WaitForNotification();
  return outcome;
}
}  // namespace

absl::Status Volume::Resync(const v1::ResyncRequest& request) {
  return Wait([&](Done done) { ResyncThen(request, std::move(done)); });
}

void Volume::ResyncThen(const v1::ResyncRequest& request, Done done) {
  resyncer_.Configure(request, std::move(done));
}

absl::Status Volume::Resolve(const std::string& source) {
  return Wait([&](Done done) { ResolveThen(source, std::move(done)); });
}

void Volume::ResolveThen(const std::string& source, Done done) {
  absl::Status status;
  {
    absl::MutexLock lock(&core_.mu);
    size_t chosen = 0;
    while (chosen < core_.slots.size() &&
           core_.slots[chosen]->replica->address() != source) {
      ++chosen;
    }
    if (!core_.mirror()) {
      status = absl::FailedPreconditionError(
          absl::StrCat("volume ", core_.config.name(), " is not a mirror"));
    } else if (chosen == core_.slots.size()) {
      status = absl::NotFoundError(absl::StrCat("volume ", core_.config.name(),
                                                " has no replica ", source));
    } else {
      status = core_.state.Resolve(chosen);
    }
    if (status.ok()) {
      resyncer_.ForgetProgressLocked();
      if (core_.state.durable_version() < core_.state.required_version()) {
        core_.DurableOrWaitLocked(core_.state.required_version(),
                                  std::move(done));
        return;
      }
    }
  }
  done(status);
}

absl::Status Volume::Resize(uint64_t size) {
  return Wait([&](const Done& done) { ResizeThen(size, done); });
}

void Volume::ResizeThen(uint64_t size, const Done& done) {
  resizer_.Resize(size, done);
}

absl::StatusOr<v1::VerifyReply> Volume::Verify(
    const v1::VerifyRequest& request) {
  return VerifyVolume(core_, request);
}

}  // namespace dst
