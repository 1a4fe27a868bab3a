// The crash simulation's world: a virtual clock, and simulated exporters,
// links and state storage under the real engine (services/gateway/volume.h)
// and the real exporter service (services/exporter/exporter_service.h).
//
// Everything runs on one thread and every choice comes from one seeded
// random source, so one seed replays one run exactly (FoundationDB's
// simulation; TigerBeetle's VOPR). What may happen at a step (a request
// arriving, an exporter executing one of the requests it holds, a reply
// arriving, a timer firing, a state save completing, a disk writing back
// its cache, a fault) is offered to the runner (crash_sim.h), which picks
// one. Every effect the engine has outside its memory (a send, a save) is
// a separate step, so a gateway crash between any two steps is a crash
// between any two of the engine's externally visible actions.
//
// Not thread-safe: one thread drives the world and the engine in it.
#ifndef DST_TESTS_CRASH_SIM_H_
#define DST_TESTS_CRASH_SIM_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

#include "dst/v1/config.pb.h"
#include "dst/v1/exporter.pb.h"
#include "services/common/base/scheduler.h"
#include "services/exporter/exporter_service.h"
#include "services/exporter/metadata_store.h"
#include "services/exporter/storage.h"
#include "services/gateway/replica_handle.h"
#include "services/gateway/state_store.h"

namespace dst::sim {

class Rng {
 public:
  explicit Rng(uint64_t seed) : engine_(seed) {}
  uint64_t Next() { return engine_(); }
  // Uniform in [0, n); n > 0.
  uint64_t Below(uint64_t n) { return Next() % n; }
  bool Chance(double p) {
    return static_cast<double>(Next() >> 11) * 0x1.0p-53 < p;
  }

 private:
  std::mt19937_64 engine_;
};

// The clock, the random source and the trace.
class World {
 public:
  explicit World(uint64_t seed) : rng_(seed) {}
  absl::Time now() const { return now_; }
  void Advance(absl::Duration by) { now_ += by; }
  Rng& rng() { return rng_; }
  // Ids for streams and the like, in the order the run makes them.
  int NextId() { return next_id_++; }
  // Keeps the last `kTraceLines` lines of what happened (printed when a
  // run fails); `verbose` prints every line as it happens.
  void Trace(const std::string& line);
  std::string TraceTail() const;
  bool verbose = false;

 private:
  static constexpr size_t kTraceLines = 400;
  absl::Time now_ = absl::UnixEpoch() + absl::Hours(24);
  Rng rng_;
  int next_id_ = 1;
  std::deque<std::string> trace_;
};

// A Scheduler on the world's clock: its callbacks run when the runner
// says (RunNext), in due order.
class SimScheduler final : public Scheduler {
 public:
  SimScheduler(World* world, std::string name)
      : world_(world), name_(std::move(name)) {}
  absl::Time Now() const override { return world_->now(); }
  void After(absl::Duration delay, std::function<void()> fn) override;
  void Shutdown() override;

  const std::string& name() const { return name_; }
  // The earliest queued callback's due time (InfiniteFuture: none).
  absl::Time next_due() const;
  void RunNext();

 private:
  struct Timer {
    absl::Time when;
    uint64_t seq;
    std::function<void()> fn;
  };
  World* const world_;
  const std::string name_;
  std::vector<Timer> timers_;
  uint64_t seq_ = 0;
  bool stopped_ = false;
};

// A disk with a volatile write cache: a write is durable only after a
// flush, with FUA, or once the disk wrote it back on its own; a power cut
// leaves each block with its durable contents or any of its cached
// versions. Block-atomic: a block is never torn.
class SimStorage final : public Storage {
 public:
  SimStorage(uint64_t size, uint32_t block_bytes);
  uint64_t size() const override { return durable_.size(); }
  bool can_trim() const override { return true; }
  absl::Status Read(uint64_t offset, size_t length, char* out) override;
  absl::Status Write(uint64_t offset, const Payload& data, bool fua) override;
  absl::Status WriteZeroes(uint64_t offset, uint64_t length, bool may_trim,
                           bool fua) override;
  absl::Status Trim(uint64_t offset, uint64_t length, bool fua) override;
  absl::Status Flush() override;
  // A file extended: the new blocks read as zeroes, durably at once.
  absl::StatusOr<uint64_t> Grow(uint64_t size) override;

  uint32_t block_bytes() const { return block_bytes_; }
  bool cached() const { return !cache_.empty(); }
  // The disk writes one cached block back on its own.
  void WriteBackOne(Rng& rng);
  // A power cut; with `lose_all`, no cached version survives.
  void PowerCut(Rng& rng, bool lose_all = false);
  // Block `index` as a read returns it now, and as a power cut now could
  // leave it at worst (its durable contents).
  std::string Current(uint64_t index) const;
  std::string Durable(uint64_t index) const;
  uint64_t flushes() const { return flushes_; }

 private:
  void Put(uint64_t offset, const std::string& bytes, bool fua);
  const uint32_t block_bytes_;
  std::string durable_;
  // Versions written since the block was last durable, oldest first.
  std::map<uint64_t, std::vector<std::string>> cache_;
  uint64_t flushes_ = 0;
};

class SimExporter;

// One gateway-to-exporter stream (an HTTP/2 stream on a connection): in
// order both ways. Broken when the link is cut, the gateway gives up on it
// or either end dies: what is on the wire is lost, but what the exporter
// already read still executes (its replies go nowhere).
struct SimStream {
  int id = 0;
  SimExporter* exporter = nullptr;
  ExporterService::StreamGrant grant;
  bool broken = false;
  struct Request {
    v1::Request request;
    Payload data;
  };
  std::deque<Request> requests;  // sent by the gateway, not yet read
  std::deque<std::pair<v1::Reply, Payload>> replies;  // not yet read
};

// An exporter process over a SimStorage that outlives it, with the real
// ExporterService and MetadataStore (its --state file in a directory of
// the run's).
class SimExporter {
 public:
  SimExporter(World* world, std::string name, std::string state_path,
              uint64_t size, uint32_t block_bytes);
  ~SimExporter();
  const std::string& name() const { return name_; }
  SimStorage& storage() { return storage_; }
  bool up() const { return service_ != nullptr; }
  uint64_t instance() const { return instance_; }

  // Starts the process, its metadata read back; a new instance id after a
  // power cut (as the host's boot id).
  void Start();
  // The process dies: what it read and had not executed is gone, its
  // streams break. A power cut loses the disk's cache too: at random, or
  // all of it.
  enum class Death { kProcess, kPowerCut, kPowerCutLosingAll };
  void Stop(Death death);

  // The unary calls; Unavailable while down.
  absl::StatusOr<v1::NegotiateReply> Negotiate();
  absl::StatusOr<v1::ReplicaMetadata> Claim(const v1::ClaimRequest& request);
  absl::StatusOr<uint64_t> Grow(const v1::GrowRequest& request);
  // A stream opens (the Stream call's metadata), or why refused.
  absl::StatusOr<std::shared_ptr<SimStream>> OpenStream(uint64_t epoch);

  // A request read from `stream`: checked now, as the stream handler does,
  // and executed later, in any order with the others: the exporter runs
  // one stream's requests concurrently.
  void Receive(const std::shared_ptr<SimStream>& stream,
               SimStream::Request request);
  size_t received() const { return received_.size(); }
  // Executes the received request `index` and answers it on its stream.
  void Execute(size_t index);
  // While held (a stalled disk or a stopped process) nothing executes.
  bool held = false;

 private:
  struct Received {
    std::shared_ptr<SimStream> stream;
    SimStream::Request request;
  };
  World* const world_;
  const std::string name_;
  const std::string state_path_;
  SimStorage storage_;
  std::unique_ptr<MetadataStore> metadata_;
  std::unique_ptr<ExporterService> service_;
  uint64_t instance_ = 0;
  bool lost_power_ = false;
  std::deque<Received> received_;
  std::vector<std::weak_ptr<SimStream>> streams_;
};

// The network between the gateway and one exporter: cut, or not.
struct SimLink {
  bool cut = false;
  // Each reply's data is damaged on the wire with this chance (the
  // checksums must catch it).
  double corrupt = 0;
};

struct SimReplicaOptions {
  absl::Duration request_timeout = absl::Seconds(1);
  int max_resends = 3;
  absl::Duration suspend_timeout = absl::Seconds(2);
  absl::Duration min_backoff = absl::Milliseconds(20);
  absl::Duration max_backoff = absl::Milliseconds(500);
};

// A ReplicaHandle over a SimExporter: TransactionSession's discipline
// (replay in order on a new stream, resend after a timeout, fail after the
// last resend or the suspend time) on the world's clock.
class SimReplica final : public ReplicaHandle {
 public:
  SimReplica(World* world, SimExporter* exporter, SimLink* link,
             const SimReplicaOptions& options);
  ~SimReplica() override;

  const std::string& address() const override { return exporter_->name(); }
  void Start(std::function<void()> on_change, Admission admission) override;
  void Stop() override;
  void Close() override;
  void Submit(v1::Request request, TransactionDone done,
              Payload data = {}) override;
  absl::StatusOr<v1::ReplicaMetadata> Claim(
      const v1::ClaimRequest& request) override;
  absl::StatusOr<uint64_t> Grow(const v1::GrowRequest& request) override;
  void Ping(std::function<void(absl::Duration)> done) override {}
  bool connected() const override;
  size_t pending() const override {
    return backlog_.size() + in_flight_.size();
  }
  SessionCounters counters() const override { return counters_; }
  v1::ReplicaStatus Status() const override;

  // The runner's side.
  const std::shared_ptr<SimStream>& stream() const { return stream_; }
  bool WantsConnect() const;
  void Connect();
  bool HasReply() const;
  void DeliverReply();
  // The stream broke (a cut link, a dead exporter) or is given up: what
  // was sent and not answered is replayed on the next.
  void BreakStream(const std::string& why);
  // Resends after a timeout, fails what waited too long.
  void Tick();
  // The next time Tick has something to do (InfiniteFuture: none).
  absl::Time next_tick() const;
  // The gateway process died: nothing is called back any more.
  void Abandon();

 private:
  struct Txn {
    uint64_t caller_id = 0;  // the request's id as submitted
    v1::Request request;     // carries the wire id
    Payload data;
    TransactionDone done;
    int sends = 0;
    absl::Time submitted;
    absl::Time sent;
  };
  void Send(Txn txn);
  void Fail(Txn& txn, absl::StatusCode code, const std::string& why);

  World* const world_;
  SimExporter* const exporter_;
  SimLink* const link_;
  const SimReplicaOptions options_;
  std::function<void()> on_change_;
  Admission admission_;
  bool started_ = false;
  bool stopped_ = false;
  bool closed_ = false;
  bool dead_ = false;
  bool ever_connected_ = false;
  std::shared_ptr<SimStream> stream_;
  std::deque<Txn> backlog_;    // waiting for a stream, oldest first
  std::deque<Txn> in_flight_;  // sent on stream_, oldest first
  uint64_t next_wire_id_ = 1;
  absl::Time next_attempt_;
  absl::Duration backoff_;
  std::string last_error_;
  SessionCounters counters_;
};

// The durable home of a mirror's state, outliving gateway processes.
struct SimStateDisk {
  bool has_state = false;
  v1::VolumeState state;
  uint64_t saves = 0;
};

// A StateStore over a SimStateDisk: a save completes (or fails) when the
// runner says, group-committed like FileStateStore; a crash cuts it.
class SimStateStore final : public StateStore {
 public:
  SimStateStore(World* world, SimStateDisk* disk)
      : world_(world), disk_(disk) {}
  const std::string& name() const override { return name_; }
  absl::StatusOr<v1::VolumeState> Load() override;
  void Write(v1::VolumeState state,
             std::function<void(const absl::Status&)> then) override;

  bool pending() const { return pending_; }
  // The pending save completes: durable, or failed (nothing written).
  void Complete(bool fail);
  // The gateway died: a save in progress is durable or not (the file is
  // replaced atomically; `survives` decides, else the Rng), and nothing is
  // called back.
  void Crash(Rng& rng, std::optional<bool> survives = std::nullopt);

 private:
  World* const world_;
  SimStateDisk* const disk_;
  const std::string name_ = "sim:VOLUME.state";
  bool pending_ = false;
  bool crashed_ = false;
  v1::VolumeState next_;
  std::vector<std::function<void(const absl::Status&)>> waiting_;
};

}  // namespace dst::sim

#endif  // DST_TESTS_CRASH_SIM_H_
