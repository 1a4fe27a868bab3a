// The Gateway gRPC service: Open (negotiation), the Io transaction stream,
// and the admin RPCs ListVolumes and Status, over the configured volumes.
// In HA mode a volume is served once this gateway leads it (AddVolume);
// until then calls for it are answered UNAVAILABLE with its leader.
//
// Thread-safe. Volumes are owned; Drain() before destroying.
#ifndef DST_SERVICES_GATEWAY_GATEWAY_SERVICE_H_
#define DST_SERVICES_GATEWAY_GATEWAY_SERVICE_H_

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
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

  // HA mode: the volumes this gateway is configured with but does not
  // lead. `standby(name)` gives such a volume's status here (state
  // "standby", its leader when known; may ask etcd: called on the unary
  // pool only), nullopt for a name not configured here. Set before the
  // server starts.
  using StandbyStatus =
      std::function<std::optional<v1::VolumeStatus>(const std::string& name)>;
  void SetStandby(std::vector<std::string> names, StandbyStatus standby);
  // HA mode: this gateway was elected leader of `volume` (one of the
  // standby names): it is served from now on. Its replicas connect now.
  void AddVolume(std::unique_ptr<Volume> volume);

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
  grpc::Status Resize(grpc::ServerContext* context,
                      const v1::ResizeRequest& request,
                      v1::VolumeStatus* reply);

 private:
  class Handler;
  Volume* Find(const std::string& name) const;
  std::vector<Volume*> Volumes() const;
  bool IsStandby(const std::string& name) const;
  // Every volume's status: those served, then those led elsewhere.
  void AddStatuses(
      google::protobuf::RepeatedPtrField<v1::VolumeStatus>* statuses) const;
  // The peer's access, or PERMISSION_DENIED when it is below `wanted`.
  absl::StatusOr<Access> Allowed(const grpc::ServerContextBase& context,
                                 Access wanted, const std::string& what) const;
  Access AccessOf(const Peer& peer) const;
  // The volume, or NOT_FOUND; for a volume led elsewhere (HA),
  // UNAVAILABLE naming the leader, whose address also goes to the call's
  // trailing metadata as "dst-leader" (clients follow it).
  absl::StatusOr<Volume*> FindVolume(grpc::ServerContext* context,
                                     const std::string& name) const;

  const absl::Time started_ = absl::Now();
  mutable absl::Mutex mu_;
  std::vector<std::unique_ptr<Volume>> volumes_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, Volume*> by_name_ ABSL_GUARDED_BY(mu_);
  bool started_volumes_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::string> standby_names_;  // set before serving
  StandbyStatus standby_;
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
