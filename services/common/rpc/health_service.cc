// The health service: see health_service.h.
#include "services/common/rpc/health_service.h"

namespace dst {

using grpc::health::v1::HealthCheckRequest;
using grpc::health::v1::HealthCheckResponse;

HealthService::HealthService() { serving_[""] = true; }

void HealthService::SetServingStatus(const std::string& service, bool serving) {
  absl::MutexLock lock(&mu_);
  serving_[service] = serving;
}

void HealthService::SetServingStatus(bool serving) {
  absl::MutexLock lock(&mu_);
  for (auto& [service, status] : serving_) status = serving;
}

void HealthService::StartServing(const ServerQueue& queue) {
  ServeUnary(queue, this, &HealthService::RequestCheck, &HealthService::Check);
}

grpc::Status HealthService::Check(grpc::ServerContext* /*context*/,
                                  const HealthCheckRequest& request,
                                  HealthCheckResponse* reply) {
  absl::MutexLock lock(&mu_);
  auto it = serving_.find(request.service());
  if (it == serving_.end()) {
    return grpc::Status(grpc::StatusCode::NOT_FOUND,
                        "unknown service '" + request.service() + "'");
  }
  reply->set_status(it->second ? HealthCheckResponse::SERVING
                               : HealthCheckResponse::NOT_SERVING);
  return grpc::Status::OK;
}

}  // namespace dst
