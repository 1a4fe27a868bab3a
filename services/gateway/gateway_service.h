// The Gateway gRPC service: Open (negotiation), the Io transaction stream,
// and the admin RPCs ListVolumes and Status, over the configured volumes.
//
// Thread-safe. Volumes are owned; Drain() before destroying.
#ifndef DST_SERVICES_GATEWAY_GATEWAY_SERVICE_H_
#define DST_SERVICES_GATEWAY_GATEWAY_SERVICE_H_

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/time/time.h"

#include "dst/v1/gateway.grpc.pb.h"
#include "services/common/security/acl.h"
#include "services/common/security/client_limiter.h"
#include "services/common/transport/server_stream.h"
#include "services/gateway/volume.h"

namespace dst {

// Every method is async, on the server's loop (async_service.h): Io
// through a StreamAcceptor, the unary methods on the server's unary pool
// (Verify, which reads the whole volume, on a thread of its own).
class GatewayService final : public v1::Gateway::AsyncService,
                             public AsyncService {
 public:
  // `acl` (not owned; null: everyone may do everything) decides who may
  // read (open read-only, status) and who may write (read-write opens,
  // writes, admin commands), on every call and request.
  // ACL refusals are counted in `registry` when given.
  explicit GatewayService(std::vector<std::unique_ptr<Volume>> volumes,
                          const AclHolder* acl = nullptr,
                          prometheus::Registry* registry = nullptr,
                          int max_streams_per_client = 64);
  // Closes the volumes (what is still in flight is answered or fails),
  // then waits for the Io streams, which call into the volumes and the
  // service until they are deleted. The server has stopped by then.
  ~GatewayService() override;

  void Start();  // connects every volume's replicas
  bool Drain(absl::Time deadline);
  // True when every volume serves I/O (ready or degraded): health.
  bool Ready() const;
  // Saves every mirror's state now (at exit).
  void SaveState();

  void StartServing(const ServerQueue& queue) override;
  // Decides what to do with a new Io call (volume, ACL, lease, limits).
  StreamStart Admit(grpc::ServerContext* context);
  grpc::Status Open(grpc::ServerContext* context,
                    const v1::OpenRequest& request, v1::OpenReply* reply);
  grpc::Status ListVolumes(grpc::ServerContext* context,
                           const v1::ListVolumesRequest& request,
                           v1::ListVolumesReply* reply);
  grpc::Status Status(grpc::ServerContext* context,
                      const v1::StatusRequest& request, v1::StatusReply* reply);
  grpc::Status Resync(grpc::ServerContext* context,
                      const v1::ResyncRequest& request,
                      v1::VolumeStatus* reply);
  grpc::Status Verify(grpc::ServerContext* context,
                      const v1::VerifyRequest& request, v1::VerifyReply* reply);
  grpc::Status Resolve(grpc::ServerContext* context,
                       const v1::ResolveRequest& request,
                       v1::VolumeStatus* reply);

 private:
  class Handler;
  Volume* Find(const std::string& name) const;
  // The peer's access, or PERMISSION_DENIED when it is below `wanted`.
  absl::StatusOr<Access> Allowed(const grpc::ServerContextBase& context,
                                 Access wanted, const std::string& what) const;
  Access AccessOf(const Peer& peer) const;
  // The volume, or NOT_FOUND.
  absl::StatusOr<Volume*> FindVolume(const std::string& name) const;

  const absl::Time started_ = absl::Now();
  std::vector<std::unique_ptr<Volume>> volumes_;
  std::map<std::string, Volume*> by_name_;
  const AclHolder* const acl_;
  ClientLimiter limiter_;
  prometheus::Counter* acl_refusals_ = nullptr;
  void CountRefusal() const {
    if (acl_refusals_ != nullptr) acl_refusals_->Increment();
  }
  StreamRegistry streams_;
  StreamAcceptor acceptor_;
};

}  // namespace dst

#endif  // DST_SERVICES_GATEWAY_GATEWAY_SERVICE_H_
