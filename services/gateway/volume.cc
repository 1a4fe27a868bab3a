// A plain or mirrored volume: sends, acknowledgements, resync, fencing and
// the lease around its MirrorState; see volume.h.
#include "services/gateway/volume.h"

#include <algorithm>
#include <filesystem>
#include <random>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"

#include "services/common/base/log.h"
#include "services/common/base/status.h"
#include "services/common/protocol/checksum.h"
#include "services/common/protocol/request_validation.h"
#include "services/common/transport/transaction_stream.h"
#include "services/gateway/replica.h"
#include "services/gateway/verifier.h"

namespace dst {

namespace {

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

std::vector<std::string> Addresses(
    const std::vector<std::unique_ptr<ReplicaHandle>>& replicas) {
  std::vector<std::string> addresses;
  addresses.reserve(replicas.size());
  for (const auto& replica : replicas) addresses.push_back(replica->address());
  return addresses;
}

MirrorState::Outcome OutcomeOf(int state) {
  return state == 1   ? MirrorState::Outcome::kOk
         : state == 2 ? MirrorState::Outcome::kFailed
                      : MirrorState::Outcome::kLagging;
}

}  // namespace

// One replica: its session, its claimed epoch, resync progress, metrics.
struct Volume::Slot {
  std::unique_ptr<ReplicaHandle> replica;
  uint64_t epoch = 0;  // claimed at its exporter this run (0: not yet)
  std::atomic<uint64_t> checksum_mismatches{0};
  // Resync progress (under mu_).
  uint64_t copied = 0;         // bytes copied by resync, total
  uint64_t copied_before = 0;  // `copied` when this resync began
  uint64_t resync_total = 0;   // dirty bytes when this resync began
  absl::Time resync_started;
  absl::Time next_copy;  // throttle, and the pause after a failure
  // A promotion flush that answered: what it covered, whether it worked.
  bool promotion_answered = false;
  bool promotion_flushed = false;
  RegionBitmap promotion_covered;
  absl::Time next_ping;  // the worker's keepalive Ping
};

// A modification or flush sent to several replicas.
struct Volume::Fanout {
  enum State { kPending = 0, kOk = 1, kFailed = 2 };
  struct Target {
    size_t slot;
    bool required;  // in sync when sent: the acknowledgement depends on it
    State state = kPending;
  };
  v1::Request request;  // its data field empty
  Payload data;         // a write's, shared by every target
  bool flush = false;
  uint64_t first_region = 0;  // regions a modification touches
  uint64_t last_region = 0;
  std::vector<MirrorState::Target> plan;  // as MirrorState planned it
  MirrorState::FlushPlan flush_plan;      // flushes
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
      timers_(
          (options.schedulers ? options.schedulers : TimerThreads())("timers")),
      worker_(
          (options.schedulers ? options.schedulers : TimerThreads())("worker")),
      metrics_(registry, config.name(), Addresses(replicas)),
      state_(config.name(), Addresses(replicas), config.region_bytes(),
             NewGeneration),
      connected_(replicas.size(), false),
      lease_(config.name(), absl::Milliseconds(config.lease_timeout_ms())) {
  for (auto& replica : replicas) {
    auto slot = std::make_unique<Slot>();
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
  // into it (range locks, metrics, the state store) as they end.
  for (const auto& slot : slots_) slot->replica->Close();
}

absl::Status Volume::Init() {
  if (!mirror()) return absl::OkStatus();
  if (options_.open_state_store) {
    ASSIGN_OR_RETURN(store_, options_.open_state_store(config_.name()));
  } else {
    if (options_.state_dir.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "volume ", config_.name(), ": a mirror needs state_dir"));
    }
    ASSIGN_OR_RETURN(
        store_, OpenFileStateStore(absl::StrCat(options_.state_dir, "/",
                                                config_.name(), ".state")));
  }
  absl::StatusOr<v1::VolumeState> loaded = store_->Load();
  absl::MutexLock lock(&mu_);
  if (loaded.ok()) {
    RETURN_IF_ERROR(state_.Load(*loaded, store_->name()));
    DST_LOG(Info, "gateway: volume %s: loaded %s (generation %s)",
            config_.name(), store_->name(),
            state_.generations().empty()
                ? "none"
                : absl::StrCat(absl::Hex(state_.generations()[0])));
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
  worker_->After(kWorkTick, [this] { Work(/*periodic=*/true); });
  for (size_t i = 0; i < slots_.size(); ++i) {
    slots_[i]->replica->Start(
        [this, i] { OnReplicaChange(i); },
        [this, i](const v1::NegotiateReply& reply) { return Admit(i, reply); });
  }
}

void Volume::Save() {
  absl::Notification saved;
  SaveThen([&saved](const absl::Status&) { saved.Notify(); });
  saved.WaitForNotification();
}

void Volume::SaveThen(Done then) {
  {
    absl::MutexLock lock(&mu_);
    if (store_ != nullptr && state_.decided() && fenced_.empty() &&
        state_.durable_version() < state_.version()) {
      DurableOrWaitLocked(state_.version(), std::move(then));
      return;
    }
  }
  if (then) then(absl::OkStatus());
}

std::string Volume::CheckInvariants() const {
  absl::MutexLock lock(&mu_);
  return state_.CheckInvariants();
}

void Volume::OnReplicaChange(size_t index) {
  Slot& slot = *slots_[index];
  const bool connected = slot.replica->connected();
  metrics_.Connected(index, connected);
  absl::MutexLock lock(&mu_);
  connected_[index] = connected;
  // A new stream replays what the last one did not finish: resync waits
  // for it again.
  state_.SetDrained(index, false);
}

// --- durability --------------------------------------------------------------

bool Volume::DurableOrWaitLocked(uint64_t needed, Done then) {
  if (state_.durable_version() >= needed) return true;
  if (!then) then = [](const absl::Status&) {};
  waiters_.push_back(Waiter{needed, std::move(then)});
  SaveLocked();
  return false;
}

void Volume::SaveLocked() {
  if (saving_ || store_ == nullptr) return;
  if (!fenced_.empty()) {
    // Another gateway owns the volume now: its state is not this one's to
    // write. What waits for a save fails.
    if (!waiters_.empty()) {
      timers_->After(absl::ZeroDuration(), [this] {
        FailWaiters(absl::AbortedError("the volume is fenced"));
      });
    }
    return;
  }
  saving_ = true;
  saved_at_ = Now();
  const uint64_t version = state_.version();
  store_->Write(state_.Snapshot(), [this, version](const absl::Status& status) {
    OnSaved(version, status);
  });
}

void Volume::SaveIfRequiredLocked() {
  if (state_.required_version() > state_.durable_version()) SaveLocked();
}

void Volume::OnSaved(uint64_t version, const absl::Status& status) {
  std::vector<std::pair<Done, absl::Status>> ready;
  {
    absl::MutexLock lock(&mu_);
    saving_ = false;
    if (status.ok()) state_.Saved(version);
    std::vector<Waiter> left;
    for (Waiter& waiter : waiters_) {
      if (waiter.needed <= state_.durable_version()) {
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
    if (!waiters_.empty() || state_.required_version() > version) {
      SaveLocked();
    }
  }
  for (auto& [then, outcome] : ready) then(outcome);
}

void Volume::FailWaiters(const absl::Status& why) {
  std::vector<Waiter> failed;
  {
    absl::MutexLock lock(&mu_);
    failed.swap(waiters_);
  }
  for (Waiter& waiter : failed) waiter.then(why);
}

// --- admission ---------------------------------------------------------------

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
  const v1::ReplicaMetadata& md = reply.metadata();
  uint64_t epoch;
  {
    absl::MutexLock lock(&mu_);
    if (!fenced_.empty()) return absl::AbortedError(fenced_);
    if (g.size() < state_.state_size()) {
      return absl::FailedPreconditionError(
          absl::StrCat("exporter has ", g.size(), " bytes; the volume has ",
                       state_.state_size()));
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
    if (slot.epoch == 0) {
      // The first claim of this run at this exporter goes above whatever
      // it holds: an earlier run of this gateway may still have writes in
      // flight there, and the exporter refuses them once claimed.
      epoch = std::max(epoch_, md.epoch() + 1);
    } else if (md.epoch() > slot.epoch || (md.epoch() == slot.epoch &&
                                           md.owner() != options_.gateway_id)) {
      FenceLocked(absl::StrCat(
          "replica ", slot.replica->address(), " was claimed by '", md.owner(),
          "' (epoch ", md.epoch(), "); this gateway holds epoch ", slot.epoch));
      return absl::AbortedError(fenced_);
    } else {
      epoch = slot.epoch;
    }
  }
  std::vector<uint64_t> generations(md.generations().begin(),
                                    md.generations().end());
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
  } else {
    epoch = 0;
  }
  absl::MutexLock lock(&mu_);
  slot.epoch = epoch;
  epoch_ = std::max(epoch_, epoch);
  if (geometry_.size() == 0) {
    geometry_ = g;
    geometry_.set_size(state_.state_size() != 0 ? state_.state_size()
                                                : g.size());
    geometry_.set_size(geometry_.size() -
                       geometry_.size() % geometry_.logical_block_size());
    geometry_.set_identity(config_.name());
    geometry_.set_read_only(g.read_only() || config_.read_only());
    geometry_.clear_attributes();
  }
  state_.SetSize(geometry_.size());
  Negotiated negotiated;
  negotiated.identity = g.identity();
  negotiated.instance = reply.instance();
  negotiated.generations = std::move(generations);
  state_.Admit(index, negotiated);
  SaveIfRequiredLocked();
  return epoch;
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
  if (!state_.diverged().empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "volume ", config_.name(), " diverged: ", state_.diverged()));
  }
  if (!state_.decided() || geometry_.size() == 0) {
    return absl::UnavailableError(absl::StrCat(
        "volume ", config_.name(), " is not ready: ",
        mirror() && state_.generations().empty()
            ? "a new mirror waits for all its replicas to connect once"
            : "no replica has connected yet"));
  }
  v1::Geometry geometry = geometry_;
  if (read_only || geometry.read_only()) {
    geometry.set_read_only(true);
    return geometry;
  }
  if (absl::Status s = lease_.Acquire(lease_token, client_id, Now()); !s.ok()) {
    return s;
  }
  return geometry;
}

absl::Status Volume::AttachWriter(const std::string& lease_token) {
  return lease_.Attach(lease_token);
}

void Volume::DetachWriter() { lease_.Detach(Now()); }

// --- I/O -------------------------------------------------------------------

void Volume::Submit(v1::Request request, Payload data, bool read_only,
                    TransactionDone done) {
  if (!request.data().empty()) data = TakeData(&request);
  total_.fetch_add(1, std::memory_order_relaxed);
  in_flight_.fetch_add(1, std::memory_order_relaxed);
  metrics_.RequestStarted();
  TransactionDone counted = [this, done = std::move(done), op = request.op(),
                             written = data.size(), start = absl::Now()](
                                v1::Reply&& reply, Payload&& reply_data) {
    const bool ok = reply.status() == 0;
    if (!ok) failed_.fetch_add(1, std::memory_order_relaxed);
    in_flight_.fetch_sub(1, std::memory_order_relaxed);
    metrics_.RequestAnswered(op, ok, written + reply_data.size(),
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
    } else if (!state_.diverged().empty()) {
      status = absl::FailedPreconditionError(
          absl::StrCat("volume diverged: ", state_.diverged()));
    } else if (!state_.decided() || geometry_.size() == 0) {
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
          if (state_.replica(k).sync == SyncState::kInSync &&
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
  fanout->flush = !IsModifying(fanout->request.op());
  const uint64_t offset = fanout->request.offset();
  const uint64_t length = fanout->request.length();
  const uint64_t region = config_.region_bytes();
  fanout->first_region = offset / region;
  fanout->last_region =
      length == 0 ? fanout->first_region : (offset + length - 1) / region;
  if (fanout->flush) {
    fanout->done = std::move(counted);
    SubmitFanout(fanout);
    return;
  }
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
            metrics_.HedgedRead();
            SubmitRead(op);
          });
  }
  Slot* slot = slots_[k].get();
  ReplicaHandle* replica = slot->replica.get();
  uint64_t leaves;
  {
    absl::MutexLock lock(&mu_);
    leaves = state_.replica(k).leaves;
  }
  replica->Submit(op->request, [this, op, slot, replica, k, leaves](
                                   v1::Reply&& reply, Payload&& data) {
    if (reply.status() == 0) {
      absl::MutexLock lock(&mu_);
      if (!state_.StillInSync(k, leaves)) {
        reply = ErrorReply(
            reply.id(),
            absl::UnavailableError("it left the in-sync set while the read was "
                                   "out (its answer may be stale)"));
      }
    }
    const v1::ChecksumAlgorithm algorithm = op->request.checksum_algorithm();
    if (reply.status() == 0 && algorithm != v1::CHECKSUM_NONE) {
      absl::Status intact =
          VerifyChecksum(algorithm, data, reply.checksum(), "the data read");
      if (!intact.ok()) {
        slot->checksum_mismatches.fetch_add(1, std::memory_order_relaxed);
        metrics_.ChecksumMismatch(k);
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

void Volume::Heal(const Slot* slot, uint64_t offset, uint64_t length) {
  absl::MutexLock lock(&mu_);
  size_t index = slots_.size();
  for (size_t i = 0; i < slots_.size(); ++i) {
    if (slots_[i].get() == slot) index = i;
  }
  if (index == slots_.size() || geometry_.size() == 0) return;
  const uint64_t region = config_.region_bytes();
  if (state_.Heal(index, offset / region, (offset + length - 1) / region)) {
    SaveIfRequiredLocked();
  }
}

void Volume::SubmitFanout(const std::shared_ptr<Fanout>& fanout) {
  const uint64_t id = fanout->request.id();
  absl::Status refused;
  {
    absl::MutexLock lock(&mu_);
    if (!fenced_.empty()) {
      refused = absl::AbortedError(absl::StrCat("volume is fenced: ", fenced_));
    } else if (!PlanLocked(fanout, &refused)) {
      return;  // sent once what it relies on is durable
    }
  }
  if (!refused.ok()) {
    fanout->done(ErrorReply(id, refused), Payload());
    return;
  }
  // Every target shares the data: a mirrored write is not copied here.
  const Payload data = std::move(fanout->data);
  for (size_t t = 0; t < fanout->targets.size(); ++t) {
    ReplicaHandle* replica = slots_[fanout->targets[t].slot]->replica.get();
    replica->Submit(
        fanout->request,
        [this, fanout, t](v1::Reply&& reply, Payload&&) {
          OnFanoutReply(fanout, t, std::move(reply));
        },
        data);
  }
}

bool Volume::PlanLocked(const std::shared_ptr<Fanout>& fanout,
                        absl::Status* refused) {
  const std::vector<bool>& connected = connected_;
  if (fanout->flush) {
    fanout->flush_plan = state_.PlanFlush(connected);
    fanout->plan = fanout->flush_plan.targets;
  } else {
    MirrorState::WritePlan plan =
        state_.PlanWrite(fanout->first_region, fanout->last_region, connected);
    fanout->plan = std::move(plan.targets);
    // A modification goes out only once what it relies on is durable: the
    // activity log of its regions, the dirty bits of the replicas it skips.
    // Then it is planned again, with the state then current.
    const uint64_t id = fanout->request.id();
    if (!DurableOrWaitLocked(plan.needed_version,
                             [this, fanout, id](const absl::Status& s) {
                               if (s.ok()) {
                                 SubmitFanout(fanout);
                               } else {
                                 fanout->done(ErrorReply(id, s), Payload());
                               }
                             })) {
      return false;
    }
  }
  bool any_required = false;
  for (const MirrorState::Target& t : fanout->plan) any_required |= t.required;
  if (!any_required) {
    if (fanout->flush) {  // gives back what the flush was to cover
      state_.EndFlush(fanout->flush_plan,
                      std::vector<MirrorState::Outcome>(
                          fanout->plan.size(), MirrorState::Outcome::kFailed),
                      /*acknowledged=*/false);
    }
    *refused = absl::UnavailableError("no in-sync replica");
    return true;
  }
  if (!fanout->flush) {
    state_.BeginWrite(fanout->first_region, fanout->last_region);
  }
  absl::MutexLock fanout_lock(&fanout->mu);
  fanout->targets.clear();
  for (const MirrorState::Target& t : fanout->plan) {
    fanout->targets.push_back(Fanout::Target{t.replica, t.required});
  }
  fanout->pending = fanout->targets.size();
  return true;
}

void Volume::OnFanoutReply(const std::shared_ptr<Fanout>& fanout, size_t target,
                           v1::Reply&& reply) {
  bool finish = false;
  bool arm_timer = false;
  if (mirror() && !fanout->flush && reply.status() == 0) {
    // Once finished, a late taker has the region dirty (EndWrite).
    absl::MutexLock lock(&mu_);
    absl::MutexLock fanout_lock(&fanout->mu);
    if (!fanout->finished) {
      state_.Took(fanout->targets[target].slot, fanout->first_region,
                  fanout->last_region);
    }
  }
  {
    absl::MutexLock lock(&fanout->mu);
    Fanout::Target& t = fanout->targets[target];
    --fanout->pending;
    if (reply.status() == 0) {
      t.state = Fanout::kOk;
      if (t.required) fanout->required_ok = true;
    } else {
      t.state = Fanout::kFailed;
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
      if (other.required && other.state == Fanout::kPending) {
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
  std::vector<std::function<void()>> ready;
  {
    absl::MutexLock lock(&mu_);
    FinishLocked(fanout, &ready);
  }
  for (auto& fn : ready) fn();
}

void Volume::FinishLocked(const std::shared_ptr<Fanout>& fanout,
                          std::vector<std::function<void()>>* ready) {
  const uint64_t id = fanout->request.id();
  std::vector<MirrorState::Outcome> outcomes;
  bool fenced;
  v1::Reply first_error;
  {
    absl::MutexLock fanout_lock(&fanout->mu);
    if (fanout->finished) return;
    for (const Fanout::Target& t : fanout->targets) {
      outcomes.push_back(OutcomeOf(t.state));
    }
    fenced = fanout->fenced;
    first_error = fanout->first_error;
    // The lag limit passed, but the replicas that took it have left the
    // set since: the others are not left behind; wait for them instead.
    if (!fenced && fanout->pending > 0 &&
        !state_.HeldInSync(fanout->plan, outcomes, connected_)) {
      After(absl::Milliseconds(config_.lag_limit_ms()),
            [this, weak = std::weak_ptr<Fanout>(fanout)] {
              if (std::shared_ptr<Fanout> fanout = weak.lock()) {
                FinishFanout(fanout);
              }
            });
      return;
    }
    fanout->finished = true;
  }
  const bool acknowledged =
      !fenced && state_.HeldInSync(fanout->plan, outcomes, connected_);
  auto reply = std::make_shared<v1::Reply>();
  if (!acknowledged) {
    // Fenced: another gateway writes now. Else nothing in sync took it.
    *reply = first_error;
    if (reply->status() == 0) {
      *reply =
          ErrorReply(id, absl::UnavailableError("no in-sync replica took it"));
    }
  }
  reply->set_id(id);
  if (fenced) FenceLocked(first_error.message());
  const uint64_t needed =
      fanout->flush
          ? state_.EndFlush(fanout->flush_plan, outcomes, acknowledged)
          : state_.EndWrite(fanout->first_region, fanout->last_region,
                            fanout->plan, outcomes, acknowledged, connected_);
  // The reply goes once what it relies on is durable (the replicas that
  // missed it recorded as out of sync), from the store's thread; if it
  // already is, once the lock is released.
  auto answer = [fanout, reply](const absl::Status& s) {
    fanout->done(s.ok() ? v1::Reply(*reply) : ErrorReply(reply->id(), s),
                 Payload());
  };
  if (fenced || DurableOrWaitLocked(needed, answer)) {
    ready->push_back([answer] { answer(absl::OkStatus()); });
  }
}

// --- timers and the worker
// ----------------------------------------------------

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
  if (state_.version() > state_.durable_version() && state_.decided() &&
      Now() - saved_at_ > kLazySave) {
    SaveLocked();
  }
}

void Volume::UpdateMetrics() {
  const absl::Time now = Now();
  for (size_t i = 0; i < slots_.size(); ++i) {
    Slot& slot = *slots_[i];
    metrics_.PollSession(i, slot.replica->counters(), slot.replica->pending());
    if (now >= slot.next_ping && slot.replica->connected()) {
      slot.next_ping = now + kPingInterval;
      slot.replica->Ping(metrics_.PingObserver(i));
    }
  }
  VolumeHealth health;
  {
    absl::MutexLock lock(&mu_);
    for (size_t i = 0; i < slots_.size(); ++i) {
      const MirrorState::Replica& r = state_.replica(i);
      const bool in_sync = r.sync == SyncState::kInSync;
      metrics_.PollSync(i, in_sync,
                        in_sync ? 0 : r.dirty.count() * config_.region_bytes());
    }
    metrics_.PollLagExits(state_.exits());
    health = HealthLocked();
  }
  metrics_.PollHealth(health);
}

void Volume::PushGenerations() {
  for (size_t i = 0; i < slots_.size(); ++i) {
    Slot& slot = *slots_[i];
    v1::ClaimRequest claim;
    {
      absl::MutexLock lock(&mu_);
      if (!state_.GenerationDue(i) || !slot.replica->connected() ||
          !fenced_.empty()) {
        continue;
      }
      if (slot.epoch == 0) {  // an exporter that keeps no metadata
        state_.GenerationPushed(i, state_.generations()[0], {});
        continue;
      }
      claim.set_epoch(slot.epoch);
      claim.set_owner(options_.gateway_id);
      claim.set_set_generations(true);
      for (uint64_t g : state_.generations()) claim.add_generations(g);
    }
    absl::StatusOr<v1::ReplicaMetadata> claimed = slot.replica->Claim(claim);
    absl::MutexLock lock(&mu_);
    if (absl::IsAborted(claimed.status())) {
      FenceLocked(std::string(claimed.status().message()));
    } else if (claimed.ok()) {
      state_.GenerationPushed(
          i, claim.generations(0),
          {claimed->generations().begin(), claimed->generations().end()});
    }
  }
}

void Volume::DriveResync(bool promote) {
  std::vector<std::pair<size_t, uint64_t>> copies;  // (target, region)
  std::vector<size_t> flushes;                      // promotion flushes
  std::vector<size_t> finishes;                     // flushed: rejoin
  {
    absl::MutexLock lock(&mu_);
    if (resync_paused_ || !state_.decided() || !fenced_.empty() ||
        !state_.diverged().empty()) {
      return;
    }
    const std::vector<bool>& connected = connected_;
    const absl::Time now = Now();
    for (size_t i = 0; i < slots_.size(); ++i) {
      Slot& slot = *slots_[i];
      if (slot.promotion_answered) {
        finishes.push_back(i);
        continue;
      }
      if (!state_.Resyncing(i) || !connected[i]) continue;
      const MirrorState::Replica& r = state_.replica(i);
      // Transactions sent before its last miss must be over first: a late
      // one could land after the copy of its region.
      if (!r.drained) {
        if (slot.replica->pending() != 0) continue;
        state_.SetDrained(i, true);
      }
      if (state_.CanPromote(i)) {
        flushes.push_back(i);
        continue;
      }
      if (r.dirty.count() == 0 || !state_.Source(i, connected)) continue;
      if (slot.resync_total == 0) {
        slot.resync_total = r.dirty.count() * config_.region_bytes();
        slot.resync_started = now;
        slot.copied_before = slot.copied;
        DST_LOG(Info,
                "gateway: volume %s: resync of replica %s: %d dirty bytes",
                config_.name(), slot.replica->address(), slot.resync_total);
      }
      // Up to kResyncDepth regions in flight, as the throttle allows.
      while (state_.replica(i).copying.size() < kResyncDepth &&
             now >= slot.next_copy) {
        std::optional<uint64_t> region = state_.NextCopy(i);
        if (!region.has_value()) break;
        if (resync_rate_ > 0) {
          slot.next_copy =
              std::max(slot.next_copy, now) +
              absl::Seconds(static_cast<double>(config_.region_bytes()) /
                            static_cast<double>(resync_rate_));
        }
        copies.emplace_back(i, *region);
      }
    }
  }
  for (auto [target, region] : copies) CopyRegion(target, region);
  for (size_t target : flushes) {
    // Before it rejoins, what it took while out of sync is made durable:
    // a power cut right after must not lose it unnoticed.
    RegionBitmap covered;
    {
      absl::MutexLock lock(&mu_);
      if (!state_.CanPromote(target)) continue;
      covered = state_.StartPromotion(target);
    }
    v1::Request flush;
    flush.set_op(v1::OP_FLUSH);
    slots_[target]->replica->Submit(
        flush, [this, target, covered](v1::Reply&& reply, Payload&&) {
          {
            absl::MutexLock lock(&mu_);
            Slot& slot = *slots_[target];
            slot.promotion_answered = true;
            slot.promotion_flushed = reply.status() == 0;
            slot.promotion_covered = covered;
          }
          KickWorker();
        });
  }
  if (!finishes.empty() && !promote) KickWorker();
  if (promote) {
    for (size_t target : finishes) FinishPromotion(target);
  }
}

void Volume::CopyRegion(size_t target, uint64_t region) {
  uint64_t offset;
  uint64_t end;
  {
    absl::MutexLock lock(&mu_);
    offset = region * config_.region_bytes();
    end = std::min(offset + config_.region_bytes(), geometry_.size());
  }
  // Under the range lock: no client write to the region meanwhile.
  modifications_.Acquire(offset, end - offset,
                         [this, target, region, offset, end] {
                           CopyChunk(target, region, offset, end);
                         });
}

void Volume::CopyChunk(size_t target, uint64_t region, uint64_t offset,
                       uint64_t end) {
  const uint64_t region_start = region * config_.region_bytes();
  if (offset >= end) {
    EndCopy(target, region, true);
    modifications_.Release(region_start, end - region_start);
    return;
  }
  auto fail = [this, target, region, region_start,
               end](const std::string& why) {
    DST_LOG(Warning, "gateway: volume %s: resync of %s: region %d: %s",
            config_.name(), slots_[target]->replica->address(), region, why);
    EndCopy(target, region, false);
    modifications_.Release(region_start, end - region_start);
  };
  uint64_t length;
  v1::Request read;
  std::optional<size_t> source;
  uint64_t leaves = 0;
  {
    absl::MutexLock lock(&mu_);
    length = std::min<uint64_t>(end - offset, geometry_.max_transfer());
    if (geometry_.features() & ChecksumFeature(checksum_)) {
      read.set_checksum_algorithm(checksum_);
    }
    // Chosen now, under the range lock: a replica in sync when the copy
    // was planned may have left the set since, missing the very write that
    // held the lock.
    source = state_.Source(target, connected_);
    if (source.has_value()) leaves = state_.replica(*source).leaves;
  }
  if (!source.has_value()) {
    fail("no in-sync replica to copy from");
    return;
  }
  read.set_op(v1::OP_READ);
  read.set_offset(offset);
  read.set_length(static_cast<uint32_t>(length));
  slots_[*source]->replica->Submit(
      read, [this, target, region, offset, end, length, fail, source = *source,
             leaves](v1::Reply&& reply, Payload&& data) {
        if (reply.status() == 0) {
          absl::MutexLock lock(&mu_);
          if (!state_.StillInSync(source, leaves)) {
            reply = ErrorReply(
                reply.id(),
                absl::UnavailableError("the source left the in-sync set"));
          }
        }
        if (reply.status() == 0 && !reply.checksum().empty()) {
          absl::Status intact =
              VerifyChecksum(checksum_, data, reply.checksum(), "resync data");
          if (!intact.ok()) reply = ErrorReply(reply.id(), intact);
        }
        if (reply.status() != 0) {
          fail(reply.message());
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
            [this, target, region, offset, end, length, fail](
                v1::Reply&& written, Payload&&) {
              if (written.status() != 0) {
                fail(written.message());
                return;
              }
              {
                absl::MutexLock lock(&mu_);
                slots_[target]->copied += length;
              }
              metrics_.ResyncCopied(target, length);
              CopyChunk(target, region, offset + length, end);
            },
            std::move(data));
      });
}

void Volume::EndCopy(size_t target, uint64_t region, bool ok) {
  {
    absl::MutexLock lock(&mu_);
    state_.CopyDone(target, region, ok);
    if (!ok) slots_[target]->next_copy = Now() + kCopyRetry;
  }
  // The next region at once, not at the next tick (no blocking work here:
  // this runs on a reply's thread).
  if (ok) DriveResync(/*promote=*/false);
}

void Volume::FinishPromotion(size_t target) {
  Slot& slot = *slots_[target];
  v1::ClaimRequest claim;
  RegionBitmap covered;
  bool flushed;
  {
    absl::MutexLock lock(&mu_);
    if (!slot.promotion_answered) return;
    flushed = slot.promotion_flushed;
    covered = slot.promotion_covered;
    if (flushed && state_.durable_version() < state_.required_version()) {
      // The generation it is to learn must be durable first.
      SaveLocked();
      return;
    }
    slot.promotion_answered = false;
    claim.set_epoch(slot.epoch);
    claim.set_owner(options_.gateway_id);
    claim.set_set_generations(true);
    for (uint64_t g : state_.generations()) claim.add_generations(g);
  }
  std::vector<uint64_t> generations(claim.generations().begin(),
                                    claim.generations().end());
  if (flushed && claim.epoch() != 0) {
    absl::StatusOr<v1::ReplicaMetadata> claimed = slot.replica->Claim(claim);
    if (!claimed.ok()) {
      flushed = false;
      absl::MutexLock lock(&mu_);
      if (absl::IsAborted(claimed.status())) {
        FenceLocked(std::string(claimed.status().message()));
      }
    }
  }
  absl::MutexLock lock(&mu_);
  if (!state_.FinishPromotion(target, covered, flushed, generations)) {
    slot.next_copy = Now() + kCopyRetry;
    return;
  }
  DST_LOG(Info,
          "gateway: volume %s: replica %s is in sync again (resync copied %d "
          "of %d dirty bytes in %s)",
          config_.name(), slot.replica->address(),
          slot.copied - slot.copied_before, slot.resync_total,
          absl::FormatDuration(Now() - slot.resync_started));
  slot.resync_total = 0;
  SaveLocked();
}

// --- admin -----------------------------------------------------------------

VolumeHealth Volume::HealthLocked() const {
  if (!fenced_.empty()) return VolumeHealth::kFenced;
  if (!state_.diverged().empty()) return VolumeHealth::kDiverged;
  if (!state_.decided() || geometry_.size() == 0) {
    return VolumeHealth::kUnavailable;
  }
  bool any_in_sync_connected = false;
  bool all_in_sync = true;
  for (size_t i = 0; i < slots_.size(); ++i) {
    const bool in_sync = state_.replica(i).sync == SyncState::kInSync;
    if (!in_sync) all_in_sync = false;
    if (in_sync && slots_[i]->replica->connected()) {
      any_in_sync_connected = true;
    }
  }
  if (!any_in_sync_connected) return VolumeHealth::kWaiting;
  return all_in_sync ? VolumeHealth::kReady : VolumeHealth::kDegraded;
}

VolumeHealth Volume::health() const {
  absl::MutexLock lock(&mu_);
  return HealthLocked();
}

v1::VolumeStatus Volume::Status() const {
  v1::VolumeStatus status;
  status.set_name(config_.name());
  absl::MutexLock lock(&mu_);
  *status.mutable_geometry() = geometry_;
  const VolumeHealth health = HealthLocked();
  status.set_state(HealthName(health));
  if (!fenced_.empty()) {
    status.set_message(fenced_);
  } else if (!state_.diverged().empty()) {
    status.set_message(state_.diverged());
  } else if (health == VolumeHealth::kWaiting) {
    status.set_message(
        "no up-to-date replica is reachable; I/O waits for one (out-of-sync "
        "replicas are never a source; `dstctl resolve` overrides)");
  }
  status.set_generation(state_.generations().empty() ? 0
                                                     : state_.generations()[0]);
  status.set_epoch(epoch_);
  status.set_lease_holder(lease_.Holder(Now()));
  status.set_resync_rate_bytes(resync_rate_);
  status.set_resync_paused(resync_paused_);
  for (size_t i = 0; i < slots_.size(); ++i) {
    const Slot& slot = *slots_[i];
    const MirrorState::Replica& state = state_.replica(i);
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
        r->set_sync(!connected ? "stale"
                    : slot.resync_total > 0 || !state.copying.empty()
                        ? "resyncing"
                        : "out_of_sync");
        break;
    }
    r->set_dirty_bytes(state.sync == SyncState::kInSync
                           ? 0
                           : state.dirty.count() * config_.region_bytes());
    r->set_resync_copied_bytes(slot.copied);
    r->set_resync_total_bytes(slot.resync_total);
    r->set_generation(state.generations.empty() ? 0 : state.generations[0]);
    r->set_checksum_mismatches(slot.checksum_mismatches.load());
  }
  status.set_transactions_total(total_.load());
  status.set_transactions_failed(failed_.load());
  status.set_in_flight(in_flight_.load());
  return status;
}

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
  absl::Status status;
  {
    absl::MutexLock lock(&mu_);
    if (request.has_rate_bytes()) resync_rate_ = request.rate_bytes();
    resync_paused_ = request.stop();
    if (request.full() && !mirror()) {
      status = absl::FailedPreconditionError(
          absl::StrCat("volume ", config_.name(), " is not a mirror"));
    } else if (request.full()) {
      size_t i = 0;
      while (i < slots_.size() &&
             slots_[i]->replica->address() != request.replica()) {
        ++i;
      }
      if (i == slots_.size()) {
        status = absl::NotFoundError(absl::StrCat(
            "volume ", config_.name(), " has no replica ", request.replica()));
      } else {
        status = state_.ResyncFull(i);
        slots_[i]->resync_total = 0;
      }
      // Answered once the state that will copy everything is durable.
      if (status.ok() && state_.durable_version() < state_.required_version()) {
        DurableOrWaitLocked(state_.required_version(), std::move(done));
        return;
      }
    }
  }
  done(status);
}

absl::Status Volume::Resolve(const std::string& source) {
  return Wait([&](Done done) { ResolveThen(source, std::move(done)); });
}

void Volume::ResolveThen(const std::string& source, Done done) {
  absl::Status status;
  {
    absl::MutexLock lock(&mu_);
    size_t chosen = 0;
    while (chosen < slots_.size() &&
           slots_[chosen]->replica->address() != source) {
      ++chosen;
    }
    if (!mirror()) {
      status = absl::FailedPreconditionError(
          absl::StrCat("volume ", config_.name(), " is not a mirror"));
    } else if (chosen == slots_.size()) {
      status = absl::NotFoundError(
          absl::StrCat("volume ", config_.name(), " has no replica ", source));
    } else {
      status = state_.Resolve(chosen);
    }
    if (status.ok()) {
      for (const auto& slot : slots_) slot->resync_total = 0;
      if (state_.durable_version() < state_.required_version()) {
        DurableOrWaitLocked(state_.required_version(), std::move(done));
        return;
      }
    }
  }
  done(status);
}

absl::StatusOr<v1::VerifyReply> Volume::Verify(
    const v1::VerifyRequest& request) {
  std::vector<size_t> compared;
  uint64_t size;
  uint64_t chunk;
  {
    absl::MutexLock lock(&mu_);
    if (!state_.decided() || geometry_.size() == 0) {
      return absl::UnavailableError("volume is not ready");
    }
    for (size_t i = 0; i < slots_.size(); ++i) {
      if (state_.replica(i).sync == SyncState::kInSync) compared.push_back(i);
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
  std::vector<std::string> addresses;
  addresses.reserve(compared.size());
  for (size_t i : compared) addresses.push_back(slots_[i]->replica->address());
  auto checksum = [&](size_t k, uint64_t offset, uint64_t length) {
    v1::Request sum;
    sum.set_op(v1::OP_CHECKSUM);
    sum.set_offset(offset);
    sum.set_length(static_cast<uint32_t>(length));
    return WaitForReply([&](TransactionDone done) {
      slots_[compared[k]]->replica->Submit(sum, std::move(done));
    });
  };
  return CompareReplicas(addresses, checksum, modifications_, begin, end,
                         chunk);
}

SchedulerFactory GatewaySchedulers(SharedTimers& timers) {
  return [&timers](const std::string& name) -> std::unique_ptr<Scheduler> {
    if (name == "timers") return timers.Make();
    return std::make_unique<TimerThread>();
  };
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
