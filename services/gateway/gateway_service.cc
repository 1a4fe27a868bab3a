// The Gateway gRPC service: see gateway_service.h.
#include "services/gateway/gateway_service.h"

#include <utility>

#include "absl/strings/str_cat.h"

#include "services/common/log.h"
#include "services/common/status.h"

namespace dst {

// One Io stream's requests, all for one volume.
class GatewayService::Handler : public StreamHandler {
 public:
  Handler(Volume* volume, bool read_only)
      : volume_(volume), read_only_(read_only) {}

  void Handle(v1::Request&& request, Done done) override {
    volume_->Submit(std::move(request), read_only_, std::move(done));
  }

 private:
  Volume* const volume_;
  const bool read_only_;
};

GatewayService::GatewayService(std::vector<std::unique_ptr<Volume>> volumes)
    : volumes_(std::move(volumes)) {
  for (const auto& volume : volumes_) by_name_[volume->name()] = volume.get();
}

void GatewayService::Start() {
  for (const auto& volume : volumes_) volume->Start();
}

bool GatewayService::Drain(absl::Time deadline) {
  streams_.DrainAll();
  return streams_.WaitEmpty(deadline);
}

Volume* GatewayService::Find(const std::string& name) const {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : it->second;
}

namespace {

grpc::Status UnknownVolume(const std::string& name) {
  return grpc::Status(grpc::StatusCode::NOT_FOUND,
                      absl::StrCat("no volume named '", name, "'"));
}

}  // namespace

grpc::ServerUnaryReactor* GatewayService::Open(
    grpc::CallbackServerContext* context, const v1::OpenRequest* request,
    v1::OpenReply* reply) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  Volume* volume = Find(request->volume());
  if (volume == nullptr) {
    reactor->Finish(UnknownVolume(request->volume()));
    return reactor;
  }
  absl::StatusOr<v1::Geometry> geometry = volume->Open(request->read_only());
  if (!geometry.ok()) {
    reactor->Finish(ToGrpcStatus(geometry.status()));
    return reactor;
  }
  *reply->mutable_geometry() = *geometry;
  DST_LOG(Info, "gateway: volume %s opened %s by %s (%s)", volume->name(),
          geometry->read_only() ? "read-only" : "read-write",
          request->client_id().empty() ? "?" : request->client_id(),
          context->peer());
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
  StreamOptions options;
  options.max_in_flight = static_cast<int>(volume->config().max_in_flight());
  return ServeStream(std::make_unique<Handler>(volume, access == "ro"), options,
                     &streams_);
}

grpc::ServerUnaryReactor* GatewayService::ListVolumes(
    grpc::CallbackServerContext* context, const v1::ListVolumesRequest*,
    v1::ListVolumesReply* reply) {
  for (const auto& volume : volumes_) *reply->add_volumes() = volume->Status();
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* GatewayService::Status(
    grpc::CallbackServerContext* context, const v1::StatusRequest* request,
    v1::StatusReply* reply) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
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

}  // namespace dst
