// The seeded crash simulation of dst's engine: a mirrored volume (the real
// Volume) over 2 or 3 simulated exporters (the real ExporterService on a
// disk with a volatile write cache), driven by a client that writes,
// flushes, writes with FUA, trims, zeroes, reads and grows the volume
// (`dstctl resize`, using the new space once it succeeded), while links break,
// exporters stall, die or lose power, state saves are slow, fail or are
// cut, and the gateway crashes or restarts between any two of its steps.
//
// A model of what was promised checks every read, and after each round of
// faults, once everything is healed and the volume is whole again, every
// block of every replica:
// - a write acknowledged and not superseded reads back, unless a replica
//   lost power while no other in-sync replica was responsive (then
//   anything written since the block was last made durable may read back:
//   the lag limit acknowledges a write on the replicas that answer);
// - a write covered by an acknowledged flush, or written with FUA, is
//   never lost, even to a power cut of every replica;
// - a block never reads back two different contents without a write in
//   between (no stale read, no fork between replicas);
// - the replicas converge: byte-identical once in sync;
// - the volume never shrinks: once a resize succeeded, every later gateway
//   serves at least that size, and every in-sync exporter holds it.
//
// One seed is one run; the same seed replays it exactly (`crash_sim
// --seed=N --verbose`). Scripted tests drive the same world step by step
// (the methods under "Scripted"). Not thread-safe.
#ifndef DST_TESTS_CRASH_CRASH_SIM_H_
#define DST_TESTS_CRASH_CRASH_SIM_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "prometheus/registry.h"

#include "dst/v1/config.pb.h"
#include "services/gateway/volume.h"
#include "tests/crash/sim.h"

namespace dst::sim {

struct SimOptions {
  int replicas = 2;  // 2 or 3 (1, a plain volume, in scripted tests)
  // Rounds of faults, each followed by recovery and the checks.
  int rounds = 2;
  int steps_per_round = 1500;  // steps of each round's faulty phase
  // How much virtual time recovery may take before the run fails.
  absl::Duration recovery_limit = absl::Seconds(120);
  bool verbose = false;  // every step to stderr
  uint32_t lag_limit_ms = 100;
  // VolumeConfig.activity_log_regions: recent regions kept in the activity
  // log across flushes (the sim's volume has 16 regions).
  uint32_t activity_log_regions = 0;
};

// What a seed runs with: 2 or 3 replicas, and an activity log that keeps
// no, a few, or every recent region, as the seed says.
SimOptions OptionsForSeed(uint64_t seed);

struct SimStats {
  uint64_t steps = 0;
  uint64_t writes = 0, reads = 0, flushes = 0;
  uint64_t gateway_crashes = 0, gateway_restarts = 0;
  uint64_t power_cuts = 0, kills = 0, link_cuts = 0, stalls = 0;
  uint64_t failed_saves = 0;
  uint64_t resizes = 0;  // succeeded
};

struct SimResult {
  bool ok = true;
  std::string failure;  // what was violated
  std::string trace;    // the steps before it
  SimStats stats;
};

// Runs one seed.
SimResult RunSeed(uint64_t seed, const SimOptions& options);

// What the client was promised, block by block, and the checks against it.
class Model {
 public:
  explicit Model(uint64_t blocks) : blocks_(blocks) {}
  // A modification of [first, first + count) was sent: `tag` is what it
  // writes (0: zeroes).
  void Issue(uint64_t op, uint64_t first, uint64_t count, uint64_t tag);
  void Acked(uint64_t op, uint64_t first, uint64_t count, bool fua);
  void Failed(uint64_t op, uint64_t first, uint64_t count);
  // A flush was sent / acknowledged: it covers what was acknowledged
  // before it was sent.
  uint64_t FlushMark() const { return acks_; }
  void Flushed(uint64_t mark);
  // The only in-sync replica lost power: what was acknowledged and not
  // durable may be gone.
  void Widen();
  // Checks what a read (or a replica's storage) returned for `block`;
  // an error names what was expected. `remember`: a client read (it must
  // agree with the next).
  std::string Check(uint64_t block, uint64_t tag, bool remember);
  // Checks what a power cut of every replica could leave of `block`.
  std::string CheckDurable(uint64_t block, uint64_t tag) const;

 private:
  struct Version {
    uint64_t tag;
    uint64_t op;
    enum { kPending, kAcked, kFailed } state;
    uint64_t ack = 0;  // acknowledgement order
  };
  struct Block {
    // versions[0] is durable for sure (the floor); later ones were sent
    // after it, in order.
    std::vector<Version> versions{Version{0, 0, Version::kAcked, 0}};
    size_t widened = 0;  // versions before this may be lost to a power cut
    std::optional<uint64_t> last_read;
  };
  std::vector<uint64_t> Allowed(const Block& block) const;
  void Floor(Block& block, size_t index);

  const uint64_t blocks_;
  std::map<uint64_t, Block> state_;  // blocks never written: absent
  uint64_t acks_ = 0;
};

// One simulated cluster and its client.
class Simulation {
 public:
  Simulation(uint64_t seed, const SimOptions& options);
  ~Simulation();

  // The random run: rounds of faults, each healed and checked.
  SimResult Run();

  // --- Scripted (tests) -----------------------------------------------------
  static constexpr uint32_t kBlock = 512;
  static constexpr uint64_t kBlocks = 128;  // 64 KiB: the size at start
  static constexpr uint64_t kMaxBlocks = 2 * kBlocks;  // resizes stop there
  static constexpr uint32_t kRegion = 4096;
  World& world() { return world_; }
  SimExporter& exporter(int i) { return *exporters_[static_cast<size_t>(i)]; }
  SimLink& link(int i) { return links_[static_cast<size_t>(i)]; }
  Volume* volume() { return gateway_ ? gateway_->volume.get() : nullptr; }
  const SimStats& stats() const { return stats_; }
  // The first violation found so far ("" if none).
  const std::string& failure() const { return failure_; }

  // Runs steps without faults or new client requests until `done` holds
  // (checked between steps) or `limit` of virtual time passes; false then.
  bool RunUntil(const std::function<bool()>& done,
                absl::Duration limit = absl::Seconds(30));
  // Until every request is answered and the volume is whole again (all
  // replicas in sync and connected, nothing in flight or being saved).
  bool Settle(absl::Duration limit = absl::Seconds(60));
  // Client requests; each returns the request's id.
  uint64_t Write(uint64_t block, uint64_t count, bool fua = false);
  uint64_t Flush();
  uint64_t Read(uint64_t block, uint64_t count);
  // dstctl resize to `blocks`: its outcome once the volume answered (a
  // crashed gateway never does). On success the client uses the new size.
  std::shared_ptr<std::optional<absl::Status>> Resize(uint64_t blocks);
  // The size the client was told (at its open, or by a resize).
  uint64_t client_blocks() const { return client_blocks_; }
  // The volume's size now (0 without a gateway).
  uint64_t VolumeBlocks();
  bool Answered(uint64_t op) const { return !pending_.count(op); }
  bool Succeeded(uint64_t op) const {
    auto it = succeeded_.find(op);
    return it != succeeded_.end() && it->second;
  }
  uint64_t TagOf(uint64_t op) const { return tags_.at(op); }
  // What exporter `i` holds at `block` now, and for sure after a power cut.
  uint64_t Tag(int i, uint64_t block);
  uint64_t DurableTag(int i, uint64_t block);
  // The replica's sync state as the volume reports it ("in_sync",
  // "resyncing", ...; "" without a gateway).
  std::string Sync(int i);
  bool Connected(int i);
  // While set, state saves wait (none completes).
  bool hold_saves = false;
  // State files written so far (by every gateway of the run).
  uint64_t saves() const { return state_disk_.saves; }
  // The state file as it is on disk (empty before the first save).
  const v1::VolumeState& saved_state() const { return state_disk_.state; }
  // Faults.
  void CutLink(int i);
  void HealLink(int i);
  // Stays down until StartExporter. A scripted power cut loses all the
  // disk's cache.
  void KillExporter(int i, bool power);
  void StartExporter(int i);
  // Stays down until StartGateway; a save in progress survives as
  // `save_survives` says (else at random). Unless `client_dies` with it,
  // the client sends what was not answered again to the next gateway, as
  // the plugin does; else those requests stay unanswered for good.
  void CrashGateway(std::optional<bool> save_survives = std::nullopt,
                    bool client_dies = false);
  void StopGateway();  // SIGTERM: drains, saves
  void StartGateway();
  // Reads every block through the volume and compares the replicas'
  // storage; the result is failure().
  void CheckAll();
  std::string Describe();  // the volume's status, for messages

 private:
  struct Gateway {
    int incarnation = 0;
    std::shared_ptr<prometheus::Registry> registry;
    std::vector<SimScheduler*> schedulers;  // owned by the volume
    std::vector<SimReplica*> replicas;      // owned by the volume
    SimStateStore* store = nullptr;         // owned by the volume
    std::unique_ptr<Volume> volume;
    bool opened = false;
    absl::Time next_open;  // the client retries an open no sooner
  };
  struct Op {
    uint64_t id = 0;
    v1::Op op = v1::OP_READ;
    uint64_t first = 0, count = 0;
    bool fua = false;
    uint64_t tag = 0;
    uint64_t flush_mark = 0;
    int incarnation = 0;  // of the gateway it was last sent to
  };
  struct Action {
    double weight;
    const char* what;
    int index;  // which replica, exporter or scheduler
  };
  enum class Fault {
    kCutLink,
    kStall,
    kKill,
    kPowerCut,
    kCrashGateway,
    kStopGateway
  };
  struct Event {
    absl::Time when;
    std::string what;
    std::function<void()> fn;
  };

  // One step; faults and new client requests only when allowed.
  void Step(bool faults, bool client);
  void Collect(bool faults, bool client, std::vector<Action>& actions);
  void Perform(const Action& action);
  void AdvanceTime(bool forced);
  absl::Time NextTimed() const;
  void At(absl::Duration delay, std::string what, std::function<void()> fn);
  void ScheduleFault(Fault fault);
  void InjectFault(Fault fault);

  void Fail(const std::string& why);
  void OpenClient();
  void SubmitRandom();
  uint64_t Submit(Op op);
  void Send(const Op& op);
  void OnReply(uint64_t id, int incarnation, v1::Reply&& reply, Payload&& data);
  bool Overlaps(uint64_t first, uint64_t count) const;
  void PowerCut(int i);  // a random one: some cache may survive
  bool Quiet() const;
  bool Whole();

  const uint64_t seed_;
  const SimOptions options_;
  World world_;
  std::string dir_;  // the exporters' metadata files
  std::vector<std::unique_ptr<SimExporter>> exporters_;
  std::vector<SimLink> links_;
  // Lost power and not yet back at the gateway.
  std::vector<bool> unrecovered_;
  SimStateDisk state_disk_;
  v1::VolumeConfig config_;
  std::unique_ptr<Gateway> gateway_;
  int incarnations_ = 0;
  std::vector<Event> events_;  // restarts and heals the faults scheduled

  Model model_;
  std::map<uint64_t, Op> pending_;  // client requests not yet answered
  std::map<uint64_t, bool> succeeded_;
  std::map<uint64_t, uint64_t> tags_;  // a write's tag, by request id
  uint64_t next_op_ = 1;
  uint64_t next_tag_ = 1;
  int queue_depth_ = 4;
  uint64_t client_blocks_ = kBlocks;
  bool resizing_ = false;  // a resize of the client's is unanswered
  double corrupt_ = 0;

  SimStats stats_;
  std::string failure_;
};

}  // namespace dst::sim

#endif  // DST_TESTS_CRASH_CRASH_SIM_H_
