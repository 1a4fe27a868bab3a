// The crash simulation's world: see sim.h.
#include "tests/crash/sim.h"

#include <algorithm>
#include <cstdio>
#include <utility>

#include "absl/strings/str_cat.h"

#include "services/common/base/status.h"
#include "services/common/transport/transaction_stream.h"

namespace dst::sim {

// --- World ------------------------------------------------------------------

void World::Trace(const std::string& line) {
  std::string stamped = absl::StrCat(
      absl::FormatDuration(now_ - (absl::UnixEpoch() + absl::Hours(24))), " ",
      line);
  if (verbose) std::fprintf(stderr, "%s\n", stamped.c_str());
  trace_.push_back(std::move(stamped));
  if (trace_.size() > kTraceLines) trace_.pop_front();
}

std::string World::TraceTail() const {
  std::string out;
  for (const std::string& line : trace_) absl::StrAppend(&out, line, "\n");
  return out;
}

// --- SimScheduler -----------------------------------------------------------

void SimScheduler::After(absl::Duration delay, std::function<void()> fn) {
  if (stopped_) return;
  timers_.push_back(Timer{world_->now() + std::max(delay, absl::ZeroDuration()),
                          seq_++, std::move(fn)});
}

void SimScheduler::Shutdown() {
  stopped_ = true;
  timers_.clear();
}

absl::Time SimScheduler::next_due() const {
  absl::Time due = absl::InfiniteFuture();
  for (const Timer& timer : timers_) due = std::min(due, timer.when);
  return due;
}

void SimScheduler::RunNext() {
  auto earliest = std::min_element(
      timers_.begin(), timers_.end(), [](const Timer& a, const Timer& b) {
        return a.when != b.when ? a.when < b.when : a.seq < b.seq;
      });
  if (earliest == timers_.end()) return;
  std::function<void()> fn = std::move(earliest->fn);
  timers_.erase(earliest);
  fn();
}

// --- SimStorage -------------------------------------------------------------

SimStorage::SimStorage(uint64_t size, uint32_t block_bytes)
    : block_bytes_(block_bytes), durable_(size, '\0') {}

std::string SimStorage::Current(uint64_t index) const {
  auto cached = cache_.find(index);
  if (cached != cache_.end()) return cached->second.back();
  return Durable(index);
}

std::string SimStorage::Durable(uint64_t index) const {
  return durable_.substr(index * block_bytes_, block_bytes_);
}

absl::Status SimStorage::Read(uint64_t offset, size_t length, char* out) {
  for (uint64_t at = offset; at < offset + length; at += block_bytes_) {
    const std::string block = Current(at / block_bytes_);
    std::copy(block.begin(), block.end(), out + (at - offset));
  }
  return absl::OkStatus();
}

void SimStorage::Put(uint64_t offset, const std::string& bytes, bool fua) {
  for (uint64_t at = 0; at < bytes.size(); at += block_bytes_) {
    const uint64_t index = (offset + at) / block_bytes_;
    std::string block = bytes.substr(at, block_bytes_);
    if (fua) {
      durable_.replace(index * block_bytes_, block_bytes_, block);
      cache_.erase(index);
    } else {
      cache_[index].push_back(std::move(block));
    }
  }
}

absl::Status SimStorage::Write(uint64_t offset, const Payload& data, bool fua) {
  Put(offset, data.ToString(), fua);
  return absl::OkStatus();
}

absl::Status SimStorage::WriteZeroes(uint64_t offset, uint64_t length,
                                     bool may_trim, bool fua) {
  Put(offset, std::string(length, '\0'), fua);
  return absl::OkStatus();
}

absl::Status SimStorage::Trim(uint64_t offset, uint64_t length, bool fua) {
  // As a punched hole: the range reads as zeroes.
  Put(offset, std::string(length, '\0'), fua);
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> SimStorage::Grow(uint64_t size) {
  if (size > durable_.size()) durable_.resize(size, '\0');
  return durable_.size();
}

absl::Status SimStorage::Flush() {
  for (auto& [index, versions] : cache_) {
    durable_.replace(index * block_bytes_, block_bytes_, versions.back());
  }
  cache_.clear();
  ++flushes_;
  return absl::OkStatus();
}

void SimStorage::WriteBackOne(Rng& rng) {
  if (cache_.empty()) return;
  auto it = cache_.begin();
  std::advance(it, static_cast<long>(rng.Below(cache_.size())));
  durable_.replace(it->first * block_bytes_, block_bytes_, it->second.back());
  cache_.erase(it);
}

void SimStorage::PowerCut(Rng& rng, bool lose_all) {
  for (auto& [index, versions] : cache_) {
    // Lost (half the time), kept whole, or kept up to some version.
    size_t keep = 0;
    const uint64_t roll = lose_all ? 0 : rng.Below(4);
    if (roll == 2) {
      keep = versions.size();
    } else if (roll == 3) {
      keep = static_cast<size_t>(rng.Below(versions.size() + 1));
    }
    if (keep > 0) {
      durable_.replace(index * block_bytes_, block_bytes_, versions[keep - 1]);
    }
  }
  cache_.clear();
}

// --- SimExporter ------------------------------------------------------------

SimExporter::SimExporter(World* world, std::string name, std::string state_path,
                         uint64_t size, uint32_t block_bytes)
    : world_(world),
      name_(std::move(name)),
      state_path_(std::move(state_path)),
      storage_(size, block_bytes) {}

SimExporter::~SimExporter() { Stop(Death::kProcess); }

void SimExporter::Start() {
  // As the boot id: new after a power cut, kept by a process restart.
  if (instance_ == 0 || lost_power_) instance_ = world_->rng().Next() | 1;
  lost_power_ = false;
  absl::StatusOr<std::unique_ptr<MetadataStore>> metadata =
      MetadataStore::Open(state_path_);
  if (!metadata.ok()) {
    world_->Trace(
        absl::StrCat(name_, ": cannot start: ", metadata.status().ToString()));
    return;
  }
  metadata_ = *std::move(metadata);
  ExporterOptions options;
  options.block_size = storage_.block_bytes();
  options.max_transfer = 8192;
  options.io_threads = 0;
  options.inline_io = false;
  options.identity = name_;
  options.metadata = metadata_.get();
  options.instance = instance_;
  service_ = std::make_unique<ExporterService>(&storage_, options);
  if (absl::Status s = service_->Init(); !s.ok()) {
    world_->Trace(absl::StrCat(name_, ": cannot start: ", s.ToString()));
    service_.reset();
  }
}

void SimExporter::Stop(Death death) {
  service_.reset();
  metadata_.reset();
  received_.clear();
  for (const std::weak_ptr<SimStream>& weak : streams_) {
    if (std::shared_ptr<SimStream> stream = weak.lock()) {
      stream->broken = true;
      stream->requests.clear();
      stream->replies.clear();
    }
  }
  streams_.clear();
  if (death != Death::kProcess) {
    storage_.PowerCut(world_->rng(), death == Death::kPowerCutLosingAll);
    lost_power_ = true;
  }
}

absl::StatusOr<v1::NegotiateReply> SimExporter::Negotiate() {
  if (!up()) return absl::UnavailableError("connection refused");
  v1::NegotiateReply reply;
  *reply.mutable_geometry() = service_->geometry();
  *reply.mutable_metadata() = metadata_->Get();
  reply.set_instance(service_->instance());
  return reply;
}

absl::StatusOr<v1::ReplicaMetadata> SimExporter::Claim(
    const v1::ClaimRequest& request) {
  if (!up()) return absl::UnavailableError("connection refused");
  return service_->ClaimEpoch(request);
}

absl::StatusOr<uint64_t> SimExporter::Grow(const v1::GrowRequest& request) {
  if (!up()) return absl::UnavailableError("connection refused");
  return service_->GrowExport(request);
}

absl::StatusOr<std::shared_ptr<SimStream>> SimExporter::OpenStream(
    uint64_t epoch) {
  if (!up()) return absl::UnavailableError("connection refused");
  auto stream = std::make_shared<SimStream>();
  stream->id = world_->NextId();
  stream->exporter = this;
  stream->grant = service_->Grant(/*read_only=*/false, epoch, Peer());
  streams_.push_back(stream);
  return stream;
}

void SimExporter::Receive(const std::shared_ptr<SimStream>& stream,
                          SimStream::Request request) {
  if (!up()) return;
  absl::Status status =
      service_->Check(stream->grant, request.request, request.data.size());
  if (!status.ok() || request.request.op() == v1::OP_PING) {
    stream->replies.emplace_back(ErrorReply(request.request.id(), status),
                                 Payload());
    return;
  }
  received_.push_back(Received{stream, std::move(request)});
}

void SimExporter::Execute(size_t index) {
  Received received = std::move(received_[index]);
  received_.erase(received_.begin() + static_cast<long>(index));
  Payload reply_data;
  v1::Reply reply =
      service_->Run(received.stream->grant, received.request.request,
                    received.request.data, &reply_data);
  const v1::Request& request = received.request.request;
  world_->Trace(absl::StrCat(
      name_, ": executed ", v1::Op_Name(request.op()), " ", request.offset(),
      "+", request.length(),
      request.flags() & v1::REQUEST_FLAG_FUA ? " fua" : "", " of stream ",
      received.stream->id,
      reply.status() == 0 ? "" : absl::StrCat(": ", reply.message())));
  if (!received.stream->broken) {
    received.stream->replies.emplace_back(std::move(reply),
                                          std::move(reply_data));
  }
}

// --- SimReplica -------------------------------------------------------------

SimReplica::SimReplica(World* world, SimExporter* exporter, SimLink* link,
                       const SimReplicaOptions& options)
    : world_(world),
      exporter_(exporter),
      link_(link),
      options_(options),
      backoff_(options.min_backoff) {}

SimReplica::~SimReplica() = default;

void SimReplica::Start(std::function<void()> on_change, Admission admission) {
  on_change_ = std::move(on_change);
  admission_ = std::move(admission);
  started_ = true;
  next_attempt_ = world_->now();
}

void SimReplica::Stop() { stopped_ = true; }

void SimReplica::Close() {
  Stop();
  if (dead_ || closed_) return;
  closed_ = true;
  if (stream_ != nullptr) {
    stream_->broken = true;
    stream_->requests.clear();
    stream_.reset();
  }
  std::deque<Txn> left;
  left.swap(in_flight_);
  for (Txn& txn : backlog_) left.push_back(std::move(txn));
  backlog_.clear();
  for (Txn& txn : left) {
    Fail(txn, absl::StatusCode::kUnavailable, "session closed");
  }
}

void SimReplica::Fail(Txn& txn, absl::StatusCode code, const std::string& why) {
  TransactionDone done = std::move(txn.done);
  done(ErrorReply(txn.caller_id, absl::Status(code, why)), Payload());
}

void SimReplica::Submit(v1::Request request, TransactionDone done,
                        Payload data) {
  if (dead_) return;
  if (!request.data().empty()) data = TakeData(&request);
  Txn txn;
  txn.caller_id = request.id();
  txn.request = std::move(request);
  txn.data = std::move(data);
  txn.done = std::move(done);
  txn.submitted = world_->now();
  if (closed_) {
    Fail(txn, absl::StatusCode::kUnavailable, "session closed");
    return;
  }
  if (connected() && backlog_.empty()) {
    Send(std::move(txn));
  } else {
    backlog_.push_back(std::move(txn));
  }
}

void SimReplica::Send(Txn txn) {
  if (txn.sends > 0) ++counters_.resends;
  ++txn.sends;
  txn.sent = world_->now();
  txn.request.set_id(next_wire_id_++);
  stream_->requests.push_back(SimStream::Request{txn.request, txn.data});
  in_flight_.push_back(std::move(txn));
}

absl::StatusOr<v1::ReplicaMetadata> SimReplica::Claim(
    const v1::ClaimRequest& request) {
  if (dead_ || link_->cut) return absl::UnavailableError("unreachable");
  return exporter_->Claim(request);
}

absl::StatusOr<uint64_t> SimReplica::Grow(const v1::GrowRequest& request) {
  if (dead_ || link_->cut) return absl::UnavailableError("unreachable");
  return exporter_->Grow(request);
}

bool SimReplica::connected() const {
  return !dead_ && stream_ != nullptr && !stream_->broken;
}

v1::ReplicaStatus SimReplica::Status() const {
  v1::ReplicaStatus status;
  status.set_address(address());
  status.set_state(connected()           ? "connected"
                   : last_error_.empty() ? "connecting"
                                         : "failed");
  status.set_last_error(last_error_);
  status.set_in_flight(pending());
  status.set_resends(counters_.resends);
  status.set_timeouts(counters_.timeouts);
  status.set_reconnects(counters_.reconnects);
  return status;
}

bool SimReplica::WantsConnect() const {
  return started_ && !stopped_ && !dead_ && stream_ == nullptr &&
         world_->now() >= next_attempt_;
}

void SimReplica::Connect() {
  absl::Status status;
  uint64_t epoch = 0;
  absl::StatusOr<v1::NegotiateReply> reply =
      link_->cut ? absl::UnavailableError("unreachable")
                 : exporter_->Negotiate();
  if (!reply.ok()) {
    status = reply.status();
  } else if (admission_) {
    absl::StatusOr<uint64_t> admitted = admission_(*reply);
    if (admitted.ok()) {
      epoch = *admitted;
    } else {
      status = admitted.status();
    }
  }
  absl::StatusOr<std::shared_ptr<SimStream>> stream;
  if (status.ok()) {
    stream = link_->cut ? absl::UnavailableError("unreachable")
                        : exporter_->OpenStream(epoch);
    status = stream.status();
  }
  if (dead_ || stopped_) return;
  if (!status.ok()) {
    last_error_ = status.ToString();
    world_->Trace(absl::StrCat("gateway: ", address(),
                               ": connect failed: ", last_error_));
    const double jitter =
        0.5 + 0.5 * static_cast<double>(world_->rng().Below(1000)) / 1000.0;
    next_attempt_ = world_->now() + backoff_ * jitter;
    backoff_ = std::min(backoff_ * 2, options_.max_backoff);
    return;
  }
  stream_ = *std::move(stream);
  if (ever_connected_) ++counters_.reconnects;
  ever_connected_ = true;
  backoff_ = options_.min_backoff;
  last_error_.clear();
  world_->Trace(absl::StrCat("gateway: ", address(), ": stream ", stream_->id,
                             " (epoch ", epoch, "), replaying ",
                             backlog_.size()));
  std::deque<Txn> replay;
  replay.swap(backlog_);
  for (Txn& txn : replay) {
    if (txn.sends > options_.max_resends) {
      Fail(txn, absl::StatusCode::kDeadlineExceeded, "no reply after resends");
    } else if (connected()) {
      Send(std::move(txn));
    } else {
      backlog_.push_back(std::move(txn));
    }
  }
  if (on_change_) on_change_();
}

bool SimReplica::HasReply() const {
  return connected() && !stream_->replies.empty();
}

void SimReplica::DeliverReply() {
  v1::Reply reply = std::move(stream_->replies.front().first);
  Payload data = std::move(stream_->replies.front().second);
  stream_->replies.pop_front();
  auto it =
      std::find_if(in_flight_.begin(), in_flight_.end(),
                   [&](const Txn& t) { return t.request.id() == reply.id(); });
  if (it == in_flight_.end()) return;  // late or unknown: dropped
  Txn txn = std::move(*it);
  in_flight_.erase(it);
  reply.set_id(txn.caller_id);
  if (!data.empty() && link_->corrupt > 0 &&
      world_->rng().Chance(link_->corrupt)) {
    std::string damaged = data.ToString();
    damaged[world_->rng().Below(damaged.size())] ^= 0x20;
    data = Payload(std::move(damaged));
    world_->Trace(absl::StrCat("link ", address(), ": damaged a reply's data"));
  }
  txn.done(std::move(reply), std::move(data));
}

void SimReplica::BreakStream(const std::string& why) {
  if (stream_ == nullptr) return;
  world_->Trace(absl::StrCat("gateway: ", address(), ": stream ", stream_->id,
                             " lost (", why, ")"));
  stream_->broken = true;
  stream_->requests.clear();
  stream_.reset();
  last_error_ = why;
  for (auto it = in_flight_.rbegin(); it != in_flight_.rend(); ++it) {
    backlog_.push_front(std::move(*it));
  }
  in_flight_.clear();
  next_attempt_ = world_->now();
  if (!stopped_ && on_change_) on_change_();
}

void SimReplica::Tick() {
  if (dead_ || stopped_) return;
  const absl::Time now = world_->now();
  if (connected() && !in_flight_.empty() &&
      now - in_flight_.front().sent > options_.request_timeout) {
    ++counters_.timeouts;
    BreakStream("no reply within the request timeout");
  }
  std::deque<Txn> keep;
  std::vector<Txn> expired;
  for (Txn& txn : backlog_) {
    if (txn.sends > options_.max_resends ||
        (stream_ == nullptr &&
         now - txn.submitted > options_.suspend_timeout)) {
      expired.push_back(std::move(txn));
    } else {
      keep.push_back(std::move(txn));
    }
  }
  backlog_.swap(keep);
  for (Txn& txn : expired) {
    Fail(txn, absl::StatusCode::kDeadlineExceeded,
         "no reply after resends, or no connection within the suspend time");
  }
}

absl::Time SimReplica::next_tick() const {
  if (dead_ || stopped_) return absl::InfiniteFuture();
  absl::Time next = absl::InfiniteFuture();
  if (connected() && !in_flight_.empty()) {
    next = in_flight_.front().sent + options_.request_timeout +
           absl::Nanoseconds(1);
  }
  if (stream_ == nullptr) {
    for (const Txn& txn : backlog_) {
      next = std::min(next, txn.submitted + options_.suspend_timeout +
                                absl::Nanoseconds(1));
    }
    if (started_) next = std::min(next, next_attempt_);
  }
  return next;
}

void SimReplica::Abandon() {
  dead_ = true;
  if (stream_ != nullptr) {
    stream_->broken = true;
    stream_->requests.clear();
    stream_.reset();
  }
  backlog_.clear();
  in_flight_.clear();
}

// --- SimStateStore ----------------------------------------------------------

absl::StatusOr<v1::VolumeState> SimStateStore::Load() {
  if (!disk_->has_state) return absl::NotFoundError("no state saved yet");
  return disk_->state;
}

void SimStateStore::Write(v1::VolumeState state,
                          std::function<void(const absl::Status&)> then) {
  if (crashed_) return;
  next_ = std::move(state);
  pending_ = true;
  if (then) waiting_.push_back(std::move(then));
}

void SimStateStore::Complete(bool fail) {
  if (!pending_ || crashed_) return;
  pending_ = false;
  std::vector<std::function<void(const absl::Status&)>> waiting;
  waiting.swap(waiting_);
  absl::Status status;
  if (fail) {
    status = absl::InternalError("simulated fsync failure of the state file");
  } else {
    disk_->state = next_;
    disk_->has_state = true;
    ++disk_->saves;
  }
  world_->Trace(absl::StrCat("state: save ", fail ? "failed" : "durable"));
  for (auto& then : waiting) then(status);
}

void SimStateStore::Crash(Rng& rng, std::optional<bool> survives) {
  crashed_ = true;
  if (pending_ && survives.value_or(rng.Chance(0.5))) {
    disk_->state = next_;
    disk_->has_state = true;
    ++disk_->saves;
    world_->Trace("state: the save in progress at the crash became durable");
  }
  pending_ = false;
  waiting_.clear();
}

}  // namespace dst::sim
