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
// - Flushes go to every in-sync replica (and to out-of-sync ones holding
//   unflushed writes); one that fails or lags leaves the set with the
//   regions written since its last flush marked dirty.
// - A returning replica is resynchronized online: its dirty regions are
//   copied from an in-sync replica, one region at a time under the range
//   lock, throttled; then it is flushed and rejoins the set.
//
// The parts: MirrorState (mirror_state.h) owns the membership state and
// decides; VolumeCore (volume_core.h) holds what the parts share and the
// durability of the state (a write is sent and acknowledged only once the
// state version it needs is durable); the Resyncer (resyncer.h) brings
// returning replicas back; the ReadRouter (read_router.h) serves reads and
// the WritePath (write_path.h) modifications and flushes; BlockStatus
// (block_status.h) answers allocation queries from every in-sync replica;
// the Resizer (resizer.h) grows the volume online; Fencing (fencing.h)
// admits replicas under this run's epochs; LagDeadlines
// (lag_deadlines.h) times each replica's oldest unanswered transaction;
// WriterLease keeps one writer; the Verifier (verifier.h) compares
// replicas. This class is the facade: it validates requests and runs the
// worker (volume.cc), and reports health, status and metrics
// (volume_status.cc). volume_builder.h builds volumes from config.
//
// What survives restarts: the mirror state file (STATE_DIR/VOLUME.state)
// and each exporter's generation history, fencing epoch and instance id.
// After a restart an out-of-sync replica is never a source: with only
// stale replicas reachable, I/O waits (suspend time) for an up-to-date one
// or for `dstctl resolve`. Replicas whose histories diverged stop the
// volume ("diverged") until resolved.
//
// Fencing: the volume claims, at each exporter's first negotiation of its
// run, an epoch above the one the exporter holds, and writes under it; an
// exporter claimed by a newer gateway refuses this one's writes, when they
// run, and the volume turns "fenced" (and saves no more state).
//
// One writer: read-write opens take the volume's lease (WriterLease: one
// token at a time); read-only opens are always allowed.
//
// Thread-safe. Replicas are owned; Start() connects them in the background.
// `done` callbacks run on the replicas', the timers' or the state store's
// threads.
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
#include "absl/time/time.h"

#include "dst/v1/config.pb.h"
#include "dst/v1/gateway.pb.h"
#include "services/common/base/scheduler.h"
#include "services/common/observability/metrics.h"
#include "services/common/security/tls.h"
#include "services/common/transport/transaction_table.h"
#include "services/gateway/block_status.h"
#include "services/gateway/fencing.h"
#include "services/gateway/mirror_state.h"
#include "services/gateway/range_serializer.h"
#include "services/gateway/read_router.h"
#include "services/gateway/region_bitmap.h"
#include "services/gateway/replica_handle.h"
#include "services/gateway/resizer.h"
#include "services/gateway/resyncer.h"
#include "services/gateway/state_store.h"
#include "services/gateway/volume_core.h"
#include "services/gateway/volume_health.h"
#include "services/gateway/volume_metrics.h"
#include "services/gateway/write_path.h"
#include "services/gateway/writer_lease.h"

namespace dst {

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
  // At exit: FlushForStop, waiting for it up to kStopFlushLimit, then
  // writes the mirror state and waits for it.
  void Save();
  static constexpr absl::Duration kStopFlushLimit = absl::Seconds(10);
  // A clean stop's flush: the recent regions leave the activity log once
  // every replica has flushed them, so that the next start copies nothing
  // it need not. `flushed` runs once the flush is answered (at once for a
  // plain volume, or when an in-sync replica is away); a flush that fails
  // only leaves more to copy.
  void FlushForStop(std::function<void()> flushed);
  // Writes the mirror state now; `then` (if any) runs once it is durable or
  // failed to be, on the store's thread (not at all for a plain volume or
  // one not yet decided).
  void SaveThen(std::function<void(const absl::Status&)> then);
  // Stops the timers and the worker and closes every replica's
  // session: each transaction still in flight is answered (or fails) and
  // its caller's `done` has run when this returns. Submissions after it
  // fail. Called by the owner of those callers (the gateway's Io streams)
  // before it goes; the destructor calls it too.
  void Close();
  const std::string& name() const { return core_.config.name(); }
  const v1::VolumeConfig& config() const { return core_.config; }

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
  VolumeHealth health() const;

  // Admin (dstctl): see gateway.proto. Each returns once what it changed
  // is durable; the *Then forms call `done` then instead of blocking.
  absl::Status Resync(const v1::ResyncRequest& request);
  void ResyncThen(const v1::ResyncRequest& request,
                  std::function<void(const absl::Status&)> done);
  absl::StatusOr<v1::VerifyReply> Verify(const v1::VerifyRequest& request);
  absl::Status Resolve(const std::string& source);
  void ResolveThen(const std::string& source,
                   std::function<void(const absl::Status&)> done);
  // Grows the volume to `size` bytes (Resizer::Resize). Blocks on the
  // exporters, both forms.
  absl::Status Resize(uint64_t size);
  void ResizeThen(uint64_t size,
                  const std::function<void(const absl::Status&)>& done);

  // "" or the first broken invariant of the mirror state (tests).
  std::string CheckInvariants() const;

 private:
  using Done = std::function<void(const absl::Status&)>;

  void OnReplicaChange(size_t index);
  // OK when every in-sync replica's exporter takes REQUEST_FLAG_FAST_ZERO;
  // else UNIMPLEMENTED (the fast zero fails at once, nothing written). One
  // that takes it and then cannot zero fast fails its transaction: it
  // leaves the set like any failed write, and resync makes it the same.
  absl::Status CanZeroFast() const;
  VolumeHealth HealthLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(core_.mu);

  // --- timers and the worker ---
  // Timers (lag limits, hedged reads) run on the core's `timers`; the
  // worker (generation pushes, resync and promotions, lazy saves: they may
  // block on an exporter) on its `worker`, every kWorkTick and when kicked.
  void KickWorker();
  void Work(bool periodic);
  void UpdateMetrics();

  VolumeCore core_;
  Resyncer resyncer_;         // acts on core_
  ReadRouter reads_;          // acts on core_
  BlockStatus block_status_;  // acts on core_
  WritePath writes_;          // acts on core_
  Fencing fencing_;           // acts on core_
  Resizer resizer_;           // acts on core_
  std::atomic<uint64_t> total_{0};
  std::atomic<uint64_t> failed_{0};
  std::atomic<uint64_t> in_flight_{0};

  absl::Mutex work_mu_;
  bool kicked_ ABSL_GUARDED_BY(work_mu_) = false;  // a Work run is queued

  WriterLease lease_;  // its own lock
};

}  // namespace dst

#endif  // DST_SERVICES_GATEWAY_VOLUME_H_
