// What a volume's parts share: its replicas, its mirror state under one
// lock, its schedulers and metrics, the range lock of modifications, and
// the durability of its state (the state store).
//
// Volume (volume.h) is the facade; the parts that act on this core are the
// Resyncer (resyncer.h) and, inside Volume for now, the write path, the
// read router and fencing. Each part owns its own invariant; this core
// owns one: nothing is acknowledged before the state version it relies on
// is durable (DurableOrWaitLocked), and a fenced volume saves nothing.
//
// Thread-safety: the fields marked ABSL_GUARDED_BY(mu) are read and changed
// under `mu`; the others are set at construction (`slots` themselves, the
// replicas inside are thread-safe) or thread-safe on their own (metrics,
// modifications, the schedulers, the store). Save callbacks run on the
// store's thread, after `mu` is released.
#ifndef DST_SERVICES_GATEWAY_VOLUME_CORE_H_
#define DST_SERVICES_GATEWAY_VOLUME_CORE_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

#include "dst/v1/config.pb.h"
#include "dst/v1/exporter.pb.h"
#include "dst/v1/gateway.pb.h"
#include "services/common/base/scheduler.h"
#include "services/common/security/tls.h"
#include "services/gateway/ha/self_fence.h"
#include "services/gateway/lag_deadlines.h"
#include "services/gateway/mirror_state.h"
#include "services/gateway/range_serializer.h"
#include "services/gateway/replica_handle.h"
#include "services/gateway/state_store.h"
#include "services/gateway/volume_metrics.h"

namespace dst {

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
  // HA mode (null otherwise): the epoch to claim at an exporter holding
  // `held` (the term's epoch, or a new one above it; Aborted once this
  // gateway no longer leads the volume). Without it, a run claims above
  // what each exporter holds.
  std::function<absl::StatusOr<uint64_t>(uint64_t held)> epoch_above;
  // HA mode: the gateway's self-fence (ha/self_fence.h). No reply is sent
  // once it has expired: `deposed` runs instead (the gateway exits; if it
  // returns, the reply becomes UNAVAILABLE).
  const SelfFence* self_fence = nullptr;
  // HA mode: this gateway no longer leads the volume (its self-fence
  // expired, or an exporter holds a newer leader's epoch): it must stop
  // answering at once. Runs on the thread that found out.
  std::function<void(const std::string& why)> deposed;
  // HA mode: adds the leadership to the volume's status (leader, epoch,
  // lease age).
  std::function<void(v1::VolumeStatus*)> add_leadership;
  // The volume's clock and schedulers: "timers" (lag limits, hedged reads)
  // and "worker" (resync, generation pushes, lazy saves; it may block on an
  // exporter). Default: a TimerThread each.
  SchedulerFactory schedulers;
};

// One replica of a volume: its session and what the volume keeps of it
// outside the mirror state.
struct ReplicaSlot {
  std::unique_ptr<ReplicaHandle> replica;
  uint64_t epoch = 0;  // claimed at its exporter this run (0: not yet); mu
  // Its exporter answers OP_BLOCK_STATUS, and zeroes with
  // REQUEST_FLAG_FAST_ZERO (as negotiated); mu.
  bool block_status = false;
  bool fast_zero = false;
  // Its exporter's size as last known (negotiated, or grown since); mu.
  uint64_t size = 0;
  absl::Time next_grow;  // the worker's next Grow of it (the worker's own)
  std::atomic<uint64_t> checksum_mismatches{0};
  absl::Time next_ping;  // the worker's keepalive Ping (the worker's own)
  // What the volume waits on it for, against the lag limit (on `timers`).
  std::unique_ptr<LagDeadlines> lag;
};

class VolumeCore {
 public:
  using Done = std::function<void(const absl::Status&)>;

  VolumeCore(const v1::VolumeConfig& config, const VolumeOptions& options,
             std::vector<std::unique_ptr<ReplicaHandle>> replicas,
             prometheus::Registry& registry);
  VolumeCore(const VolumeCore&) = delete;
  VolumeCore& operator=(const VolumeCore&) = delete;

  absl::Time Now() const { return timers->Now(); }
  bool mirror() const { return slots.size() > 1; }
  ReplicaHandle& replica(size_t index) const { return *slots[index]->replica; }

  // --- durability: the state store ---
  // True when state version `needed` is durable. Else `then` runs once it
  // is (OK) or once the save meant to make it so failed (its error), on
  // the store's thread, and a save starts unless one is running.
  bool DurableOrWaitLocked(uint64_t needed, Done then)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);
  // Saves the current state unless a save is running (one at a time: the
  // next takes every change made meanwhile). A fenced volume saves nothing
  // and fails what waits.
  void SaveLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);
  // Saves after any change that acknowledgements rely on.
  void SaveIfRequiredLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);
  // When the last save started (lazy saves wait a while after it).
  absl::Time saved_at() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    return saved_at_;
  }

  // --- client I/O, which resync yields to ---
  // A client's request arrived (any thread: one relaxed store).
  void NoteClientIo() {
    client_io_ns_.store(absl::ToUnixNanos(Now()), std::memory_order_relaxed);
  }
  // A client's request arrived at `since` or later.
  bool ClientIoSince(absl::Time since) const {
    return client_io_ns_.load(std::memory_order_relaxed) >=
           absl::ToUnixNanos(since);
  }

  // Another gateway owns the replicas now (`why`): the volume stops
  // writing and saving. Logged once.
  void FenceLocked(const std::string& why) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);

  const v1::VolumeConfig config;
  const VolumeOptions options;
  const std::unique_ptr<Scheduler> timers;  // lag limits, hedged reads
  const std::unique_ptr<Scheduler> worker;  // may block on an exporter
  const v1::ChecksumAlgorithm checksum;     // the volume's own ("checksum")
  const std::vector<std::unique_ptr<ReplicaSlot>> slots;
  std::unique_ptr<StateStore> store;  // mirrors only; set by Init
  RangeSerializer modifications;      // overlapping writes, one at a time
  VolumeMetrics metrics;

  mutable absl::Mutex mu;
  MirrorState state ABSL_GUARDED_BY(mu);
  // Whether each replica has a working stream, as its session last said:
  // what plans and acknowledgements go by.
  std::vector<bool> connected ABSL_GUARDED_BY(mu);
  v1::Geometry geometry ABSL_GUARDED_BY(mu);  // size 0 until known
  uint64_t epoch ABSL_GUARDED_BY(mu) = 0;     // the highest claimed
  std::string fenced ABSL_GUARDED_BY(mu);     // why, when fenced

 private:
  void OnSaved(uint64_t version, const absl::Status& status);
  // Fails what waits for durability (fenced: nothing is saved any more).
  void FailWaiters(const absl::Status& why);

  // When the last client request arrived (Unix ns; none yet: the minimum).
  std::atomic<int64_t> client_io_ns_{std::numeric_limits<int64_t>::min()};
  bool saving_ ABSL_GUARDED_BY(mu) = false;  // a save is running
  absl::Time saved_at_ ABSL_GUARDED_BY(mu);
  struct Waiter {
    uint64_t needed;
    Done then;
  };
  std::vector<Waiter> waiters_ ABSL_GUARDED_BY(mu);
};

}  // namespace dst

#endif  // DST_SERVICES_GATEWAY_VOLUME_CORE_H_
