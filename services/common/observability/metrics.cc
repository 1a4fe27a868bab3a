// Prometheus metrics: see metrics.h.
#include "services/common/observability/metrics.h"

#include <cctype>
#include <exception>

#include "absl/strings/str_cat.h"

#include "services/common/base/address.h"

namespace dst {

namespace {

// "OP_WRITE_ZEROES" -> "write_zeroes"
std::string OpLabel(v1::Op op) {
  std::string name = v1::Op_Name(op);
  if (name.rfind("OP_", 0) == 0) name = name.substr(3);
  for (char& c : name)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return name;
}

}  // namespace

OpMetrics::OpMetrics(prometheus::Registry& registry, const std::string& prefix,
                     const std::map<std::string, std::string>& labels) {
  auto& requests = prometheus::BuildCounter()
                       .Name(prefix + "_requests_total")
                       .Help("Requests completed, by operation and result.")
                       .Register(registry);
  auto& bytes = prometheus::BuildCounter()
                    .Name(prefix + "_bytes_total")
                    .Help("Payload bytes read or written, by operation.")
                    .Register(registry);
  auto& latency = prometheus::BuildHistogram()
                      .Name(prefix + "_request_duration_seconds")
                      .Help("Time from a request's arrival to its reply.")
                      .Register(registry);
  const prometheus::Histogram::BucketBoundaries buckets = {
      0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
      0.025,   0.05,   0.1,     0.25,   0.5,   1,      2.5,   5};
  for (int i = 0; i < kOps; ++i) {
    if (!v1::Op_IsValid(i) || i == v1::OP_UNSPECIFIED) continue;
    auto op = static_cast<v1::Op>(i);
    std::map<std::string, std::string> with_op = labels;
    with_op["op"] = OpLabel(op);
    std::map<std::string, std::string> ok = with_op, error = with_op;
    ok["result"] = "ok";
    error["result"] = "error";
    ok_[i] = &requests.Add(ok);
    error_[i] = &requests.Add(error);
    bytes_[i] = &bytes.Add(with_op);
    latency_[i] = &latency.Add(with_op, buckets);
  }
}

void OpMetrics::Record(v1::Op op, bool ok, uint64_t bytes,
                       absl::Duration latency) {
  int i = static_cast<int>(op);
  if (i <= 0 || i >= kOps || ok_[i] == nullptr) return;  // refused unknown op
  (ok ? ok_[i] : error_[i])->Increment();
  if (ok && bytes > 0) bytes_[i]->Increment(static_cast<double>(bytes));
  latency_[i]->Observe(absl::ToDoubleSeconds(latency));
}

absl::StatusOr<std::unique_ptr<MetricsServer>> MetricsServer::Start(
    const std::string& address,
    const std::shared_ptr<prometheus::Registry>& registry) {
  absl::StatusOr<Address> parsed = ParseAddress(address);
  if (!parsed.ok() || parsed->kind != Address::Kind::kTcp) {
    return absl::InvalidArgumentError(absl::StrCat(
        "metrics address '", address, "': expected host:port or [v6]:port"));
  }
  try {
    auto exposer = std::make_unique<prometheus::Exposer>(parsed->GrpcTarget());
    exposer->RegisterCollectable(registry);
    return std::unique_ptr<MetricsServer>(
        new MetricsServer(std::move(exposer)));
  } catch (const std::exception& e) {
    return absl::UnavailableError(
        absl::StrCat("cannot serve metrics on ", address, ": ", e.what()));
  }
}

}  // namespace dst
