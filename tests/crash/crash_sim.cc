// The seeded crash simulation: see crash_sim.h.
#include "tests/crash/crash_sim.h"

#include <stdlib.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

#include "services/common/base/log.h"
#include "services/common/protocol/request_validation.h"

namespace dst::sim {

namespace {

constexpr uint64_t kGarbage = ~uint64_t{0};
constexpr uint64_t kMaxBlocksPerRequest = 16;  // max_transfer 8 KiB

// Block `block` as a write tagged `tag` writes it: the tag, the block's
// own index (a misplaced block is garbage), the tag again to the end.
std::string BlockData(uint64_t tag, uint64_t block) {
  std::string data(Simulation::kBlock, '\0');
  for (size_t word = 0; word < Simulation::kBlock / 8; ++word) {
    const uint64_t value = word == 1 ? block : tag;
    std::memcpy(data.data() + 8 * word, &value, 8);
  }
  return data;
}

// The tag of what a block holds: 0 for zeroes, kGarbage when it is no
// block any write wrote there.
uint64_t Decode(const char* bytes, uint64_t block) {
  uint64_t words[Simulation::kBlock / 8];
  std::memcpy(words, bytes, sizeof(words));
  bool zero = true;
  for (uint64_t word : words) zero &= word == 0;
  if (zero) return 0;
  const uint64_t tag = words[0];
  if (tag == 0 || words[1] != block) return kGarbage;
  for (size_t i = 2; i < Simulation::kBlock / 8; ++i) {
    if (words[i] != tag) return kGarbage;
  }
  return tag;
}

std::string TagName(uint64_t tag) {
  return tag == 0          ? "zeroes"
         : tag == kGarbage ? "garbage"
                           : absl::StrCat("w", tag);
}

}  // namespace

SimOptions OptionsForSeed(uint64_t seed) {
  SimOptions options;
  options.replicas = seed % 3 == 2 ? 3 : 2;
  static constexpr uint32_t kKeepActive[] = {0, 3, 1024};
  options.activity_log_regions = kKeepActive[(seed / 3) % 3];
  return options;
}

// --- Model ------------------------------------------------------------------

void Model::Issue(uint64_t op, uint64_t first, uint64_t count, uint64_t tag) {
  for (uint64_t b = first; b < first + count; ++b) {
    Block& block = state_[b];
    block.versions.push_back(Version{tag, op, Version::kPending, 0});
    block.last_read.reset();
  }
}

void Model::Acked(uint64_t op, uint64_t first, uint64_t count, bool fua) {
  ++acks_;
  for (uint64_t b = first; b < first + count; ++b) {
    Block& block = state_[b];
    for (size_t i = block.versions.size(); i-- > 1;) {
      if (block.versions[i].op != op) continue;
      block.versions[i].state = Version::kAcked;
      block.versions[i].ack = acks_;
      if (fua) Floor(block, i);
      break;
    }
  }
}

void Model::Failed(uint64_t op, uint64_t first, uint64_t count) {
  for (uint64_t b = first; b < first + count; ++b) {
    Block& block = state_[b];
    for (size_t i = block.versions.size(); i-- > 1;) {
      if (block.versions[i].op == op) {
        block.versions[i].state = Version::kFailed;
        break;
      }
    }
  }
}

void Model::Flushed(uint64_t mark) {
  for (auto& [b, block] : state_) {
    for (size_t i = block.versions.size(); i-- > 1;) {
      const Version& v = block.versions[i];
      if (v.state != Version::kAcked || v.ack > mark) continue;
      // A flush makes durable what the block holds, which after a power
      // cut may be older than what was acknowledged.
      if (i >= block.widened) Floor(block, i);
      break;
    }
  }
}

void Model::Floor(Block& block, size_t index) {
  block.versions.erase(block.versions.begin(),
                       block.versions.begin() + static_cast<long>(index));
  block.widened = block.widened > index ? block.widened - index : 0;
}

void Model::Widen() {
  for (auto& [b, block] : state_) {
    block.widened = block.versions.size();
    block.last_read.reset();
  }
}

std::vector<uint64_t> Model::Allowed(const Block& block) const {
  // The newest acknowledged version (the floor when none is newer), and
  // whatever was sent after it: failed or unanswered, it may have landed.
  // Before it only when a power cut may have lost it.
  size_t acked = 0;
  for (size_t i = block.versions.size(); i-- > 1;) {
    if (block.versions[i].state == Version::kAcked) {
      acked = i;
      break;
    }
  }
  const size_t from = acked < block.widened ? 0 : acked;
  std::vector<uint64_t> allowed;
  for (size_t i = from; i < block.versions.size(); ++i) {
    allowed.push_back(block.versions[i].tag);
  }
  return allowed;
}

std::string Model::Check(uint64_t b, uint64_t tag, bool remember) {
  static const Block kNeverWritten;
  auto it = state_.find(b);
  const Block& block = it == state_.end() ? kNeverWritten : it->second;
  const std::vector<uint64_t> allowed = Allowed(block);
  if (tag == kGarbage ||
      std::find(allowed.begin(), allowed.end(), tag) == allowed.end()) {
    std::vector<std::string> names;
    names.reserve(allowed.size());
    for (uint64_t a : allowed) names.push_back(TagName(a));
    return absl::StrCat("block ", b, " holds ", TagName(tag),
                        "; it may hold only ", absl::StrJoin(names, " or "));
  }
  if (block.last_read.has_value() && *block.last_read != tag) {
    return absl::StrCat("block ", b, " holds ", TagName(tag),
                        " after a read of ", TagName(*block.last_read),
                        " with no write in between (a stale read)");
  }
  if (remember) state_[b].last_read = tag;
  return "";
}

std::string Model::CheckDurable(uint64_t b, uint64_t tag) const {
  auto it = state_.find(b);
  if (it == state_.end()) {
    return tag == 0 ? "" : absl::StrCat("block ", b, " was never written");
  }
  for (const Version& v : it->second.versions) {
    if (v.tag == tag) return "";
  }
  return absl::StrCat("a power cut would leave block ", b, " with ",
                      TagName(tag), ", older than ",
                      TagName(it->second.versions[0].tag),
                      " which a flush or FUA made durable");
}

// --- Simulation: setup ------------------------------------------------------

Simulation::Simulation(uint64_t seed, const SimOptions& options)
    : seed_(seed), options_(options), world_(seed), model_(kMaxBlocks) {
  world_.verbose = options.verbose;
  SetLogLevel(LogLevel::kInfo);
  SetLogSink([this](LogLevel, absl::string_view line) {
    world_.Trace(std::string(line));
  });
  std::string pattern =
      (std::filesystem::temp_directory_path() / "dst-crash-XXXXXX").string();
  dir_ = ::mkdtemp(pattern.data()) != nullptr ? pattern : "/tmp";
  config_.set_name("v");
  config_.set_region_bytes(kRegion);
  config_.set_lag_limit_ms(options.lag_limit_ms);
  config_.set_activity_log_regions(options.activity_log_regions);
  config_.set_lease_timeout_ms(1000);
  config_.set_checksum("crc32c");
  links_.resize(static_cast<size_t>(options.replicas));
  unrecovered_.resize(static_cast<size_t>(options.replicas), false);
  for (int i = 0; i < options.replicas; ++i) {
    const std::string name = absl::StrCat("e", i);
    exporters_.push_back(std::make_unique<SimExporter>(
        &world_, name, absl::StrCat(dir_, "/", name, ".state"),
        kBlocks * kBlock, kBlock));
    exporters_.back()->Start();
    config_.add_replicas()->set_address(name);
  }
  queue_depth_ = 1 + static_cast<int>(world_.rng().Below(6));
  corrupt_ = world_.rng().Chance(0.3) ? 0.02 : 0;
  StartGateway();
}

Simulation::~Simulation() {
  CrashGateway();
  exporters_.clear();
  SetLogSink(nullptr);
  std::error_code ignored;
  if (dir_ != "/tmp") std::filesystem::remove_all(dir_, ignored);
}

void Simulation::Fail(const std::string& why) {
  if (!failure_.empty()) return;
  failure_ = why;
  world_.Trace(absl::StrCat("FAILURE: ", why));
}

void Simulation::At(absl::Duration delay, std::string what,
                    std::function<void()> fn) {
  events_.push_back(
      Event{world_.now() + delay, std::move(what), std::move(fn)});
}

// --- the gateway ------------------------------------------------------------

void Simulation::StartGateway() {
  if (gateway_ != nullptr) return;
  gateway_ = std::make_unique<Gateway>();
  Gateway* g = gateway_.get();
  g->incarnation = ++incarnations_;
  if (g->incarnation > 1) ++stats_.gateway_restarts;
  g->registry = std::make_shared<prometheus::Registry>();
  VolumeOptions options;
  options.gateway_id = "gw";
  options.state_dir = "sim";
  options.open_state_store =
      [this,
       g](const std::string&) -> absl::StatusOr<std::unique_ptr<StateStore>> {
    auto store = std::make_unique<SimStateStore>(&world_, &state_disk_);
    g->store = store.get();
    return std::unique_ptr<StateStore>(std::move(store));
  };
  options.schedulers = [this, g](const std::string& name) {
    auto scheduler = std::make_unique<SimScheduler>(&world_, name);
    g->schedulers.push_back(scheduler.get());
    return std::unique_ptr<Scheduler>(std::move(scheduler));
  };
  SimReplicaOptions replica_options;
  std::vector<std::unique_ptr<ReplicaHandle>> replicas;
  for (size_t i = 0; i < exporters_.size(); ++i) {
    auto replica = std::make_unique<SimReplica>(&world_, exporters_[i].get(),
                                                &links_[i], replica_options);
    g->replicas.push_back(replica.get());
    replicas.push_back(std::move(replica));
  }
  g->volume = std::make_unique<Volume>(config_, options, std::move(replicas),
                                       *g->registry);
  world_.Trace(
      absl::StrCat("gateway: starts (incarnation ", g->incarnation, ")"));
  if (absl::Status s = g->volume->Init(); !s.ok()) {
    Fail(absl::StrCat("the gateway cannot start: ", s.ToString()));
    return;
  }
  g->volume->Start();
}

void Simulation::CrashGateway(std::optional<bool> save_survives,
                              bool client_dies) {
  if (gateway_ == nullptr) return;
  world_.Trace(client_dies ? "gateway: CRASH, and the client with it"
                           : "gateway: CRASH");
  if (client_dies) {
    // What it had sent may or may not land, but never answers.
    for (const auto& [id, op] : pending_) {
      if (IsModifying(op.op)) model_.Failed(op.id, op.first, op.count);
      succeeded_[id] = false;
    }
    pending_.clear();
  }
  ++stats_.gateway_crashes;
  resizing_ = false;  // never answered
  for (SimReplica* replica : gateway_->replicas) replica->Abandon();
  if (gateway_->store != nullptr) {
    gateway_->store->Crash(world_.rng(), save_survives);
  }
  for (SimScheduler* scheduler : gateway_->schedulers) scheduler->Shutdown();
  gateway_->volume.reset();
  gateway_.reset();
}

void Simulation::StopGateway() {
  if (gateway_ == nullptr) return;
  world_.Trace("gateway: stops (SIGTERM)");
  Gateway* g = gateway_.get();
  // As Volume::Save at exit: the clean stop's flush, for a bounded time.
  auto flushed = std::make_shared<bool>(false);
  g->volume->FlushForStop([flushed] { *flushed = true; });
  RunUntil([flushed] { return *flushed; }, Volume::kStopFlushLimit);
  // Events ran meanwhile: a fault may have crashed or stopped it already.
  if (gateway_.get() != g) return;
  resizing_ = false;
  g->volume->Close();
  g->volume->SaveThen(nullptr);
  while (g->store != nullptr && g->store->pending()) g->store->Complete(false);
  g->volume.reset();
  gateway_.reset();
}

// --- faults -----------------------------------------------------------------

void Simulation::CutLink(int i) {
  links_[static_cast<size_t>(i)].cut = true;
  world_.Trace(absl::StrCat("link e", i, ": cut"));
  if (gateway_ != nullptr) {
    SimReplica* replica = gateway_->replicas[static_cast<size_t>(i)];
    if (replica->stream() != nullptr) {
      replica->stream()->broken = true;
      replica->stream()->requests.clear();
      replica->stream()->replies.clear();
    }
  }
}

void Simulation::HealLink(int i) {
  links_[static_cast<size_t>(i)].cut = false;
  world_.Trace(absl::StrCat("link e", i, ": healed"));
}

void Simulation::KillExporter(int i, bool power) {
  SimExporter& e = exporter(i);
  if (!e.up()) return;
  world_.Trace(absl::StrCat(e.name(), power ? ": POWER CUT" : ": killed"));
  e.Stop(power ? SimExporter::Death::kPowerCutLosingAll
               : SimExporter::Death::kProcess);
}

bool Simulation::Connected(int i) {
  return gateway_ != nullptr &&
         gateway_->replicas[static_cast<size_t>(i)]->connected();
}

uint64_t Simulation::Tag(int i, uint64_t block) {
  return Decode(exporter(i).storage().Current(block).data(), block);
}

uint64_t Simulation::DurableTag(int i, uint64_t block) {
  return Decode(exporter(i).storage().Durable(block).data(), block);
}

std::string Simulation::Sync(int i) {
  Volume* v = volume();
  if (v == nullptr) return "";
  const v1::VolumeStatus status = v->Status();
  return i < status.replicas_size() ? status.replicas(i).sync() : "";
}

void Simulation::StartExporter(int i) {
  SimExporter& e = exporter(i);
  if (e.up()) return;
  e.held = false;
  e.Start();
  world_.Trace(absl::StrCat(e.name(), ": started"));
}

void Simulation::PowerCut(int i) {
  // The client may lose what was acknowledged and not durable only when no
  // other replica in sync was there to take it: none is in sync, or every
  // one that is is unresponsive (stalled, cut off), so that the lag limit
  // may leave it behind the one that lost power (the gateway cannot tell a
  // dead replica from a slow one within the lag limit).
  int others = 0;
  if (Volume* v = volume()) {
    const v1::VolumeStatus status = v->Status();
    for (int j = 0; j < status.replicas_size(); ++j) {
      const size_t k = static_cast<size_t>(j);
      if (j != i && status.replicas(j).sync() == "in_sync" &&
          exporters_[k]->up() && !exporters_[k]->held && !links_[k].cut &&
          !unrecovered_[k]) {
        ++others;
      }
    }
  }
  if (others == 0) {
    world_.Trace(absl::StrCat("e", i,
                              " is the only replica in sync and responsive: "
                              "what it did not flush may be lost"));
    model_.Widen();
  }
  ++stats_.power_cuts;
  unrecovered_[static_cast<size_t>(i)] = true;
  world_.Trace(absl::StrCat("e", i, ": POWER CUT"));
  exporter(i).Stop(SimExporter::Death::kPowerCut);
}

// --- the client -------------------------------------------------------------

void Simulation::OpenClient() {
  Volume* v = volume();
  absl::StatusOr<v1::Geometry> geometry = v->Open(false, "lease-1", "client");
  if (!geometry.ok()) {
    world_.Trace(absl::StrCat("client: open: ", geometry.status().ToString()));
    gateway_->next_open = world_.now() + absl::Milliseconds(50);
    return;
  }
  gateway_->opened = true;
  world_.Trace(
      absl::StrCat("client: opened, ", geometry->size() / kBlock, " blocks"));
  if (geometry->size() < client_blocks_ * kBlock) {
    Fail(absl::StrCat("the volume shrank: ", geometry->size() / kBlock,
                      " blocks, after a resize to ", client_blocks_,
                      " succeeded"));
  }
  client_blocks_ = std::max(client_blocks_, geometry->size() / kBlock);
  // As the plugin does: what the last gateway did not answer goes again.
  std::vector<uint64_t> again;
  for (const auto& [id, op] : pending_) {
    if (op.incarnation != gateway_->incarnation) again.push_back(id);
  }
  for (uint64_t id : again) {
    auto it = pending_.find(id);
    if (it != pending_.end()) Send(it->second);
  }
}

bool Simulation::Overlaps(uint64_t first, uint64_t count) const {
  for (const auto& [id, op] : pending_) {
    if (op.op == v1::OP_FLUSH) continue;
    if (first < op.first + op.count && op.first < first + count) return true;
  }
  return false;
}

void Simulation::SubmitRandom() {
  if (pending_.size() >= static_cast<size_t>(queue_depth_)) return;
  Rng& rng = world_.rng();
  Op op;
  const uint64_t roll = rng.Below(100);
  op.op = roll < 50   ? v1::OP_WRITE
          : roll < 66 ? v1::OP_READ
          : roll < 80 ? v1::OP_FLUSH
          : roll < 88 ? v1::OP_WRITE_ZEROES
          : roll < 94 ? v1::OP_TRIM
                      : v1::OP_WRITE;
  op.fua = op.op != v1::OP_READ && op.op != v1::OP_FLUSH && rng.Chance(0.15);
  if (op.op != v1::OP_FLUSH) {
    op.first = rng.Below(client_blocks_);
    const uint64_t longest =
        std::min(kMaxBlocksPerRequest, client_blocks_ - op.first);
    op.count = 1 + rng.Below(rng.Chance(0.7) ? std::min<uint64_t>(2, longest)
                                             : longest);
    if (Overlaps(op.first, op.count)) return;
  }
  Submit(op);
}

uint64_t Simulation::Submit(Op op) {
  op.id = next_op_++;
  if (op.op == v1::OP_WRITE) op.tag = next_tag_++;
  tags_[op.id] = op.tag;
  if (IsModifying(op.op)) {
    model_.Issue(op.id, op.first, op.count, op.tag);
    ++stats_.writes;
  } else if (op.op == v1::OP_FLUSH) {
    op.flush_mark = model_.FlushMark();
    ++stats_.flushes;
  } else {
    ++stats_.reads;
  }
  pending_[op.id] = op;
  if (gateway_ != nullptr && gateway_->opened) Send(op);
  return op.id;
}

void Simulation::Send(const Op& op) {
  pending_[op.id].incarnation = gateway_->incarnation;
  v1::Request request;
  request.set_id(op.id);
  request.set_op(op.op);
  request.set_offset(op.first * kBlock);
  request.set_length(static_cast<uint32_t>(op.count * kBlock));
  if (op.fua) request.set_flags(v1::REQUEST_FLAG_FUA);
  std::string data;
  if (op.op == v1::OP_WRITE) {
    for (uint64_t b = op.first; b < op.first + op.count; ++b) {
      data += BlockData(op.tag, b);
    }
  }
  world_.Trace(absl::StrCat(
      "client: ", v1::Op_Name(op.op), " #", op.id, " ", op.first, "+", op.count,
      op.tag != 0 ? absl::StrCat(" w", op.tag) : "", op.fua ? " fua" : ""));
  const int incarnation = gateway_->incarnation;
  gateway_->volume->Submit(
      std::move(request), Payload(std::move(data)), /*read_only=*/false,
      [this, id = op.id, incarnation](v1::Reply&& reply, Payload&& data) {
        OnReply(id, incarnation, std::move(reply), std::move(data));
      });
}

void Simulation::OnReply(uint64_t id, int incarnation, v1::Reply&& reply,
                         Payload&& data) {
  auto it = pending_.find(id);
  if (it == pending_.end() || it->second.incarnation != incarnation) return;
  const Op op = it->second;
  pending_.erase(it);
  const bool ok = reply.status() == 0;
  succeeded_[id] = ok;
  world_.Trace(
      absl::StrCat("client: #", id, " ",
                   ok ? "done" : absl::StrCat("failed: ", reply.message())));
  if (IsModifying(op.op)) {
    if (ok) {
      model_.Acked(op.id, op.first, op.count, op.fua);
    } else {
      model_.Failed(op.id, op.first, op.count);
    }
  } else if (op.op == v1::OP_FLUSH) {
    if (ok) model_.Flushed(op.flush_mark);
  } else if (ok) {
    const std::string bytes = data.ToString();
    if (bytes.size() != op.count * kBlock) {
      Fail(absl::StrCat("read #", id, " returned ", bytes.size(), " bytes"));
      return;
    }
    for (uint64_t b = op.first; b < op.first + op.count; ++b) {
      const uint64_t tag = Decode(bytes.data() + (b - op.first) * kBlock, b);
      std::string error = model_.Check(b, tag, /*remember=*/true);
      if (!error.empty()) Fail(absl::StrCat("read #", id, ": ", error));
    }
  }
}

uint64_t Simulation::Write(uint64_t block, uint64_t count, bool fua) {
  Op op;
  op.op = v1::OP_WRITE;
  op.first = block;
  op.count = count;
  op.fua = fua;
  return Submit(op);
}

uint64_t Simulation::Flush() {
  Op op;
  op.op = v1::OP_FLUSH;
  return Submit(op);
}

std::shared_ptr<std::optional<absl::Status>> Simulation::Resize(
    uint64_t blocks) {
  auto outcome = std::make_shared<std::optional<absl::Status>>();
  Volume* v = volume();
  if (v == nullptr) {
    *outcome = absl::UnavailableError("no gateway");
    return outcome;
  }
  const int incarnation = gateway_->incarnation;
  resizing_ = true;
  world_.Trace(absl::StrCat("client: resize to ", blocks, " blocks"));
  v->ResizeThen(blocks * kBlock, [this, outcome, incarnation,
                                  blocks](const absl::Status& status) {
    *outcome = status;
    if (gateway_ == nullptr || gateway_->incarnation != incarnation) return;
    resizing_ = false;
    world_.Trace(absl::StrCat("client: resize to ", blocks,
                              " blocks: ", status.ToString()));
    if (status.ok()) {
      ++stats_.resizes;
      client_blocks_ = std::max(client_blocks_, blocks);
    }
  });
  return outcome;
}

uint64_t Simulation::VolumeBlocks() {
  Volume* v = volume();
  return v == nullptr ? 0 : v->Status().geometry().size() / kBlock;
}

uint64_t Simulation::Read(uint64_t block, uint64_t count) {
  Op op;
  op.op = v1::OP_READ;
  op.first = block;
  op.count = count;
  return Submit(op);
}

// --- steps ------------------------------------------------------------------

void Simulation::Collect(bool faults, bool client,
                         std::vector<Action>& actions) {
  Gateway* g = gateway_.get();
  const absl::Time now = world_.now();
  for (size_t i = 0; i < events_.size(); ++i) {
    if (events_[i].when <= now) {
      actions.push_back({10, "event", static_cast<int>(i)});
    }
  }
  if (g != nullptr) {
    for (size_t i = 0; i < g->schedulers.size(); ++i) {
      if (g->schedulers[i]->next_due() <= now) {
        actions.push_back({10, "timer", static_cast<int>(i)});
      }
    }
    for (size_t i = 0; i < g->replicas.size(); ++i) {
      SimReplica* r = g->replicas[i];
      const int index = static_cast<int>(i);
      if (r->stream() != nullptr && r->stream()->broken) {
        actions.push_back({20, "notice lost stream", index});
      } else if (r->stream() != nullptr) {
        if (!r->stream()->requests.empty()) {
          actions.push_back({10, "deliver request", index});
        }
        if (r->HasReply()) actions.push_back({10, "deliver reply", index});
      }
      if (r->WantsConnect()) actions.push_back({10, "connect", index});
    }
    if (g->store != nullptr && g->store->pending() && !hold_saves) {
      actions.push_back({5, "save completes", 0});
      if (faults) actions.push_back({0.15, "save fails", 0});
    }
    if (!g->opened) {
      if (now >= g->next_open) actions.push_back({5, "client opens", 0});
    } else if (client) {
      actions.push_back({3, "client submits", 0});
      if (!resizing_ && client_blocks_ < kMaxBlocks) {
        actions.push_back({0.02, "client resizes", 0});
      }
    }
  }
  for (size_t i = 0; i < exporters_.size(); ++i) {
    SimExporter& e = *exporters_[i];
    const int index = static_cast<int>(i);
    if (e.up() && !e.held && e.received() > 0) {
      actions.push_back({10, "execute", index});
    }
    if (e.storage().cached()) actions.push_back({0.3, "write back", index});
  }
}

void Simulation::Perform(const Action& action) {
  const std::string what = action.what;
  const int i = action.index;
  Rng& rng = world_.rng();
  Gateway* g = gateway_.get();
  if (what == "event") {
    Event event = std::move(events_[static_cast<size_t>(i)]);
    events_.erase(events_.begin() + i);
    event.fn();
  } else if (what == "timer") {
    g->schedulers[static_cast<size_t>(i)]->RunNext();
  } else if (what == "notice lost stream") {
    g->replicas[static_cast<size_t>(i)]->BreakStream("stream ended");
  } else if (what == "deliver request") {
    std::shared_ptr<SimStream> stream =
        g->replicas[static_cast<size_t>(i)]->stream();
    SimStream::Request request = std::move(stream->requests.front());
    stream->requests.pop_front();
    stream->exporter->Receive(stream, std::move(request));
  } else if (what == "deliver reply") {
    g->replicas[static_cast<size_t>(i)]->DeliverReply();
  } else if (what == "connect") {
    g->replicas[static_cast<size_t>(i)]->Connect();
  } else if (what == "save completes") {
    g->store->Complete(false);
  } else if (what == "save fails") {
    ++stats_.failed_saves;
    g->store->Complete(true);
  } else if (what == "client opens") {
    OpenClient();
  } else if (what == "client submits") {
    SubmitRandom();
  } else if (what == "client resizes") {
    // Often not a whole number of regions: the region holding the old
    // end is partly new.
    Resize(std::min(kMaxBlocks, client_blocks_ + 1 + rng.Below(32)));
  } else if (what == "execute") {
    SimExporter& e = exporter(i);
    e.Execute(static_cast<size_t>(rng.Below(e.received())));
  } else if (what == "write back") {
    exporter(i).storage().WriteBackOne(rng);
  }
}

void Simulation::ScheduleFault(Fault fault) {
  // Exponential gaps: faults come at random moments of virtual time, each
  // kind at its own mean rate.
  static constexpr double kMeanSeconds[] = {
      /*kCutLink=*/1.5,    /*kStall=*/1.5,
      /*kKill=*/6,         /*kPowerCut=*/4,
      /*kCrashGateway=*/4, /*kStopGateway=*/12};
  const double u =
      (static_cast<double>(world_.rng().Below(1 << 20)) + 1) / (1 << 20);
  const double mean = kMeanSeconds[static_cast<int>(fault)];
  At(absl::Seconds(-mean * std::log(u)), "fault", [this, fault] {
    InjectFault(fault);
    ScheduleFault(fault);
  });
}

void Simulation::InjectFault(Fault fault) {
  Rng& rng = world_.rng();
  auto random_delay = [&rng](int64_t min_ms, int64_t max_ms) {
    return absl::Milliseconds(min_ms) +
           absl::Milliseconds(static_cast<int64_t>(
               rng.Below(static_cast<uint64_t>(max_ms - min_ms + 1))));
  };
  const int i = static_cast<int>(rng.Below(exporters_.size()));
  switch (fault) {
    case Fault::kCutLink:
      if (links_[static_cast<size_t>(i)].cut) return;
      ++stats_.link_cuts;
      CutLink(i);
      At(random_delay(10, 3000), "heal link", [this, i] { HealLink(i); });
      return;
    case Fault::kStall:
      if (!exporter(i).up() || exporter(i).held) return;
      ++stats_.stalls;
      exporter(i).held = true;
      world_.Trace(absl::StrCat("e", i, ": stalls"));
      At(random_delay(10, 1500), "release exporter", [this, i] {
        exporter(i).held = false;
        world_.Trace(absl::StrCat("e", i, ": resumes"));
      });
      return;
    case Fault::kKill:
      if (!exporter(i).up()) return;
      ++stats_.kills;
      KillExporter(i, /*power=*/false);
      At(random_delay(10, 2000), "start exporter",
         [this, i] { StartExporter(i); });
      return;
    case Fault::kPowerCut: {
      // One at a time, and only while the gateway can tell who is in sync.
      for (const auto& e : exporters_) {
        if (!e->up()) return;
      }
      if (gateway_ == nullptr) return;
      PowerCut(i);
      At(random_delay(10, 2000), "start exporter",
         [this, i] { StartExporter(i); });
      return;
    }
    case Fault::kCrashGateway:
      if (gateway_ == nullptr) return;
      CrashGateway(std::nullopt, /*client_dies=*/rng.Chance(0.5));
      At(random_delay(0, 1000), "start gateway", [this] { StartGateway(); });
      return;
    case Fault::kStopGateway:
      if (gateway_ == nullptr) return;
      // SIGTERM: the gateway drains what is in flight first.
      RunUntil([this] { return pending_.empty(); }, absl::Seconds(5));
      StopGateway();
      At(random_delay(0, 1000), "start gateway", [this] { StartGateway(); });
      return;
  }
}

absl::Time Simulation::NextTimed() const {
  absl::Time next = absl::InfiniteFuture();
  for (const Event& event : events_) next = std::min(next, event.when);
  if (gateway_ != nullptr) {
    for (SimScheduler* s : gateway_->schedulers) {
      next = std::min(next, s->next_due());
    }
    for (SimReplica* r : gateway_->replicas)
      next = std::min(next, r->next_tick());
    if (!gateway_->opened) next = std::min(next, gateway_->next_open);
  }
  return next;
}

void Simulation::AdvanceTime(bool forced) {
  const absl::Time now = world_.now();
  const absl::Time next = NextTimed();
  absl::Time target;
  if (forced) {
    target = next == absl::InfiniteFuture() ? now + absl::Milliseconds(10)
                                            : std::max(next, now);
  } else {
    target = now + absl::Milliseconds(
                       1 + static_cast<int64_t>(world_.rng().Below(20)));
    if (next > now) target = std::min(target, next);
  }
  world_.Advance(target - now);
  if (gateway_ != nullptr) {
    for (SimReplica* r : gateway_->replicas) r->Tick();
  }
}

void Simulation::Step(bool faults, bool client) {
  ++stats_.steps;
  // A replica that lost power holds nothing it had not flushed until the
  // gateway has seen it back (and copied back what it lost).
  if (gateway_ != nullptr) {
    for (size_t j = 0; j < unrecovered_.size(); ++j) {
      if (unrecovered_[j] && gateway_->replicas[j]->connected()) {
        unrecovered_[j] = false;
      }
    }
  }
  if (Volume* v = volume()) {
    const std::string broken = v->CheckInvariants();
    if (!broken.empty()) Fail(absl::StrCat("invariant: ", broken));
  }
  std::vector<Action> actions;
  Collect(faults, client, actions);
  double total = 0;
  for (const Action& a : actions) total += a.weight;
  if (actions.empty()) {
    AdvanceTime(/*forced=*/true);
    return;
  }
  const double advance = 1.5;
  double pick = static_cast<double>(world_.rng().Below(1u << 30)) /
                static_cast<double>(1u << 30) * (total + advance);
  for (const Action& a : actions) {
    if (pick < a.weight) {
      Perform(a);
      return;
    }
    pick -= a.weight;
  }
  AdvanceTime(/*forced=*/false);
}

bool Simulation::RunUntil(const std::function<bool()>& done,
                          absl::Duration limit) {
  const absl::Time deadline = world_.now() + limit;
  while (!done()) {
    if (world_.now() > deadline || !failure_.empty()) return false;
    Step(/*faults=*/false, /*client=*/false);
  }
  return true;
}

bool Simulation::Quiet() const {
  if (!pending_.empty() || gateway_ == nullptr) return false;
  if (gateway_->store != nullptr && gateway_->store->pending() && !hold_saves) {
    return false;
  }
  for (SimReplica* r : gateway_->replicas) {
    if (r->pending() != 0) return false;
    if (r->stream() != nullptr &&
        (!r->stream()->requests.empty() || !r->stream()->replies.empty())) {
      return false;
    }
  }
  for (const auto& e : exporters_) {
    if (e->received() != 0) return false;
  }
  return true;
}

bool Simulation::Whole() {
  Volume* v = volume();
  if (v == nullptr || !gateway_->opened) return false;
  const v1::VolumeStatus status = v->Status();
  if (status.state() != "ready") return false;
  for (const v1::ReplicaStatus& r : status.replicas()) {
    if (r.sync() != "in_sync" || r.state() != "connected" ||
        r.generation() != status.generation()) {
      return false;
    }
  }
  return true;
}

bool Simulation::Settle(absl::Duration limit) {
  events_.clear();
  for (int i = 0; i < options_.replicas; ++i) {
    HealLink(i);
    exporter(i).held = false;
    StartExporter(i);
  }
  StartGateway();
  return RunUntil([this] { return Whole() && Quiet(); }, limit);
}

std::string Simulation::Describe() {
  Volume* v = volume();
  if (v == nullptr) return "no gateway";
  const v1::VolumeStatus status = v->Status();
  std::string out = absl::StrCat("volume ", status.state());
  if (!status.message().empty())
    absl::StrAppend(&out, " (", status.message(), ")");
  for (const v1::ReplicaStatus& r : status.replicas()) {
    absl::StrAppend(&out, "; ", r.address(), " ", r.sync(), " ", r.state(),
                    " dirty ", r.dirty_bytes(), " pending ", r.in_flight());
  }
  absl::StrAppend(&out, "; client requests pending ", pending_.size());
  return out;
}

void Simulation::CheckAll() {
  const uint64_t blocks = VolumeBlocks();
  if (blocks < client_blocks_) {
    Fail(absl::StrCat("the volume has ", blocks, " blocks; a resize to ",
                      client_blocks_, " succeeded"));
  }
  for (const auto& e : exporters_) {
    if (failure_.empty() && e->storage().size() < blocks * kBlock) {
      Fail(absl::StrCat(e->name(), " holds ", e->storage().size() / kBlock,
                        " blocks of the volume's ", blocks, " (in sync)"));
    }
  }
  for (uint64_t b = 0; b < blocks && failure_.empty();
       b += kMaxBlocksPerRequest) {
    const uint64_t id = Read(b, std::min(kMaxBlocksPerRequest, blocks - b));
    if (!RunUntil([this, id] { return Answered(id); }, absl::Seconds(10))) {
      Fail(
          absl::StrCat("a read after recovery was not answered: ", Describe()));
    } else if (!Succeeded(id)) {
      Fail("a read after recovery failed");
    }
  }
  for (uint64_t b = 0; b < blocks && failure_.empty(); ++b) {
    std::vector<uint64_t> tags;
    for (const auto& e : exporters_) {
      const std::string current = e->storage().Current(b);
      tags.push_back(Decode(current.data(), b));
      const std::string durable = e->storage().Durable(b);
      std::string error = model_.CheckDurable(b, Decode(durable.data(), b));
      if (!error.empty()) Fail(absl::StrCat(e->name(), ": ", error));
    }
    for (size_t i = 0; i < tags.size(); ++i) {
      if (tags[i] != tags[0]) {
        Fail(absl::StrCat("the replicas differ at block ", b, ": e0 holds ",
                          TagName(tags[0]), ", e", i, " ", TagName(tags[i])));
      }
      std::string error = model_.Check(b, tags[i], /*remember=*/false);
      if (!error.empty()) Fail(absl::StrCat("e", i, ": ", error));
    }
  }
}

SimResult Simulation::Run() {
  for (int round = 0; round < options_.rounds && failure_.empty(); ++round) {
    world_.Trace(absl::StrCat("--- round ", round + 1, ": faults"));
    for (Fault fault :
         {Fault::kCutLink, Fault::kStall, Fault::kKill, Fault::kPowerCut,
          Fault::kCrashGateway, Fault::kStopGateway}) {
      ScheduleFault(fault);
    }
    for (int step = 0; step < options_.steps_per_round && failure_.empty();
         ++step) {
      Step(/*faults=*/true, /*client=*/true);
    }
    if (!failure_.empty()) break;
    world_.Trace(absl::StrCat("--- round ", round + 1, ": recovery"));
    if (!Settle(options_.recovery_limit)) {
      Fail(absl::StrCat("the volume did not recover within ",
                        absl::FormatDuration(options_.recovery_limit), ": ",
                        Describe()));
      break;
    }
    world_.Trace(absl::StrCat("--- round ", round + 1, ": checks"));
    CheckAll();
  }
  SimResult result;
  result.ok = failure_.empty();
  result.failure = failure_;
  if (!result.ok) result.trace = world_.TraceTail();
  result.stats = stats_;
  return result;
}

SimResult RunSeed(uint64_t seed, const SimOptions& options) {
  Simulation simulation(seed, options);
  return simulation.Run();
}

}  // namespace dst::sim
