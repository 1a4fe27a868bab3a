// Prometheus metrics shared by the services: the per-operation counters and
// latency histograms every transaction path records, and the HTTP endpoint
// (--metrics=HOST:PORT) that serves them in the text format at /metrics.
//
// OpMetrics is thread-safe (prometheus-cpp metrics are atomic) and resolves
// its label sets once, so recording costs no lookup.
#ifndef DST_SERVICES_COMMON_OBSERVABILITY_METRICS_H_
#define DST_SERVICES_COMMON_OBSERVABILITY_METRICS_H_

#include <array>
#include <map>
#include <memory>
#include <string>

#include <prometheus/counter.h>
#include <prometheus/exposer.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

#include "dst/v1/exporter.pb.h"

namespace dst {

// Counters and a latency histogram per operation, under one prefix and one
// fixed label set (e.g. {volume="vol0"}):
//   <prefix>_requests_total{op,result="ok|error"}
//   <prefix>_bytes_total{op}               payload bytes moved
//   <prefix>_request_duration_seconds{op}  from arrival to reply
class OpMetrics {
 public:
  OpMetrics(prometheus::Registry& registry, const std::string& prefix,
            const std::map<std::string, std::string>& labels);
  void Record(v1::Op op, bool ok, uint64_t bytes, absl::Duration latency);

 private:
  static constexpr int kOps = v1::Op_ARRAYSIZE;
  std::array<prometheus::Counter*, kOps> ok_{};
  std::array<prometheus::Counter*, kOps> error_{};
  std::array<prometheus::Counter*, kOps> bytes_{};
  std::array<prometheus::Histogram*, kOps> latency_{};
};

// Serves a registry at http://ADDRESS/metrics until destroyed.
class MetricsServer {
 public:
  // InvalidArgument for a bad address, Unavailable when it cannot bind.
  static absl::StatusOr<std::unique_ptr<MetricsServer>> Start(
      const std::string& address,
      const std::shared_ptr<prometheus::Registry>& registry);

 private:
  explicit MetricsServer(std::unique_ptr<prometheus::Exposer> exposer)
      : exposer_(std::move(exposer)) {}
  std::unique_ptr<prometheus::Exposer> exposer_;
};

}  // namespace dst

#endif  // DST_SERVICES_COMMON_OBSERVABILITY_METRICS_H_
