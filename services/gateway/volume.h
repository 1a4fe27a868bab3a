// A volume: what NBD clients see as one disk, made of one replica (plain)
// or several (a mirror, network RAID-1). Every client request is validated
// against the volume's geometry, then becomes transactions to replicas:
//
// - Writes, zeroes and trims go to every in-sync replica and are
//   acknowledged when all acknowledged. Once one has, a laggard gets at most
//   `lag_limit_ms` more; then it leaves the in-sync set, the regions it
//   missed are marked dirty for it and its transactions go on in the
//   background. A replica whose transaction fails leaves the set the same
//   way. Overlapping modifications are serialized (RangeSerializer), so
//   every replica applies them in the same order.
// - Reads go to one in-sync replica (spread round robin) and fail over to
//   another on error; one unanswered after the lag limit is also sent to
//   the next (the first answer wins).
// - Flushes go to every in-sync replica; one that fails or lags leaves the
//   set with the regions written since its last flush marked dirty.
// - A returning replica is resynchronized online: its dirty regions are
//   copied from an in-sync replica, one region at a time under the range
//   lock, throttled, then it rejoins the set.
//
// What survives restarts: the mirror state file (STATE_DIR/VOLUME.state:
// generations, in-sync flags, dirty bitmaps) written before any write that a
// replica missed is acknowledged, and each exporter's generation history and
// fencing epoch. After a restart an out-of-sync replica is never a source:
// with only stale replicas reachable, I/O waits (suspend time) for an
// up-to-date one or for `dstctl resolve`. Replicas whose histories diverged
// stop the volume ("diverged") until resolved.
//
// Fencing: the volume claims an epoch above every replica's on each
// negotiation and writes under it; an exporter claimed by a newer gateway
// refuses this one's writes, and the volume turns "fenced".
//
// One writer: read-write opens take the volume's lease (one token at a
// time); read-only opens are always allowed.
//
// Thread-safe. Replicas are owned; Start() connects them in the background.
#ifndef DST_SERVICES_GATEWAY_VOLUME_H_
#define DST_SERVICES_GATEWAY_VOLUME_H_

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

#include "dst/v1/config.pb.h"
#include "dst/v1/gateway.pb.h"
#include "services/common/metrics.h"
#include "services/common/scheduler.h"
#include "services/common/tls.h"
#include "services/common/transaction_table.h"
#include "services/gateway/range_serializer.h"
#include "services/gateway/region_bitmap.h"
#include "services/gateway/replica_handle.h"
#include "services/gateway/state_store.h"

namespace dst {

// Every state a volume reports (VolumeStatus.state).
inline constexpr const char* kVolumeStates[] = {
    "ready", "degraded", "waiting", "diverged", "fenced", "unavailable"};

struct VolumeOptions {
  std::string gateway_id;  // the fencing owner name (gateway --id)
  // Where the mirror state file lives; required for mirrors.
  std::string state_dir;
  // TLS to the exporters (null: plaintext).
  std::shared_ptr<Tls> tls;
  // Where a mirror's state is kept. Default: a FileStateStore in state_dir.
  std::function<absl::StatusOr<std::unique_ptr<StateStore>>(
      const std::string& volume)>
      open_state_store;
  // The volume's clock and schedulers: "timers" (lag limits, hedged reads)
  // and "worker" (resync, generation pushes, lazy saves; it may block on an
  // exporter). Default: a TimerThread each.
  SchedulerFactory schedulers;
};

class Volume {
 public:
  // Metrics go to `registry` as dst_gateway_* with {volume="NAME"}. For a
  // mirror, Init() loads the state file.
  Volume(const v1::VolumeConfig& config, const VolumeOptions& options,
         std::vector<std::unique_ptr<ReplicaHandle>> replicas,
         prometheus::Registry& registry);
  // Close(), then writes what is pending to the state file.
  ~Volume();
  Volume(const Volume&) = delete;
  Volume& operator=(const Volume&) = delete;

  // Loads the mirror state (a state file that does not fit the config is
  // an error: nothing starts).
  absl::Status Init();
  void Start();
  // Writes the mirror state now and waits for it (at exit).
  void Save();
  // Writes the mirror state now; `then` (if any) runs once it is durable or
  // failed to be, on the store's thread (not at all for a plain volume or
  // one not yet decided).
  void SaveThen(std::function<void(const absl::Status&)> then);
  // Stops the monitor and worker threads and closes every replica's
  // session: each transaction still in flight is answered (or fails) and
  // its caller's `done` has run when this returns. Submissions after it
  // fail. Called by the owner of those callers (the gateway's Io streams)
  // before it goes; the destructor calls it too.
  void Close();
  const std::string& name() const { return config_.name(); }
  const v1::VolumeConfig& config() const { return config_; }

  // The geometry a client opening the volume gets. UNAVAILABLE until the
  // replicas needed to decide who is up to date have negotiated;
  // FAILED_PRECONDITION when diverged or fenced, or when a read-write open
  // meets another writer's lease.
  absl::StatusOr<v1::Geometry> Open(bool read_only,
                                    const std::string& lease_token = "",
                                    const std::string& client_id = "");
  // An Io stream of the lease holder starts / ends (the lease lasts while
  // one is open, and lease_timeout_ms after the last ends).
  absl::Status AttachWriter(const std::string& lease_token);
  void DetachWriter();

  // Validates and executes one client request with its data (a request
  // that carries it in its own data field has it moved out); `done` runs
  // exactly once, with a read's data.
  void Submit(v1::Request request, Payload data, bool read_only,
              TransactionDone done);

  v1::VolumeStatus Status() const;
  // VolumeStatus.state alone (cheap: health polls it).
  std::string state() const;

  // Admin (dstctl): see gateway.proto.
  absl::Status Resync(const v1::ResyncRequest& request);
  absl::StatusOr<v1::VerifyReply> Verify(const v1::VerifyRequest& request);
  absl::Status Resolve(const std::string& source);

 private:
  struct Slot;
  struct Fanout;
  struct ReadOp;
  enum class Sync { kUnknown, kInSync, kOutOfSync };

  bool mirror() const { return slots_.size() > 1; }
  // Admission of replica `index` after a negotiation (ReplicaHandle's).
  absl::StatusOr<uint64_t> Admit(size_t index, const v1::NegotiateReply& reply);
  void OnReplicaChange(size_t index);
  void FenceLocked(const std::string& why) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void DecideLocked(size_t index) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void DecideFirstStartLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void SizeBitmapsLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Records that replica `index` missed regions [first, last] (or those set
  // in `missed`): it leaves the in-sync set if it was in it (a new
  // generation). True when the state changed and must be saved.
  bool MarkMissedLocked(size_t index, uint64_t first, uint64_t last,
                        const std::string& why)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool MarkMissedLocked(size_t index, const RegionBitmap& missed,
                        const std::string& why)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool LeaveInSyncLocked(size_t index, const std::string& why)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  v1::VolumeState SnapshotLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Saves the state; `then` runs once it is durable (or failed to be).
  void PersistLocked(std::function<void(const absl::Status&)> then)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::string StateLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  void SubmitRead(const std::shared_ptr<ReadOp>& op);
  // A replica returned damaged data for [offset, +length): when another
  // replica is in sync, the region is marked dirty for it (it leaves the
  // set) and resync copies it back from a good replica.
  void Heal(const Slot* slot, uint64_t offset, uint64_t length);
  void SubmitFanout(const std::shared_ptr<Fanout>& fanout);
  void OnFanoutReply(const std::shared_ptr<Fanout>& fanout, size_t target,
                     v1::Reply&& reply);
  void FinishFanout(const std::shared_ptr<Fanout>& fanout);

  absl::Time Now() const { return timers_->Now(); }
  // Timers (lag limits, hedged reads) run on `timers_`; resync, generation
  // pushes and lazy saves on `worker_` (they may block on an exporter),
  // every kWorkTick and when kicked.
  void After(absl::Duration delay, std::function<void()> fn);
  void Work(bool periodic);
  // Starts region copies; promotes finished replicas (blocking: an RPC to
  // the exporter) only when `promote`, else leaves that to the worker.
  void DriveResync(bool promote);
  void KickWorker();
  void CopyRegion(size_t target, size_t source, uint64_t region);
  void CopyChunk(size_t target, size_t source, uint64_t region, uint64_t offset,
                 uint64_t end);
  void EndCopy(size_t target, uint64_t region, bool ok);
  void Promote(size_t target);
  void PushGenerations();
  void UpdateMetrics();

  const v1::VolumeConfig config_;
  const VolumeOptions options_;
  const std::unique_ptr<Scheduler> timers_;
  const std::unique_ptr<Scheduler> worker_;
  v1::ChecksumAlgorithm checksum_;  // the volume's own (config "checksum")
  std::vector<std::unique_ptr<Slot>> slots_;
  std::unique_ptr<StateStore> store_;  // mirrors only
  std::atomic<uint64_t> total_{0};
  std::atomic<uint64_t> failed_{0};
  std::atomic<uint64_t> in_flight_{0};
  std::atomic<uint64_t> next_read_{0};
  RangeSerializer modifications_;  // overlapping writes, one at a time
  OpMetrics op_metrics_;
  prometheus::Gauge& in_flight_gauge_;
  prometheus::Counter& lagging_counter_;
  prometheus::Counter& hedged_reads_counter_;
  std::vector<prometheus::Gauge*> state_gauges_;  // by kVolumeStates

  absl::Mutex work_mu_;
  bool kicked_ ABSL_GUARDED_BY(work_mu_) = false;  // a Work run is queued

  mutable absl::Mutex mu_;
  v1::Geometry geometry_ ABSL_GUARDED_BY(mu_);    // size 0 until known
  bool decided_ ABSL_GUARDED_BY(mu_) = false;     // sync states known
  uint64_t state_size_ ABSL_GUARDED_BY(mu_) = 0;  // from the state file
  // The volume's generations, current first (mirrors).
  std::vector<uint64_t> generations_ ABSL_GUARDED_BY(mu_);
  // The activity log (mirrors): regions with modifications sent since the
  // last flush, saved before any is sent; after a crash they may differ
  // between in-sync replicas. `writing_` counts modifications in flight per
  // region; a flush clears the regions with none.
  RegionBitmap active_ ABSL_GUARDED_BY(mu_);
  std::map<uint64_t, int> writing_ ABSL_GUARDED_BY(mu_);
  // Active regions of the previous run (state file): copied from the first
  // up-to-date replica that connects to the other in-sync ones.
  RegionBitmap crashed_active_ ABSL_GUARDED_BY(mu_);
  uint64_t epoch_ ABSL_GUARDED_BY(mu_) = 0;
  std::string fenced_ ABSL_GUARDED_BY(mu_);    // why, when fenced
  std::string diverged_ ABSL_GUARDED_BY(mu_);  // why, when diverged
  bool save_later_ ABSL_GUARDED_BY(mu_) = false;
  absl::Time saved_at_ ABSL_GUARDED_BY(mu_);
  bool resync_paused_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t resync_rate_ ABSL_GUARDED_BY(mu_) = 0;
  std::string lease_token_ ABSL_GUARDED_BY(mu_);
  std::string lease_client_ ABSL_GUARDED_BY(mu_);
  int lease_streams_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Time lease_expiry_ ABSL_GUARDED_BY(mu_);
};

// Builds the volume a config entry describes (replicas not yet started).
std::unique_ptr<Volume> MakeVolume(const v1::VolumeConfig& config,
                                   const VolumeOptions& options,
                                   int max_message_bytes,
                                   prometheus::Registry& registry);

// MakeVolume and Init, as the gateway and the embedded mode do it: a
// mirror's state_dir is made first. Errors name the state_dir or the
// volume.
absl::StatusOr<std::unique_ptr<Volume>> BuildVolume(
    const v1::VolumeConfig& config, const VolumeOptions& options,
    int max_message_bytes, prometheus::Registry& registry);

}  // namespace dst

#endif  // DST_SERVICES_GATEWAY_VOLUME_H_
