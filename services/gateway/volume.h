// A volume: what NBD clients see as one disk, made of one replica (plain)
// or several (a mirror). Every request from a client is validated against
// the volume's geometry, then becomes one transaction per replica it must
// reach: reads go to one replica and fail over to the next on error;
// writes, zeroes, trims and flushes go to every replica and complete when
// all have answered, OK only if all succeeded; overlapping writes, zeroes
// and trims are serialized so that every replica applies them in the same
// order (a strict mirror: the
// in-sync set, lag limit and resync come with the resend engine).
//
// Thread-safe. Replicas are owned; Start() connects them in the background.
#ifndef DST_SERVICES_GATEWAY_VOLUME_H_
#define DST_SERVICES_GATEWAY_VOLUME_H_

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

#include "dst/v1/config.pb.h"
#include "dst/v1/gateway.pb.h"
#include "services/common/metrics.h"
#include "services/common/transaction_table.h"
#include "services/gateway/range_serializer.h"
#include "services/gateway/replica.h"

namespace dst {

class Volume {
 public:
  // Metrics go to `registry` as dst_gateway_* with {volume="NAME"}.
  Volume(const v1::VolumeConfig& config,
         std::vector<std::unique_ptr<Replica>> replicas,
         prometheus::Registry& registry);
  // Stops the replicas' connectors before anything they call back into.
  ~Volume();
  Volume(const Volume&) = delete;
  Volume& operator=(const Volume&) = delete;

  void Start();
  const std::string& name() const { return config_.name(); }
  const v1::VolumeConfig& config() const { return config_; }

  // The geometry a client opening the volume gets; UNAVAILABLE until every
  // replica has connected once.
  absl::StatusOr<v1::Geometry> Open(bool read_only) const;

  // Validates and executes one client request; `done` runs exactly once.
  void Submit(v1::Request request, bool read_only, TransactionDone done);

  v1::VolumeStatus Status() const;

 private:
  void UpdateGeometry();
  // Reads from order[next], failing over along `order` on error.
  void SubmitRead(std::shared_ptr<v1::Request> request,
                  std::vector<Replica*> order, size_t next,
                  TransactionDone done);
  // Each replica gets its own copy: a transaction keeps its request until
  // the replica answers.
  void SubmitToAll(const v1::Request& request, TransactionDone done);

  const v1::VolumeConfig config_;
  const std::vector<std::unique_ptr<Replica>> replicas_;
  std::atomic<uint64_t> total_{0};
  std::atomic<uint64_t> failed_{0};
  std::atomic<uint64_t> in_flight_{0};
  std::atomic<uint64_t> next_read_{0};
  RangeSerializer modifications_;  // overlapping writes, one at a time
  OpMetrics op_metrics_;
  prometheus::Gauge& in_flight_gauge_;
  std::vector<prometheus::Gauge*> replica_connected_;  // by replica index

  mutable absl::Mutex mu_;
  // Set once every replica has negotiated; never shrinks.
  v1::Geometry geometry_ ABSL_GUARDED_BY(mu_);
  bool ready_ ABSL_GUARDED_BY(mu_) = false;
};

// Builds the volume a config entry describes (replicas not yet started).
std::unique_ptr<Volume> MakeVolume(const v1::VolumeConfig& config,
                                   const std::string& gateway_id,
                                   int max_message_bytes,
                                   prometheus::Registry& registry);

}  // namespace dst

#endif  // DST_SERVICES_GATEWAY_VOLUME_H_
