// HA mode's wiring of a gateway's volumes: campaigns in etcd for every
// configured volume and, for each this gateway is elected to lead, builds
// the volume (its mirror state in etcd, its fencing epoch from etcd's
// counter, every reply behind the self-fence) and hands it to the service;
// until then the service answers for the volume with its leader
// (state "standby").
//
// A gateway never gives a leadership back while it runs: when it is
// deposed (its lease gone or possibly expired, an exporter holding a newer
// leader's epoch), `deposed` runs and must stop every reply at once; the
// gateway exits and its supervisor restarts it as a standby. A clean stop
// (Stop) resigns, so that a standby takes over at once.
//
// Thread-safe. The service, registry and `base`'s referents outlive it.
#ifndef DST_SERVICES_GATEWAY_HA_LEADER_VOLUMES_H_
#define DST_SERVICES_GATEWAY_HA_LEADER_VOLUMES_H_

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"

#include "dst/v1/config.pb.h"
#include "dst/v1/gateway.pb.h"
#include "services/common/observability/metrics.h"
#include "services/gateway/gateway_service.h"
#include "services/gateway/ha/coordinator.h"
#include "services/gateway/volume_core.h"

namespace dst {

class LeaderVolumes {
 public:
  using Deposed = std::function<void(const std::string& why)>;

  // Campaigns for `config`'s volumes (config.etcd set) as gateway
  // `base.gateway_id`, reachable by clients at `advertise`, talking to etcd
  // over `etcd_tls` (null: plaintext). Volumes are built with `base`
  // (schedulers, TLS) and `max_message_bytes`.
  static absl::StatusOr<std::unique_ptr<LeaderVolumes>> Start(
      const v1::GatewayConfig& config, const std::string& advertise,
      std::shared_ptr<Tls> etcd_tls, const VolumeOptions& base,
      int max_message_bytes, GatewayService& service,
      prometheus::Registry& registry, Deposed deposed);
  ~LeaderVolumes();
  LeaderVolumes(const LeaderVolumes&) = delete;
  LeaderVolumes& operator=(const LeaderVolumes&) = delete;

  // A clean stop, once the volumes' state is saved: resigns every
  // leadership and revokes the lease.
  void Stop();

  // A volume configured here and led elsewhere (or by nobody yet).
  v1::VolumeStatus StandbyStatus(const std::string& volume);
  HaCoordinator& coordinator() { return *coordinator_; }

 private:
  LeaderVolumes(const v1::GatewayConfig& config, const VolumeOptions& base,
                int max_message_bytes, GatewayService& service,
                prometheus::Registry& registry, Deposed deposed);
  void Elected(const std::string& volume);
  // Runs `deposed_` with `why` and the self-fence deadline in wall-clock
  // time (UTC, as the log prints it): no reply left after it, which a test
  // or an operator compares with the next leader's election.
  void Depose(const std::string& why);

  const v1::GatewayConfig config_;
  const VolumeOptions base_;
  const int max_message_bytes_;
  GatewayService& service_;
  prometheus::Registry& registry_;
  const Deposed deposed_;
  std::unique_ptr<HaCoordinator> coordinator_;
};

}  // namespace dst

#endif  // DST_SERVICES_GATEWAY_HA_LEADER_VOLUMES_H_
