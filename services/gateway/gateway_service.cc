// The Gateway gRPC service: see gateway_service.h.
#include "services/gateway/gateway_service.h"

#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"

#include "services/common/log.h"
#include "services/common/request_validation.h"
#include "services/common/status.h"

namespace dst {

// One Io stream's requests, all for one volume.
class GatewayService::Handler : public StreamHandler {
 public:
  // A read-write handler holds the volume's lease while it lives.
  Handler(const GatewayService* service, Volume* volume, bool read_only,
          Peer peer, std::unique_ptr<ClientLimiter::Slot> slot)
      : service_(service),
        volume_(volume),
        read_only_(read_only),
        peer_(std::move(peer)),
        slot_(std::move(slot)) {}
  ~Handler() override {
    if (!read_only_) volume_->DetachWriter();
  }

  void Handle(v1::Request&& request, Done done) override {
    // The ACL on every request: a reload (SIGHUP) applies to open streams.
    const Access access = service_->AccessOf(peer_);
    if (access == Access::kNone ||
        (access == Access::kRead && IsModifying(request.op()))) {
      service_->CountRefusal();
      done(ErrorReply(request.id(),
                      absl::PermissionDeniedError(absl::StrCat(
                          "acl: ", peer_.text,
                          access == Access::kNone ? " is not allowed"
                                                  : " may only read"))));
      return;
    }
    volume_->Submit(std::move(request), read_only_, std::move(done));
  }

 private:
  const GatewayService* const service_;
  Volume* const volume_;
  const bool read_only_;
  const Peer peer_;
  const std::unique_ptr<ClientLimiter::Slot> slot_;  // the client's stream
};

GatewayService::GatewayService(std::vector<std::unique_ptr<Volume>> volumes,
                               const AclHolder* acl,
                               prometheus::Registry* registry,
                               int max_streams_per_client)
    : volumes_(std::move(volumes)),
      acl_(acl),
      limiter_(max_streams_per_client) {
  if (registry != nullptr) {
    acl_refusals_ = &prometheus::BuildCounter()
                         .Name("dst_gateway_acl_refusals_total")
                         .Help("Calls and requests the gateway's ACL refused.")
                         .Register(*registry)
                         .Add({});
  }
  for (const auto& volume : volumes_) by_name_[volume->name()] = volume.get();
}

void GatewayService::Start() {
  for (const auto& volume : volumes_) volume->Start();
}

bool GatewayService::Drain(absl::Time deadline) {
  streams_.DrainAll();
  return streams_.WaitEmpty(deadline);
}

bool GatewayService::Ready() const {
  for (const auto& volume : volumes_) {
    const std::string state = volume->state();
    if (state != "ready" && state != "degraded") return false;
  }
  return true;
}

void GatewayService::SaveState() {
  for (const auto& volume : volumes_) volume->Save();
}

namespace {

grpc::Status UnknownVolume(const std::string& name) {
  return grpc::Status(grpc::StatusCode::NOT_FOUND,
                      absl::StrCat("no volume named '", name, "'"));
}

}  // namespace

Volume* GatewayService::FindOrFinish(const std::string& name,
                                     grpc::ServerUnaryReactor* reactor) const {
  Volume* volume = Find(name);
  if (volume == nullptr) {
    reactor->Finish(UnknownVolume(name));
  }
  return volume;
}

Access GatewayService::AccessOf(const Peer& peer) const {
  return acl_ == nullptr ? Access::kReadWrite : acl_->Check(peer);
}

absl::StatusOr<Access> GatewayService::Allowed(
    const grpc::ServerContextBase& context, Access wanted,
    const std::string& what) const {
  const Peer peer = PeerOf(context);
  const Access access = AccessOf(peer);
  if (static_cast<int>(access) >= static_cast<int>(wanted)) return access;
  CountRefusal();
  return absl::PermissionDeniedError(absl::StrCat(
      "acl: ", peer.text, access == Access::kNone ? " is not allowed" : "",
      access == Access::kRead ? " may only read" : "", " (", what, ")"));
}

Volume* GatewayService::Find(const std::string& name) const {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : it->second;
}

grpc::ServerUnaryReactor* GatewayService::Open(
    grpc::CallbackServerContext* context, const v1::OpenRequest* request,
    v1::OpenReply* reply) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::StatusOr<Access> allowed = Allowed(*context, Access::kRead, "open");
  if (!allowed.ok()) {
    reactor->Finish(ToGrpcStatus(allowed.status()));
    return reactor;
  }
  Volume* volume = FindOrFinish(request->volume(), reactor);
  if (volume == nullptr) return reactor;
  absl::StatusOr<v1::Geometry> geometry =
      volume->Open(request->read_only() || *allowed == Access::kRead,
                   request->lease_token(), request->client_id());
  if (!geometry.ok()) {
    reactor->Finish(ToGrpcStatus(geometry.status()));
    return reactor;
  }
  *reply->mutable_geometry() = *geometry;
  DST_LOG(Info, "gateway: volume %s opened %s by %s (%s)", volume->name(),
          geometry->read_only() ? "read-only" : "read-write",
          request->client_id().empty() ? "?" : request->client_id(),
          PeerOf(*context).text);
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerBidiReactor<v1::RequestBatch, v1::ReplyBatch>* GatewayService::Io(
    grpc::CallbackServerContext* context) {
  std::string name = ClientMetadata(context, "dst-volume");
  Volume* volume = Find(name);
  if (volume == nullptr) return RejectStream(UnknownVolume(name));
  std::string access = ClientMetadata(context, "dst-access");
  if (!access.empty() && access != "ro" && access != "rw") {
    return RejectStream(grpc::Status(
        grpc::StatusCode::INVALID_ARGUMENT,
        absl::StrCat("dst-access must be ro or rw, not '", access, "'")));
  }
  absl::StatusOr<Access> allowed = Allowed(*context, Access::kRead, "I/O");
  if (!allowed.ok()) return RejectStream(ToGrpcStatus(allowed.status()));
  Peer peer = PeerOf(*context);
  absl::StatusOr<std::unique_ptr<ClientLimiter::Slot>> slot =
      limiter_.Acquire(peer);
  if (!slot.ok()) return RejectStream(ToGrpcStatus(slot.status()));
  const bool read_only = access == "ro" || volume->config().read_only() ||
                         *allowed == Access::kRead;
  if (!read_only) {
    absl::Status lease =
        volume->AttachWriter(ClientMetadata(context, "dst-lease"));
    if (!lease.ok()) return RejectStream(ToGrpcStatus(lease));
  }
  StreamOptions options;
  options.max_in_flight = static_cast<int>(volume->config().max_in_flight());
  options.max_in_flight_bytes =
      static_cast<int64_t>(volume->config().max_in_flight_bytes());
  return ServeStream(
      std::make_unique<Handler>(this, volume, read_only, std::move(peer),
                                *std::move(slot)),
      options, &streams_);
}

grpc::ServerUnaryReactor* GatewayService::ListVolumes(
    grpc::CallbackServerContext* context, const v1::ListVolumesRequest*,
    v1::ListVolumesReply* reply) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::StatusOr<Access> allowed = Allowed(*context, Access::kRead, "status");
  if (!allowed.ok()) {
    reactor->Finish(ToGrpcStatus(allowed.status()));
    return reactor;
  }
  for (const auto& volume : volumes_) *reply->add_volumes() = volume->Status();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* GatewayService::Status(
    grpc::CallbackServerContext* context, const v1::StatusRequest* request,
    v1::StatusReply* reply) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::StatusOr<Access> allowed = Allowed(*context, Access::kRead, "status");
  if (!allowed.ok()) {
    reactor->Finish(ToGrpcStatus(allowed.status()));
    return reactor;
  }
  reply->set_version(DST_VERSION);
  reply->set_uptime_seconds(
      static_cast<uint64_t>(absl::ToInt64Seconds(absl::Now() - started_)));
  if (!request->volume().empty()) {
    Volume* volume = Find(request->volume());
    if (volume == nullptr) {
      reactor->Finish(UnknownVolume(request->volume()));
      return reactor;
    }
    *reply->add_volumes() = volume->Status();
  } else {
    for (const auto& volume : volumes_)
      *reply->add_volumes() = volume->Status();
  }
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* GatewayService::Resync(
    grpc::CallbackServerContext* context, const v1::ResyncRequest* request,
    v1::VolumeStatus* reply) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::StatusOr<Access> allowed =
      Allowed(*context, Access::kReadWrite, "resync");
  if (!allowed.ok()) {
    reactor->Finish(ToGrpcStatus(allowed.status()));
    return reactor;
  }
  Volume* volume = FindOrFinish(request->volume(), reactor);
  if (volume == nullptr) return reactor;
  absl::Status status = volume->Resync(*request);
  if (status.ok()) {
    *reply = volume->Status();
    DST_LOG(Info, "gateway: volume %s: resync %s%s%s by %s", volume->name(),
            request->stop() ? "stopped" : "started",
            request->full()
                ? absl::StrCat(", full copy to ", request->replica())
                : "",
            request->has_rate_bytes()
                ? absl::StrCat(", rate ", request->rate_bytes(), " bytes/s")
                : "",
            PeerOf(*context).text);
  }
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

grpc::ServerUnaryReactor* GatewayService::Verify(
    grpc::CallbackServerContext* context, const v1::VerifyRequest* request,
    v1::VerifyReply* reply) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::StatusOr<Access> allowed =
      Allowed(*context, Access::kReadWrite, "verify");
  if (!allowed.ok()) {
    reactor->Finish(ToGrpcStatus(allowed.status()));
    return reactor;
  }

  Volume* volume = FindOrFinish(request->volume(), reactor);
  if (volume == nullptr) return reactor;
  // A verify reads the whole volume: off gRPC's callback threads.
  std::thread([volume, request, reply, reactor] {
    absl::StatusOr<v1::VerifyReply> verified = volume->Verify(*request);
    const grpc::Status status = ToGrpcStatus(verified.status());
    if (verified.ok()) *reply = *std::move(verified);
    reactor->Finish(status);
  }).detach();
  return reactor;
}

grpc::ServerUnaryReactor* GatewayService::Resolve(
    grpc::CallbackServerContext* context, const v1::ResolveRequest* request,
    v1::VolumeStatus* reply) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::StatusOr<Access> allowed =
      Allowed(*context, Access::kReadWrite, "resolve");
  if (!allowed.ok()) {
    reactor->Finish(ToGrpcStatus(allowed.status()));
    return reactor;
  }
  Volume* volume = FindOrFinish(request->volume(), reactor);
  if (volume == nullptr) return reactor;
  absl::Status status = volume->Resolve(request->source());
  if (status.ok()) *reply = volume->Status();
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

}  // namespace dst
