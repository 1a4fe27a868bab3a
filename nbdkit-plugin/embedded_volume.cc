// The embedded mode: see embedded_volume.h.
#include "nbdkit-plugin/embedded_volume.h"

#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"

#include "services/common/base/limits.h"
#include "services/common/base/status.h"
#include "services/common/protocol/request_validation.h"
#include "services/common/security/tls.h"
#include "services/common/transport/transaction_stream.h"
#include "services/gateway/config.h"
#include "services/gateway/volume_builder.h"

namespace dst {

EmbeddedVolume::~EmbeddedVolume() = default;

void EmbeddedVolume::Shutdown() {
  volume_->Save();
  tls_->RemoveStagedFiles();
}

absl::StatusOr<std::unique_ptr<EmbeddedVolume>> EmbeddedVolume::Start(
    const std::string& config_path, const std::string& name,
    const std::string& id) {
  ASSIGN_OR_RETURN(v1::GatewayConfig config, LoadGatewayConfig(config_path));
  const v1::VolumeConfig* volume_config = nullptr;
  for (const v1::VolumeConfig& v : config.volumes()) {
    if (v.name() == name) volume_config = &v;
  }
  if (volume_config == nullptr) {
    return absl::NotFoundError(
        absl::StrCat(config_path, ": no volume '", name, "'"));
  }
  std::unique_ptr<EmbeddedVolume> embedded(new EmbeddedVolume(config_path));
  embedded->registry_ = std::make_shared<prometheus::Registry>();
  if (!config.metrics().empty()) {
    ASSIGN_OR_RETURN(
        embedded->metrics_,
        MetricsServer::Start(config.metrics(), embedded->registry_));
  }
  // The exporters see this process as a gateway: the same TLS settings,
  // presented as a client.
  VolumeOptions options;
  ASSIGN_OR_RETURN(embedded->tls_,
                   Tls::Load(GatewayTlsOptions(config), /*server=*/false));
  options.tls = embedded->tls_;
  options.gateway_id = id;
  options.state_dir = config.state_dir();
  ASSIGN_OR_RETURN(embedded->volume_,
                   BuildVolume(*volume_config, options, kMaxMessageBytes,
                               *embedded->registry_));
  embedded->volume_->Start();
  return embedded;
}

absl::StatusOr<std::unique_ptr<VolumeClient>> EmbeddedVolume::Open(
    const ClientOpenOptions& options) {
  ASSIGN_OR_RETURN(std::unique_ptr<EmbeddedClient> client,
                   EmbeddedClient::Open(volume_.get(), options));
  return std::unique_ptr<VolumeClient>(std::move(client));
}

std::string EmbeddedVolume::Where() const {
  return absl::StrCat("embedded from config=", config_path_);
}

absl::StatusOr<std::unique_ptr<EmbeddedClient>> EmbeddedClient::Open(
    Volume* volume, const ClientOpenOptions& options) {
  // The volume answers UNAVAILABLE until enough replicas have negotiated.
  const absl::Time deadline = absl::Now() + options.timeout;
  absl::StatusOr<v1::Geometry> geometry;
  for (;;) {
    geometry =
        volume->Open(options.read_only, options.lease_token, options.client_id);
    if (geometry.ok() ||
        geometry.status().code() != absl::StatusCode::kUnavailable ||
        absl::Now() >= deadline) {
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  if (!geometry.ok()) return geometry.status();
  RETURN_IF_ERROR(ValidateGeometry(*geometry));
  const bool read_only = geometry->read_only();
  if (!read_only) RETURN_IF_ERROR(volume->AttachWriter(options.lease_token));
  return std::unique_ptr<EmbeddedClient>(
      new EmbeddedClient(volume, read_only, *std::move(geometry)));
}

EmbeddedClient::~EmbeddedClient() {
  if (!read_only_) volume_->DetachWriter();
}

v1::Reply EmbeddedClient::Call(v1::Request request, Payload data,
                               Payload* reply_data) {
  return WaitForReply(
      [&](TransactionDone done) {
        volume_->Submit(std::move(request), std::move(data), read_only_,
                        std::move(done));
      },
      reply_data);
}

}  // namespace dst
