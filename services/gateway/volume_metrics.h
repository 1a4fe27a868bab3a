// A volume's Prometheus metrics: dst_gateway_* labelled {volume="NAME"},
// and {replica="ADDRESS"} for each replica's. The volume reports events as
// they happen (a request answered, a hedged read, a checksum mismatch, a
// resync copy, a stream up or down) and, from its worker, the state it
// polls (session counters, in-sync and dirty bytes, lag exits, health).
// docs/observability.md lists every metric.
//
// Thread-safe (prometheus-cpp's metrics are); Poll* calls come from one
// thread at a time.
#ifndef DST_SERVICES_GATEWAY_VOLUME_METRICS_H_
#define DST_SERVICES_GATEWAY_VOLUME_METRICS_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/time/time.h"

#include "dst/v1/exporter.pb.h"
#include "services/common/observability/metrics.h"
#include "services/gateway/replica_handle.h"
#include "services/gateway/volume_health.h"

namespace dst {

class VolumeMetrics {
 public:
  VolumeMetrics(prometheus::Registry& registry, const std::string& volume,
                const std::vector<std::string>& replicas);
  VolumeMetrics(const VolumeMetrics&) = delete;
  VolumeMetrics& operator=(const VolumeMetrics&) = delete;

  // --- events ---
  // A client request accepted / answered.
  void RequestStarted();
  void RequestAnswered(v1::Op op, bool ok, uint64_t bytes,
                       absl::Duration latency);
  void HedgedRead();
  void ChecksumMismatch(size_t replica);
  void ResyncCopied(size_t replica, uint64_t bytes);
  void Connected(size_t replica, bool connected);
  // Records the keepalive round trips to the replica's exporter (it holds
  // only the registry's histogram: it may outlive this object).
  std::function<void(absl::Duration)> PingObserver(size_t replica);

  // --- polled (the worker) ---
  // The session's counters so far (forwarded as increases) and its
  // transactions unanswered.
  void PollSession(size_t replica, const SessionCounters& counters,
                   uint64_t pending);
  void PollSync(size_t replica, bool in_sync, uint64_t dirty_bytes);
  // Replicas that left the in-sync set so far (forwarded as an increase).
  void PollLagExits(uint64_t exits);
  void PollHealth(VolumeHealth health);
  // The size clients see (set when it is known, and by each resize).
  void Size(uint64_t bytes);
  // A `dstctl resize` ended: grown, or refused or failed.
  void Resized(bool ok);

 private:
  struct Replica {
    prometheus::Gauge* connected;
    prometheus::Gauge* in_sync;
    prometheus::Gauge* dirty_bytes;
    prometheus::Gauge* in_flight;
    prometheus::Counter* resync_bytes;
    prometheus::Counter* mismatches;
    prometheus::Counter* resends;
    prometheus::Counter* timeouts;
    prometheus::Counter* reconnects;
    prometheus::Histogram* ping;
    SessionCounters seen;  // what PollSession forwarded
  };

  OpMetrics ops_;
  prometheus::Gauge& in_flight_;
  prometheus::Counter& lag_exits_;
  prometheus::Counter& hedged_reads_;
  prometheus::Gauge& size_;
  prometheus::Counter& resizes_ok_;
  prometheus::Counter& resizes_failed_;
  std::vector<prometheus::Gauge*> health_;  // by kVolumeHealths
  std::vector<Replica> replicas_;
  uint64_t exits_seen_ = 0;  // what PollLagExits forwarded
};

}  // namespace dst

#endif  // DST_SERVICES_GATEWAY_VOLUME_METRICS_H_
