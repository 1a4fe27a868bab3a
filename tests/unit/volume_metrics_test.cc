// VolumeMetrics: what the volume reports reaches the registry under the
// documented names and labels; polled counters are forwarded as increases.
#include "services/gateway/volume_metrics.h"

#include <map>
#include <string>

#include <gtest/gtest.h>
#include <prometheus/registry.h>

namespace dst {
namespace {

// The value of the series `name`{labels} (a counter's or gauge's; a
// histogram's sample count), or -1 when there is none.
double Value(prometheus::Registry& registry, const std::string& name,
             const std::map<std::string, std::string>& labels) {
  for (const prometheus::MetricFamily& family : registry.Collect()) {
    if (family.name != name) continue;
    for (const prometheus::ClientMetric& metric : family.metric) {
      std::map<std::string, std::string> have;
      for (const auto& label : metric.label) have[label.name] = label.value;
      if (have != labels) continue;
      switch (family.type) {
        case prometheus::MetricType::Counter:
          return metric.counter.value;
        case prometheus::MetricType::Gauge:
          return metric.gauge.value;
        case prometheus::MetricType::Histogram:
          return static_cast<double>(metric.histogram.sample_count);
        default:
          return -1;
      }
    }
  }
  return -1;
}

const std::map<std::string, std::string> kVolume = {{"volume", "vol0"}};
const std::map<std::string, std::string> kB = {{"volume", "vol0"},
                                               {"replica", "b:7000"}};

class VolumeMetricsTest : public ::testing::Test {
 protected:
  prometheus::Registry registry_;
  VolumeMetrics metrics_{registry_, "vol0", {"a:7000", "b:7000"}};
};

TEST_F(VolumeMetricsTest, SessionCountersAreForwardedAsIncreases) {
  metrics_.PollSession(1, SessionCounters{3, 1, 2}, 7);
  metrics_.PollSession(1, SessionCounters{5, 1, 2}, 0);
  // A counter never goes back (a new session's counters are smaller).
  metrics_.PollSession(1, SessionCounters{4, 0, 0}, 0);
  EXPECT_EQ(Value(registry_, "dst_gateway_replica_resends_total", kB), 5);
  EXPECT_EQ(Value(registry_, "dst_gateway_replica_timeouts_total", kB), 1);
  EXPECT_EQ(Value(registry_, "dst_gateway_replica_reconnects_total", kB), 2);
  EXPECT_EQ(Value(registry_, "dst_gateway_replica_transactions_in_flight", kB),
            0);
  EXPECT_EQ(Value(registry_, "dst_gateway_replica_resends_total",
                  {{"volume", "vol0"}, {"replica", "a:7000"}}),
            0);
}

TEST_F(VolumeMetricsTest, LagExitsAreForwardedAsIncreases) {
  metrics_.PollLagExits(2);
  metrics_.PollLagExits(2);
  metrics_.PollLagExits(5);
  EXPECT_EQ(Value(registry_, "dst_gateway_replica_lag_exits_total", kVolume),
            5);
}

TEST_F(VolumeMetricsTest, OneHealthSeriesIsSet) {
  metrics_.PollHealth(VolumeHealth::kReady);
  metrics_.PollHealth(VolumeHealth::kDegraded);
  for (VolumeHealth health : kVolumeHealths) {
    EXPECT_EQ(Value(registry_, "dst_gateway_volume_state",
                    {{"volume", "vol0"}, {"state", HealthName(health)}}),
              health == VolumeHealth::kDegraded ? 1 : 0)
        << HealthName(health);
  }
}

TEST_F(VolumeMetricsTest, ReplicaEventsAndStateReachTheirSeries) {
  metrics_.Connected(1, true);
  metrics_.PollSync(1, false, 4 << 20);
  metrics_.ResyncCopied(1, 1 << 20);
  metrics_.ResyncCopied(1, 1 << 20);
  metrics_.ChecksumMismatch(1);
  metrics_.PingObserver(1)(absl::Microseconds(300));
  EXPECT_EQ(Value(registry_, "dst_gateway_replica_connected", kB), 1);
  EXPECT_EQ(Value(registry_, "dst_gateway_replica_in_sync", kB), 0);
  EXPECT_EQ(Value(registry_, "dst_gateway_replica_dirty_bytes", kB), 4 << 20);
  EXPECT_EQ(Value(registry_, "dst_gateway_resync_bytes_total", kB), 2 << 20);
  EXPECT_EQ(Value(registry_, "dst_gateway_checksum_mismatches_total", kB), 1);
  EXPECT_EQ(Value(registry_, "dst_gateway_replica_ping_seconds", kB), 1);
}

TEST_F(VolumeMetricsTest, RequestsInFlightAndAnswered) {
  metrics_.RequestStarted();
  metrics_.RequestStarted();
  metrics_.RequestAnswered(v1::OP_WRITE, true, 4096, absl::Microseconds(80));
  metrics_.HedgedRead();
  EXPECT_EQ(Value(registry_, "dst_gateway_transactions_in_flight", kVolume), 1);
  EXPECT_EQ(Value(registry_, "dst_gateway_hedged_reads_total", kVolume), 1);
}

}  // namespace
}  // namespace dst
