// The Gateway gRPC service: see gateway_service.h.
#include "services/gateway/gateway_service.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"

#include "services/common/base/log.h"
#include "services/common/base/status.h"
#include "services/common/protocol/request_validation.h"
#include "services/common/transport/transaction_stream.h"

namespace dst {

namespace {
// How long a closing service waits for its Io streams once every request
// has been answered (their calls end as the stopped server cancels them).
constexpr absl::Duration kStreamsGoneTimeout = absl::Seconds(10);
}  // namespace

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

  void Handle(v1::Request&& request, Payload data, Done done) override {
    // The ACL on every request: a reload (SIGHUP) applies to open streams.
    const Access access = service_->AccessOf(peer_);
    if (access == Access::kNone ||
        (access == Access::kRead && IsModifying(request.op()))) {
      service_->CountRefusal();
      done(ErrorReply(request.id(),
                      absl::PermissionDeniedError(absl::StrCat(
                          "acl: ", peer_.text,
                          access == Access::kNone ? " is not allowed"
                                                  : " may only read"))),
           Payload());
      return;
    }
    volume_->Submit(std::move(request), std::move(data), read_only_,
                    std::move(done));
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
      limiter_(max_streams_per_client),
      acceptor_(this, kGatewayIoMethod, &GatewayService::Admit, &streams_) {
  if (registry != nullptr) {
    acl_refusals_ = &prometheus::BuildCounter()
                         .Name("dst_gateway_acl_refusals_total")
                         .Help("Calls and requests the gateway's ACL refused.")
                         .Register(*registry)
                         .Add({});
  }
  for (const auto& volume : volumes_) by_name_[volume->name()] = volume.get();
}

GatewayService::~GatewayService() {
  for (Volume* volume : Volumes()) volume->Close();
  if (!Drain(absl::Now() + kStreamsGoneTimeout)) {
    DST_LOG(Error, "gateway: Io streams still open %s after the volumes closed",
            absl::FormatDuration(kStreamsGoneTimeout));
  }
}

void GatewayService::SetStandby(std::vector<std::string> names,
                                StandbyStatus standby) {
  standby_names_ = std::move(names);
  standby_ = std::move(standby);
}

void GatewayService::AddVolume(std::unique_ptr<Volume> volume) {
  Volume* v = volume.get();
  bool start;
  {
    absl::MutexLock lock(&mu_);
    by_name_[v->name()] = v;
    volumes_.push_back(std::move(volume));
    start = started_volumes_;
  }
  if (start) v->Start();
}

std::vector<Volume*> GatewayService::Volumes() const {
  absl::MutexLock lock(&mu_);
  std::vector<Volume*> volumes;
  for (const auto& volume : volumes_) volumes.push_back(volume.get());
  return volumes;
}

bool GatewayService::IsStandby(const std::string& name) const {
  return std::find(standby_names_.begin(), standby_names_.end(), name) !=
         standby_names_.end();
}

void GatewayService::Start() {
  std::vector<Volume*> volumes;
  {
    absl::MutexLock lock(&mu_);
    started_volumes_ = true;
    for (const auto& volume : volumes_) volumes.push_back(volume.get());
  }
  for (Volume* volume : volumes) volume->Start();
}

bool GatewayService::Drain(absl::Time deadline) {
  streams_.DrainAll();
  return streams_.WaitEmpty(deadline);
}

bool GatewayService::Ready() const {
  for (Volume* volume : Volumes()) {
    if (!Serving(volume->health())) return false;
  }
  return true;
}

void GatewayService::SaveState() {
  for (Volume* volume : Volumes()) volume->Save();
}

namespace {

absl::Status UnknownVolume(const std::string& name) {
  return absl::NotFoundError(absl::StrCat("no volume named '", name, "'"));
}

}  // namespace

absl::StatusOr<Volume*> GatewayService::FindVolume(
    grpc::ServerContext* context, const std::string& name) const {
  Volume* volume = Find(name);
  if (volume != nullptr) return volume;
  std::optional<v1::VolumeStatus> standby;
  if (IsStandby(name)) standby = standby_(name);
  if (!standby) return UnknownVolume(name);
  if (!standby->leader_address().empty()) {
    context->AddTrailingMetadata("dst-leader", standby->leader_address());
  }
  return absl::UnavailableError(absl::StrCat(
      "this gateway does not lead volume ", name, ": ", standby->message()));
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
  absl::MutexLock lock(&mu_);
  auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : it->second;
}

grpc::Status GatewayService::Open(grpc::ServerContext* context,
                                  const v1::OpenRequest& request,
                                  v1::OpenReply* reply) {
  absl::StatusOr<Access> allowed = Allowed(*context, Access::kRead, "open");
  if (!allowed.ok()) {
    return ToGrpcStatus(allowed.status());
  }
  absl::StatusOr<Volume*> found = FindVolume(context, request.volume());
  if (!found.ok()) return ToGrpcStatus(found.status());
  Volume* volume = *found;
  absl::StatusOr<v1::Geometry> geometry =
      volume->Open(request.read_only() || *allowed == Access::kRead,
                   request.lease_token(), request.client_id());
  if (!geometry.ok()) {
    return ToGrpcStatus(geometry.status());
  }
  *reply->mutable_geometry() = *geometry;
  DST_LOG(Info, "gateway: volume %s opened %s by %s (%s)", volume->name(),
          geometry->read_only() ? "read-only" : "read-write",
          request.client_id().empty() ? "?" : request.client_id(),
          PeerOf(*context).text);
  return grpc::Status::OK;
}

StreamStart GatewayService::Admit(grpc::ServerContext* context) {
  std::string name = ClientMetadata(context, "dst-volume");
  Volume* volume = Find(name);
  if (volume == nullptr) {
    // A volume led elsewhere: the client's reconnection opens it again,
    // and the Open names the leader.
    return RejectStream(ToGrpcStatus(
        IsStandby(name) ? absl::UnavailableError(absl::StrCat(
                              "this gateway does not lead volume ", name))
                        : UnknownVolume(name)));
  }
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
      options);
}

void GatewayService::StartServing(const ServerQueue& queue) {
  ServeUnary(queue, this, &GatewayService::RequestOpen, &GatewayService::Open);
  ServeUnary(queue, this, &GatewayService::RequestListVolumes,
             &GatewayService::ListVolumes);
  ServeUnary(queue, this, &GatewayService::RequestStatus,
             &GatewayService::Status);
  ServeUnary(queue, this, &GatewayService::RequestResync,
             &GatewayService::Resync);
  ServeUnary(queue, this, &GatewayService::RequestVerify,
             &GatewayService::Verify, UnaryRunsOn::kOwnThread);
  ServeUnary(queue, this, &GatewayService::RequestResolve,
             &GatewayService::Resolve);
  // Waits on every exporter's Grow: not on the shared pool.
  ServeUnary(queue, this, &GatewayService::RequestResize,
             &GatewayService::Resize, UnaryRunsOn::kOwnThread);
  acceptor_.Start(queue);
}

void GatewayService::AddStatuses(
    google::protobuf::RepeatedPtrField<v1::VolumeStatus>* statuses) const {
  for (Volume* volume : Volumes()) *statuses->Add() = volume->Status();
  for (const std::string& name : standby_names_) {
    if (Find(name) != nullptr) continue;  // led here now
    if (std::optional<v1::VolumeStatus> standby = standby_(name)) {
      *statuses->Add() = *std::move(standby);
    }
  }
}

grpc::Status GatewayService::ListVolumes(grpc::ServerContext* context,
                                         const v1::ListVolumesRequest&,
                                         v1::ListVolumesReply* reply) {
  absl::StatusOr<Access> allowed = Allowed(*context, Access::kRead, "status");
  if (!allowed.ok()) {
    return ToGrpcStatus(allowed.status());
  }
  AddStatuses(reply->mutable_volumes());
  return grpc::Status::OK;
}

grpc::Status GatewayService::Status(grpc::ServerContext* context,
                                    const v1::StatusRequest& request,
                                    v1::StatusReply* reply) {
  absl::StatusOr<Access> allowed = Allowed(*context, Access::kRead, "status");
  if (!allowed.ok()) {
    return ToGrpcStatus(allowed.status());
  }
  reply->set_version(DST_VERSION);
  reply->set_uptime_seconds(
      static_cast<uint64_t>(absl::ToInt64Seconds(absl::Now() - started_)));
  if (!request.volume().empty()) {
    if (Volume* volume = Find(request.volume()); volume != nullptr) {
      *reply->add_volumes() = volume->Status();
    } else if (std::optional<v1::VolumeStatus> standby =
                   IsStandby(request.volume()) ? standby_(request.volume())
                                               : std::nullopt) {
      *reply->add_volumes() = *std::move(standby);
    } else {
      return ToGrpcStatus(UnknownVolume(request.volume()));
    }
  } else {
    AddStatuses(reply->mutable_volumes());
  }
  return grpc::Status::OK;
}

grpc::Status GatewayService::Resync(grpc::ServerContext* context,
                                    const v1::ResyncRequest& request,
                                    v1::VolumeStatus* reply) {
  absl::StatusOr<Access> allowed =
      Allowed(*context, Access::kReadWrite, "resync");
  if (!allowed.ok()) {
    return ToGrpcStatus(allowed.status());
  }
  absl::StatusOr<Volume*> found = FindVolume(context, request.volume());
  if (!found.ok()) return ToGrpcStatus(found.status());
  Volume* volume = *found;
  absl::Status status = volume->Resync(request);
  if (status.ok()) {
    *reply = volume->Status();
    DST_LOG(Info, "gateway: volume %s: resync %s%s%s by %s", volume->name(),
            request.stop() ? "stopped" : "started",
            request.full() ? absl::StrCat(", full copy to ", request.replica())
                           : "",
            request.has_rate_bytes()
                ? absl::StrCat(", rate ", request.rate_bytes(), " bytes/s")
                : "",
            PeerOf(*context).text);
  }
  return ToGrpcStatus(status);
}

grpc::Status GatewayService::Verify(grpc::ServerContext* context,
                                    const v1::VerifyRequest& request,
                                    v1::VerifyReply* reply) {
  absl::StatusOr<Access> allowed =
      Allowed(*context, Access::kReadWrite, "verify");
  if (!allowed.ok()) {
    return ToGrpcStatus(allowed.status());
  }

  absl::StatusOr<Volume*> found = FindVolume(context, request.volume());
  if (!found.ok()) return ToGrpcStatus(found.status());
  Volume* volume = *found;
  // Runs on a thread of its own (StartServing): it reads the whole volume.
  absl::StatusOr<v1::VerifyReply> verified = volume->Verify(request);
  if (!verified.ok()) return ToGrpcStatus(verified.status());
  *reply = *std::move(verified);
  return grpc::Status::OK;
}

grpc::Status GatewayService::Resolve(grpc::ServerContext* context,
                                     const v1::ResolveRequest& request,
                                     v1::VolumeStatus* reply) {
  absl::StatusOr<Access> allowed =
      Allowed(*context, Access::kReadWrite, "resolve");
  if (!allowed.ok()) {
    return ToGrpcStatus(allowed.status());
  }
  absl::StatusOr<Volume*> found = FindVolume(context, request.volume());
  if (!found.ok()) return ToGrpcStatus(found.status());
  Volume* volume = *found;
  absl::Status status = volume->Resolve(request.source());
  if (status.ok()) *reply = volume->Status();
  return ToGrpcStatus(status);
}

grpc::Status GatewayService::Resize(grpc::ServerContext* context,
                                    const v1::ResizeRequest& request,
                                    v1::VolumeStatus* reply) {
  absl::StatusOr<Access> allowed =
      Allowed(*context, Access::kReadWrite, "resize");
  if (!allowed.ok()) return ToGrpcStatus(allowed.status());
  absl::StatusOr<Volume*> found = FindVolume(context, request.volume());
  if (!found.ok()) return ToGrpcStatus(found.status());
  Volume* volume = *found;
  absl::Status status = volume->Resize(request.size());
  if (status.ok()) *reply = volume->Status();
  return ToGrpcStatus(status);
}

}  // namespace dst
