// How the gateway and the tests build volumes from config entries: see
// volume_builder.h.
#include "services/gateway/volume_builder.h"

#include <filesystem>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"

#include "services/gateway/replica.h"

namespace dst {

SchedulerFactory GatewaySchedulers(SharedTimers& timers) {
  return [&timers](const std::string& name) -> std::unique_ptr<Scheduler> {
    if (name == "timers") return timers.Make();
    return std::make_unique<TimerThread>();
  };
}

std::unique_ptr<Volume> MakeVolume(const v1::VolumeConfig& config,
                                   const VolumeOptions& options,
                                   int max_message_bytes,
                                   prometheus::Registry& registry) {
  std::vector<std::unique_ptr<ReplicaHandle>> replicas;
  for (const v1::ReplicaConfig& replica : config.replicas()) {
    ReplicaOptions r;
    r.address = replica.address();
    r.client_id = absl::StrCat(options.gateway_id, "/", config.name());
    r.read_only = config.read_only();
    r.max_message_bytes = max_message_bytes;
    r.keepalive = absl::Milliseconds(config.keepalive_ms());
    r.tls = options.tls;
    r.keepalive_timeout = absl::Milliseconds(config.keepalive_timeout_ms());
    // Every log line of the session names the volume and the replica.
    r.session.name =
        absl::StrCat("volume ", config.name(), " replica ", replica.address());
    r.session.request_timeout = absl::Milliseconds(config.request_timeout_ms());
    r.session.max_resends = static_cast<int>(config.max_resends());
    r.session.suspend_timeout = absl::Milliseconds(config.suspend_timeout_ms());
    replicas.push_back(std::make_unique<Replica>(r));
  }
  return std::make_unique<Volume>(config, options, std::move(replicas),
                                  registry);
}

absl::StatusOr<std::unique_ptr<Volume>> BuildVolume(
    const v1::VolumeConfig& config, const VolumeOptions& options,
    int max_message_bytes, prometheus::Registry& registry) {
  if (config.replicas_size() > 1 && !options.state_dir.empty()) {
    std::error_code error;
    std::filesystem::create_directories(options.state_dir, error);
    if (error) {
      return absl::FailedPreconditionError(
          absl::StrCat("state_dir ", options.state_dir, ": ", error.message()));
    }
  }
  std::unique_ptr<Volume> volume =
      MakeVolume(config, options, max_message_bytes, registry);
  if (absl::Status s = volume->Init(); !s.ok()) {
    return absl::Status(
        s.code(), absl::StrCat("volume ", config.name(), ": ", s.message()));
  }
  return volume;
}

}  // namespace dst
