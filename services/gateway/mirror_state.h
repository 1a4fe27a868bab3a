// A volume's membership state and every decision on it: which replicas are
// in sync, the regions each must have copied (dirty) or has not flushed
// (unflushed), the activity log, the generation history, and a version that
// says how much of it must be durable before a write may go out or be
// acknowledged. The Volume carries out what it decides (sends, saves,
// copies) and calls it under its own lock.
//
// Invariants (CheckInvariants() tests them; the crash simulation after
// every step):
// - An in-sync replica holds every acknowledged write: a replica that
//   misses one leaves the set, the region marked dirty for it, before the
//   write is acknowledged.
// - Nothing is sent or acknowledged on state that is not durable: a write
//   goes out only once `needed_version` of its plan is durable (the active
//   bits of its regions and the dirty bits of the replicas it skips), and
//   is acknowledged only once the version its outcome needs is. Changes
//   that only make the durable state more cautious (a copied region, a
//   flushed one) are saved lazily.
// - The activity log covers every region that may differ between replicas
//   after a crash: each with a modification in flight, or unflushed on some
//   replica. After a gateway crash those regions are copied from one
//   up-to-date replica to every other, in sync or not. It also keeps the
//   `keep_active` regions written most recently across flushes (DRBD's
//   al-extents), so that a write into one of them does not wait for a
//   save: more is copied after a crash, nothing is lost either way.
// - A replica whose exporter restarted (a new instance) may have lost what
//   it had not flushed: those regions are copied back to it, or, when it is
//   the only replica in sync, from it to every other.
// - A replica rejoins the set only once nothing sent to it before its last
//   miss is pending and every write it took is flushed; a generation
//   reaches an exporter only once the state holding it is durable.
//
// Not thread-safe; no threads, no I/O (it logs).
#ifndef DST_SERVICES_GATEWAY_MIRROR_STATE_H_
#define DST_SERVICES_GATEWAY_MIRROR_STATE_H_

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"

#include "dst/v1/config.pb.h"
#include "services/gateway/recent_regions.h"
#include "services/gateway/region_bitmap.h"

namespace dst {

enum class SyncState { kUnknown, kInSync, kOutOfSync };

// What an exporter's negotiation says that the mirror decides on.
struct Negotiated {
  std::string identity;
  uint64_t instance = 0;              // 0: not reported
  std::vector<uint64_t> generations;  // current first
};

class MirrorState {
 public:
  // One replica as the mirror knows it.
  struct Replica {
    std::string address;
    SyncState sync = SyncState::kUnknown;
    bool admitted = false;  // negotiated and accepted this run
    std::string identity;
    uint64_t instance = 0;
    std::vector<uint64_t> generations;  // the exporter's, as last known
    uint64_t left_generation = 0;       // out of sync: what it held then
    RegionBitmap dirty;      // out of sync: regions it must have copied
    RegionBitmap unflushed;  // regions it took writes to since its flush
    // What flushes in flight cover (their union), until none is left.
    RegionBitmap flushing;
    int flushes = 0;
    // Out of sync: nothing sent to it before its last miss is pending.
    bool drained = false;
    bool push_generation = false;  // its exporter must learn generations_
    bool promoting = false;        // its flush before rejoining is out
    std::set<uint64_t> copying;    // regions being copied to it now
    // Regions marked dirty again while being copied (their source lost
    // its cache, a full resync, a resolve): that copy does not count.
    std::set<uint64_t> recopy;
    uint64_t cursor = 0;  // where resync looks next
    // Out of sync: why it last left the set, or why it cannot return.
    std::string why;
    // Times it left the set: a read it answers counts only if this did
    // not change since the read was sent (a read replayed after its
    // exporter died answers with what it lost).
    uint64_t leaves = 0;
  };

  // Who a write, zero, trim or flush goes to; `required`: in sync when
  // planned, its acknowledgement depends on it.
  struct Target {
    size_t replica;
    bool required;
  };
  struct WritePlan {
    std::vector<Target> targets;
    // The version that must be durable before the write goes out.
    uint64_t needed_version = 0;
  };
  enum class Outcome { kOk, kFailed, kLagging };
  struct FlushPlan {
    std::vector<Target> targets;
    std::vector<RegionBitmap> covers;  // what each target's flush covers
  };

  // `new_generation` draws a fresh, non-zero generation identifier.
  // `keep_active`: how many recently written regions stay in the activity
  // log across flushes (0: only those a crash may leave different).
  MirrorState(std::string volume, std::vector<std::string> addresses,
              uint32_t region_bytes, std::function<uint64_t()> new_generation,
              size_t keep_active = 0);

  bool mirror() const { return replicas_.size() > 1; }
  size_t size() const { return replicas_.size(); }
  const Replica& replica(size_t i) const { return replicas_[i]; }

  // --- durable state ---------------------------------------------------
  // Takes the state file's contents. DataLoss or FailedPrecondition (with
  // `where`) when it does not belong to this volume or is damaged.
  absl::Status Load(const v1::VolumeState& state, const std::string& where);
  bool loaded() const { return loaded_; }
  uint64_t state_size() const { return state_size_; }
  v1::VolumeState Snapshot() const;  // at version()
  uint64_t version() const { return version_; }
  uint64_t required_version() const { return required_version_; }
  uint64_t durable_version() const { return durable_version_; }
  void Saved(uint64_t version);
  // Once the volume's size is known (the bitmaps follow it).
  void SetSize(uint64_t bytes);
  // The volume grows to `bytes` (above state_size()): every bitmap keeps
  // its bits and gains clear ones. Each replica with a `missed` reason
  // (its exporter did not confirm the size; "" for one that did) is marked
  // dirty from the region holding the old end on, and leaves the set. A
  // change acknowledgements rely on: the size is used once it is durable.
  void Grow(uint64_t bytes, const std::vector<std::string>& missed);
  // Why replica i, out of sync, cannot return (what Grow said, or a later
  // attempt).
  void Explain(size_t i, const std::string& why) { replicas_[i].why = why; }

  // --- decisions ---------------------------------------------------------
  // Replica `i` negotiated: decides whether it is in sync (generations,
  // identity, a restart of its exporter, the activity log of a crash).
  void Admit(size_t i, const Negotiated& negotiated);
  bool decided() const { return decided_; }
  const std::string& diverged() const { return diverged_; }
  const std::vector<uint64_t>& generations() const { return generations_; }
  // Replicas that left the set since start (a metric).
  uint64_t exits() const { return exits_; }

  // --- writes, zeroes, trims, flushes ------------------------------------
  // `connected[i]`: replica i has a working stream. Marks the region
  // active, and dirty for every replica the write skips.
  WritePlan PlanWrite(uint64_t first_region, uint64_t last_region,
                      const std::vector<bool>& connected);
  void BeginWrite(uint64_t first_region, uint64_t last_region);
  // Replica i took a planned write (its reply): it holds it unflushed
  // from now, whatever becomes of the rest of the write.
  void Took(size_t i, uint64_t first_region, uint64_t last_region);
  // True when a target that took it (kOk) is in sync now and connected:
  // only then may the write be acknowledged and the others left behind. A
  // target in sync when planned may have left the set since (another
  // write's lag), or lost its stream: its exporter may have died with the
  // write in its cache (a new instance tells, when it returns).
  bool HeldInSync(const std::vector<Target>& targets,
                  const std::vector<Outcome>& outcomes,
                  const std::vector<bool>& connected) const;
  // The outcome of each planned target. `acknowledged`: HeldInSync and not
  // fenced. Returns the version the reply must wait for.
  uint64_t EndWrite(uint64_t first_region, uint64_t last_region,
                    const std::vector<Target>& targets,
                    const std::vector<Outcome>& outcomes, bool acknowledged,
                    const std::vector<bool>& connected);
  FlushPlan PlanFlush(const std::vector<bool>& connected);
  // A clean stop: the recent regions are forgotten, so that the next flush
  // leaves in the activity log only what a crash may leave different.
  void ForgetRecent() { recent_.Clear(); }
  uint64_t EndFlush(const FlushPlan& plan, const std::vector<Outcome>& outcomes,
                    bool acknowledged);
  // Replica `i` returned damaged data: copy the regions back to it, when
  // another replica is in sync. True when it changed anything.
  bool Heal(size_t i, uint64_t first_region, uint64_t last_region);

  // --- resync ------------------------------------------------------------
  bool Resyncing(size_t i) const;  // out of sync and admitted
  void SetDrained(size_t i, bool drained) { replicas_[i].drained = drained; }
  // The next region to copy to `i` (now marked copying), if any.
  std::optional<uint64_t> NextCopy(size_t i);
  // True when replica i is in sync and has not left the set since it was
  // `leaves` (Replica::leaves when a read was sent to it).
  bool StillInSync(size_t i, uint64_t leaves) const {
    return replicas_[i].sync == SyncState::kInSync &&
           replicas_[i].leaves == leaves;
  }
  // An in-sync, connected replica to copy from.
  std::optional<size_t> Source(size_t i,
                               const std::vector<bool>& connected) const;
  void CopyDone(size_t i, uint64_t region, bool ok);
  // Dirty regions left, nothing being copied, drained: flush it, then it
  // rejoins. Returns what the flush covers.
  bool CanPromote(size_t i) const;
  RegionBitmap StartPromotion(size_t i);
  // The flush answered; on success `i` rejoins the set holding
  // `generations` (what its exporter now has). True when it rejoined.
  bool FinishPromotion(size_t i, const RegionBitmap& covered, bool flushed,
                       const std::vector<uint64_t>& generations);

  // --- generations -------------------------------------------------------
  // Replica i's exporter should be told generations_ now (in sync, and the
  // state holding them is durable).
  bool GenerationDue(size_t i) const;
  // A claim carrying `pushed` answered with the exporter's `generations`.
  void GenerationPushed(size_t i, uint64_t pushed,
                        const std::vector<uint64_t>& generations);

  // --- operator ----------------------------------------------------------
  absl::Status ResyncFull(size_t i);
  absl::Status Resolve(size_t i);

  // "" or the first broken invariant (for tests and the simulation).
  std::string CheckInvariants() const;

 private:
  // Every change bumps the version; one that acknowledgements rely on also
  // the required version.
  void Change(bool required);
  bool LeaveInSync(size_t i, const std::string& why);
  // Sets r's dirty bits for `regions` (all when null); a copy of one of
  // them in flight will not clear its bit. True when a bit was set.
  bool MarkDirty(Replica& r, const RegionBitmap* regions);
  // Replica i misses `missed`: it leaves the set if it was in it. `sent`:
  // a write to it was sent and missed, and may still land.
  void MarkMissed(size_t i, const RegionBitmap& missed, const std::string& why,
                  bool sent = false);
  void MarkMissed(size_t i, uint64_t first, uint64_t last,
                  const std::string& why, bool sent = false);
  void NewGeneration();
  void DecideByGenerations(size_t i);
  void DecideFirstStart();
  // Replica i's exporter restarted and may have lost `lost`.
  void LostCache(size_t i, const RegionBitmap& lost);
  bool OthersInSync(size_t i) const;
  // The unsettled regions are settled: they join the activity log.
  void SettleUnsettled();
  static void FlushSent(Replica& r);
  // A flush of `r` covering `covered` answered; not `ok`: still unflushed.
  static void FlushAnswered(Replica& r, const RegionBitmap& covered, bool ok);
  RegionBitmap All() const;

  const std::string volume_;
  const uint32_t region_bytes_;
  const std::function<uint64_t()> new_generation_;
  std::vector<Replica> replicas_;
  uint64_t regions_ = 0;
  uint64_t state_size_ = 0;  // from the state file
  bool loaded_ = false;
  bool decided_ = false;
  // A new mirror: decided once every exporter holds its first generation
  // (pushed before the state is saved: a gateway that crashes first finds
  // no state and the same generation on every replica).
  bool first_start_ = false;
  std::string diverged_;
  std::vector<uint64_t> generations_;  // the volume's, current first
  uint64_t generation_version_ = 0;    // the version that holds [0]
  RegionBitmap active_;
  RecentRegions recent_;             // kept in active_ across flushes
  std::map<uint64_t, int> writing_;  // modifications in flight per region
  // Regions that may differ between replicas until a source settles them
  // (the previous run's activity log; writes that failed on every in-sync
  // replica while none was reachable): copied from the first up-to-date
  // replica back whose exporter kept its cache to every other.
  RegionBitmap unsettled_;
  uint64_t version_ = 0;
  uint64_t required_version_ = 0;
  uint64_t durable_version_ = 0;
  uint64_t exits_ = 0;
};

const char* SyncName(SyncState sync);

}  // namespace dst

#endif  // DST_SERVICES_GATEWAY_MIRROR_STATE_H_
