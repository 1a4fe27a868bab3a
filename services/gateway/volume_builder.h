// Building volumes from config entries, as the gateway and the plugin's
// embedded mode do: their replicas (Replica sessions to the exporters),
// their schedulers, and a mirror's state_dir.
#ifndef DST_SERVICES_GATEWAY_VOLUME_BUILDER_H_
#define DST_SERVICES_GATEWAY_VOLUME_BUILDER_H_

#include <memory>

#include "absl/status/statusor.h"

#include "dst/v1/config.pb.h"
#include "services/common/base/scheduler.h"
#include "services/gateway/volume.h"

namespace dst {

// The schedulers of a gateway's volumes: their "timers" share `timers`'
// one thread (a lag timer never blocks); each "worker" has its own.
// `timers` outlives the volumes.
SchedulerFactory GatewaySchedulers(SharedTimers& timers);

// Builds the volume a config entry describes (replicas not yet started).
std::unique_ptr<Volume> MakeVolume(const v1::VolumeConfig& config,
                                   const VolumeOptions& options,
                                   int max_message_bytes,
                                   prometheus::Registry& registry);

// MakeVolume and Init, as the gateway and the embedded mode do it: a
// mirror's state_dir is made first. Errors name the state_dir or the
// volume.
absl::StatusOr<std::unique_ptr<Volume>> BuildVolume(
    const v1::VolumeConfig& config, const VolumeOptions& options,
    int max_message_bytes, prometheus::Registry& registry);

}  // namespace dst

#endif  // DST_SERVICES_GATEWAY_VOLUME_BUILDER_H_
