// grpc.health.v1.Health/Check, served on the server's loop like every dst
// method (gRPC's default health service uses the callback API, whose
// threads would poll beside the loop: see async_service.h).
//
// "" is the server as a whole; a service name is known once a status was
// set for it. A name never set gets NOT_FOUND, as the protocol says.
//
// Thread-safe.
#ifndef DST_SERVICES_COMMON_RPC_HEALTH_SERVICE_H_
#define DST_SERVICES_COMMON_RPC_HEALTH_SERVICE_H_

#include <map>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

#include "grpc/health/v1/health.grpc.pb.h"
#include "services/common/rpc/async_service.h"

namespace dst {

class HealthService final : public grpc::health::v1::Health::AsyncService,
                            public AsyncService {
 public:
  // "" starts SERVING.
  HealthService();

  // Sets `service`'s status (SERVING when `serving`).
  void SetServingStatus(const std::string& service, bool serving);
  // Sets every known service's status, "" included (at shutdown).
  void SetServingStatus(bool serving);

  void StartServing(const ServerQueue& queue) override;
  grpc::Status Check(grpc::ServerContext* context,
                     const grpc::health::v1::HealthCheckRequest& request,
                     grpc::health::v1::HealthCheckResponse* reply);

 private:
  absl::Mutex mu_;
  std::map<std::string, bool> serving_ ABSL_GUARDED_BY(mu_);
};

}  // namespace dst

#endif  // DST_SERVICES_COMMON_RPC_HEALTH_SERVICE_H_
