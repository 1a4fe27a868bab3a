// A volume's Prometheus metrics; see volume_metrics.h.
#include "services/gateway/volume_metrics.h"

#include <map>

namespace dst {

namespace {

prometheus::Family<prometheus::Gauge>& Gauges(prometheus::Registry& registry,
                                              const char* name,
                                              const char* help) {
  return prometheus::BuildGauge().Name(name).Help(help).Register(registry);
}

prometheus::Family<prometheus::Counter>& Counters(
    prometheus::Registry& registry, const char* name, const char* help) {
  return prometheus::BuildCounter().Name(name).Help(help).Register(registry);
}

constexpr char kResizesHelp[] =
    "dstctl resize requests, by outcome: grown (\"ok\"), or refused or "
    "failed (\"failed\").";

// Adds the increase from `seen` to `now` to `counter`.
void Forward(uint64_t now, uint64_t& seen, prometheus::Counter* counter) {
  if (now > seen) {
    counter->Increment(static_cast<double>(now - seen));
    seen = now;
  }
}

}  // namespace

VolumeMetrics::VolumeMetrics(prometheus::Registry& registry,
                             const std::string& volume,
                             const std::vector<std::string>& replicas)
    : ops_(registry, "dst_gateway", {{"volume", volume}}),
      in_flight_(Gauges(registry, "dst_gateway_transactions_in_flight",
                        "Client requests accepted and not yet answered.")
                     .Add({{"volume", volume}})),
      lag_exits_(Counters(registry, "dst_gateway_replica_lag_exits_total",
                          "Replicas that left the in-sync set for lagging past "
                          "lag_limit_ms or failing a transaction.")
                     .Add({{"volume", volume}})),
      hedged_reads_(
          Counters(registry, "dst_gateway_hedged_reads_total",
                   "Reads also sent to another replica after lag_limit_ms.")
              .Add({{"volume", volume}})),
      size_(Gauges(registry, "dst_gateway_volume_size_bytes",
                   "The volume's size as clients see it (0 until a replica "
                   "negotiated); it grows with dstctl resize.")
                .Add({{"volume", volume}})),
      resizes_ok_(
          Counters(registry, "dst_gateway_volume_resizes_total", kResizesHelp)
              .Add({{"volume", volume}, {"outcome", "ok"}})),
      resizes_failed_(
          Counters(registry, "dst_gateway_volume_resizes_total", kResizesHelp)
              .Add({{"volume", volume}, {"outcome", "failed"}})) {
  auto& states =
      Gauges(registry, "dst_gateway_volume_state",
             "1 for the volume's current state (ready, degraded, waiting, "
             "diverged, fenced, unavailable).");
  for (VolumeHealth health : kVolumeHealths) {
    health_.push_back(
        &states.Add({{"volume", volume}, {"state", HealthName(health)}}));
  }
  auto& connected =
      Gauges(registry, "dst_gateway_replica_connected",
             "1 while the gateway has a working stream to the replica.");
  auto& in_sync = Gauges(registry, "dst_gateway_replica_in_sync",
                         "1 while the replica is in the in-sync set.");
  auto& dirty = Gauges(registry, "dst_gateway_replica_dirty_bytes",
                       "Bytes of dirty regions the replica still needs.");
  auto& in_flight =
      Gauges(registry, "dst_gateway_replica_transactions_in_flight",
             "Transactions waiting for or sent to the replica, unanswered.");
  auto& resync = Counters(registry, "dst_gateway_resync_bytes_total",
                          "Bytes copied to the replica by resync.");
  auto& mismatches =
      Counters(registry, "dst_gateway_checksum_mismatches_total",
               "Reads from the replica whose data failed its checksum (each "
               "failed over to another replica).");
  auto& resends = Counters(registry, "dst_gateway_replica_resends_total",
                           "Transactions sent to the replica again after a "
                           "lost stream or a timeout.");
  auto& timeouts = Counters(
      registry, "dst_gateway_replica_timeouts_total",
      "Streams to the replica given up for an unanswered transaction.");
  auto& reconnects = Counters(registry, "dst_gateway_replica_reconnects_total",
                              "Streams to the replica re-established.");
  auto& ping =
      prometheus::BuildHistogram()
          .Name("dst_gateway_replica_ping_seconds")
          .Help("Round trip of the keepalive Ping to the exporter, every 5 s.")
          .Register(registry);
  for (const std::string& address : replicas) {
    const std::map<std::string, std::string> labels = {{"volume", volume},
                                                       {"replica", address}};
    replicas_.push_back(Replica{
        &connected.Add(labels), &in_sync.Add(labels), &dirty.Add(labels),
        &in_flight.Add(labels), &resync.Add(labels), &mismatches.Add(labels),
        &resends.Add(labels), &timeouts.Add(labels), &reconnects.Add(labels),
        &ping.Add(labels,
                  prometheus::Histogram::BucketBoundaries{
                      0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                      0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5}),
        SessionCounters{}});
  }
}

void VolumeMetrics::RequestStarted() { in_flight_.Increment(); }

void VolumeMetrics::RequestAnswered(v1::Op op, bool ok, uint64_t bytes,
                                    absl::Duration latency) {
  in_flight_.Decrement();
  ops_.Record(op, ok, bytes, latency);
}

void VolumeMetrics::HedgedRead() { hedged_reads_.Increment(); }

void VolumeMetrics::Size(uint64_t bytes) {
  size_.Set(static_cast<double>(bytes));
}

void VolumeMetrics::Resized(bool ok) {
  (ok ? resizes_ok_ : resizes_failed_).Increment();
}

void VolumeMetrics::ChecksumMismatch(size_t replica) {
  replicas_[replica].mismatches->Increment();
}

void VolumeMetrics::ResyncCopied(size_t replica, uint64_t bytes) {
  replicas_[replica].resync_bytes->Increment(static_cast<double>(bytes));
}

void VolumeMetrics::Connected(size_t replica, bool connected) {
  replicas_[replica].connected->Set(connected ? 1 : 0);
}

std::function<void(absl::Duration)> VolumeMetrics::PingObserver(
    size_t replica) {
  prometheus::Histogram* histogram = replicas_[replica].ping;
  return [histogram](absl::Duration rtt) {
    histogram->Observe(absl::ToDoubleSeconds(rtt));
  };
}

void VolumeMetrics::PollSession(size_t replica, const SessionCounters& counters,
                                uint64_t pending) {
  Replica& r = replicas_[replica];
  Forward(counters.resends, r.seen.resends, r.resends);
  Forward(counters.timeouts, r.seen.timeouts, r.timeouts);
  Forward(counters.reconnects, r.seen.reconnects, r.reconnects);
  r.in_flight->Set(static_cast<double>(pending));
}

void VolumeMetrics::PollSync(size_t replica, bool in_sync,
                             uint64_t dirty_bytes) {
  replicas_[replica].in_sync->Set(in_sync ? 1 : 0);
  replicas_[replica].dirty_bytes->Set(static_cast<double>(dirty_bytes));
}

void VolumeMetrics::PollLagExits(uint64_t exits) {
  Forward(exits, exits_seen_, &lag_exits_);
}

void VolumeMetrics::PollHealth(VolumeHealth health) {
  for (size_t i = 0; i < health_.size(); ++i) {
    health_[i]->Set(health == kVolumeHealths[i] ? 1 : 0);
  }
}

}  // namespace dst
