// What a volume can do now: the health a volume reports (VolumeStatus.state
// is its name; the dst_gateway_volume_state metric has one series each).
#ifndef DST_SERVICES_GATEWAY_VOLUME_HEALTH_H_
#define DST_SERVICES_GATEWAY_VOLUME_HEALTH_H_

namespace dst {

enum class VolumeHealth {
  kReady,        // every replica in sync
  kDegraded,     // I/O served, a replica out of sync
  kWaiting,      // no up-to-date replica reachable: I/O waits
  kDiverged,     // split brain: stopped until `dstctl resolve`
  kFenced,       // another gateway took the volume over
  kUnavailable,  // not yet negotiated
};
inline constexpr VolumeHealth kVolumeHealths[] = {
    VolumeHealth::kReady,   VolumeHealth::kDegraded,
    VolumeHealth::kWaiting, VolumeHealth::kDiverged,
    VolumeHealth::kFenced,  VolumeHealth::kUnavailable};

// "ready", "degraded", ...: the name in VolumeStatus.state and in metrics.
inline const char* HealthName(VolumeHealth health) {
  switch (health) {
    case VolumeHealth::kReady:
      return "ready";
    case VolumeHealth::kDegraded:
      return "degraded";
    case VolumeHealth::kWaiting:
      return "waiting";
    case VolumeHealth::kDiverged:
      return "diverged";
    case VolumeHealth::kFenced:
      return "fenced";
    case VolumeHealth::kUnavailable:
      return "unavailable";
  }
  return "?";
}

// I/O is served.
inline bool Serving(VolumeHealth health) {
  return health == VolumeHealth::kReady || health == VolumeHealth::kDegraded;
}

}  // namespace dst

#endif  // DST_SERVICES_GATEWAY_VOLUME_HEALTH_H_
