// HA mode's link to etcd: the gateway's lease and its self-fence, one
// election per volume, each volume's epoch counter, and who leads what.
//
// Key layout under the prefix (default "/dst/"), per volume NAME:
//   PREFIX/volumes/NAME/leader/LEASE  the election (etcd's v3election keys;
//                                     the value: a GatewayLeader message)
//   PREFIX/volumes/NAME/epoch         the fencing epoch counter (decimal)
//   PREFIX/volumes/NAME/state         the mirror state (VolumeState)
// The epoch and the state are written only by txns guarded by the writer's
// leadership, so they only move forward under one leader at a time.
//
// - The lease: granted at start (retried until etcd answers) and renewed
//   every third of its TTL; each renewal moves the self-fence deadline
//   (self_fence.h). When the lease is gone, or the deadline passes while
//   this gateway leads a volume, `lost` runs: the gateway must stop
//   answering at once (it exits; its supervisor restarts it as a
//   standby). A gateway that leads nothing takes a new lease and
//   campaigns again.
// - The elections: a thread per volume campaigns on the lease; once
//   elected it takes the volume's term epoch (above the counter) and calls
//   `elected`. A gateway keeps a leadership until it stops or exits.
// - The epoch: EpochAbove(volume, held) returns the term epoch, or a new
//   one above `held` (an exporter holding an epoch from before HA mode):
//   the counter is advanced by a compare-and-swap guarded by the
//   leadership, so every later leader's epoch is higher.
//
// Thread-safe. Callbacks run on the coordinator's threads.
#ifndef DST_SERVICES_GATEWAY_HA_COORDINATOR_H_
#define DST_SERVICES_GATEWAY_HA_COORDINATOR_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

#include "services/common/observability/metrics.h"
#include "services/gateway/ha/etcd_client.h"
#include "services/gateway/ha/self_fence.h"
#include "services/gateway/state_store.h"

namespace dst {

struct HaOptions {
  std::vector<std::string> endpoints;  // etcd's client URLs, host:port
  absl::Duration lease_ttl = absl::Seconds(2);
  std::string prefix = "/dst/";
  std::string gateway_id;  // this gateway's name (--id)
  std::string address;     // where clients reach it (host:port)
  // Each etcd call's time (a third of the TTL when zero).
  absl::Duration call_timeout;
  // Where the dst_gateway_ha_* series go (null: nowhere).
  prometheus::Registry* metrics = nullptr;
  std::shared_ptr<Tls> etcd_tls;  // TLS to etcd (null: plaintext)
};

class HaCoordinator {
 public:
  // Who leads a volume, as etcd says.
  struct Leader {
    std::string id;
    std::string address;
    uint64_t revision = 0;  // of its election key
  };
  // A leadership this gateway holds.
  struct Term {
    EtcdClient::Leadership leadership;
    uint64_t epoch = 0;
  };
  using Elected = std::function<void(const std::string& volume)>;
  using Lost = std::function<void(const std::string& why)>;

  // InvalidArgument for bad options. Starts the lease thread (it retries
  // until etcd answers).
  static absl::StatusOr<std::unique_ptr<HaCoordinator>> Start(HaOptions options,
                                                              Lost lost);
  // Stop().
  ~HaCoordinator();
  HaCoordinator(const HaCoordinator&) = delete;
  HaCoordinator& operator=(const HaCoordinator&) = delete;

  // Campaigns for each of `volumes` on a thread of its own; `elected`
  // runs there once this gateway leads the volume.
  void Campaign(const std::vector<std::string>& volumes,
                const Elected& elected);
  // A clean stop: resigns every leadership (a standby takes over at once)
  // and revokes the lease. Idempotent.
  void Stop() { Halt(/*revoke=*/true); }
  // Stops renewing and campaigning without a word to etcd, as a process
  // that died or lost its network would (tests): the lease runs out.
  void Abandon() { Halt(/*revoke=*/false); }

  const SelfFence& fence() const { return fence_; }
  const HaOptions& options() const { return options_; }
  // The term of a volume this gateway leads.
  std::optional<Term> TermOf(const std::string& volume) const;
  // Time since the last renewal etcd answered (infinite: none yet).
  absl::Duration LeaseAge() const;
  // The epoch to claim at an exporter holding `held`, for a volume this
  // gateway leads: Aborted once the leadership is gone.
  absl::StatusOr<uint64_t> EpochAbove(const std::string& volume, uint64_t held);
  // The volume's state store in etcd (guarded by this gateway's term).
  absl::StatusOr<std::unique_ptr<StateStore>> StateStoreFor(
      const std::string& volume);
  // Who leads `volume` now (nullopt: nobody yet).
  absl::StatusOr<std::optional<Leader>> LeaderOf(const std::string& volume);

  std::string ElectionKey(const std::string& volume) const;
  std::string EpochKey(const std::string& volume) const;
  std::string StateKey(const std::string& volume) const;

 private:
  HaCoordinator(HaOptions options, Lost lost, std::unique_ptr<EtcdClient> etcd);
  void KeepLease();
  void CampaignFor(const std::string& volume, const Elected& elected);
  // Sleeps up to `d`; false once stopping.
  bool Pause(absl::Duration d);
  void Halt(bool revoke);
  // The current lease (0: none).
  int64_t lease() const;

  // The dst_gateway_ha_* series (docs/observability.md).
  struct Metrics {
    explicit Metrics(prometheus::Registry& registry);
    prometheus::Family<prometheus::Gauge>& leader;
    prometheus::Family<prometheus::Counter>& elections;
    prometheus::Gauge& etcd_up;
    prometheus::Gauge& lease_age;
    prometheus::Counter& renewal_failures;
  };

  const HaOptions options_;
  const Lost lost_;
  prometheus::Registry own_metrics_;  // when options_.metrics is null
  Metrics metrics_;
  const std::unique_ptr<EtcdClient> etcd_;
  SelfFence fence_;

  mutable absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  int64_t lease_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Time renewed_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  std::map<std::string, Term> terms_ ABSL_GUARDED_BY(mu_);
  absl::Mutex epoch_mu_;              // one epoch change at a time
  std::vector<std::thread> threads_;  // the lease's, then the campaigns'
};

}  // namespace dst

#endif  // DST_SERVICES_GATEWAY_HA_COORDINATOR_H_
