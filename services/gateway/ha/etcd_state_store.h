// A volume's mirror state (VolumeState) kept in etcd, for HA mode: one key
// per volume (PREFIX/volumes/NAME/state, binary protobuf), written only
// while this gateway leads the volume (a txn guarded by its leadership), so
// a new leader reads exactly what the last one made durable and a deposed
// one can no longer change it.
//
// Group-committed like the state file (GroupCommitStateStore). A write that
// etcd cannot take now (no quorum, a member restarting) is retried until it
// succeeds or the gateway's self-fence deadline passes: I/O waits, it does
// not fail, while etcd is briefly away. etcd takes requests up to
// --max-request-bytes (1.5 MiB by default): a state above kMaxStateBytes is
// refused with a message (larger region_bytes make it smaller).
//
// Thread-safe. `etcd` and `fence` outlive the store.
#ifndef DST_SERVICES_GATEWAY_HA_ETCD_STATE_STORE_H_
#define DST_SERVICES_GATEWAY_HA_ETCD_STATE_STORE_H_

#include <cstddef>
#include <string>

#include "services/gateway/ha/etcd_client.h"
#include "services/gateway/ha/self_fence.h"
#include "services/gateway/state_store.h"

namespace dst {

class EtcdStateStore final : public GroupCommitStateStore {
 public:
  static constexpr size_t kMaxStateBytes = 1 << 20;

  EtcdStateStore(EtcdClient& etcd, std::string key,
                 EtcdClient::Leadership leadership, const SelfFence& fence);
  ~EtcdStateStore() override;
  EtcdStateStore(const EtcdStateStore&) = delete;
  EtcdStateStore& operator=(const EtcdStateStore&) = delete;

  const std::string& name() const override { return name_; }
  // NotFound when the key does not exist (a volume new to HA mode).
  absl::StatusOr<v1::VolumeState> Load() override;

 private:
  absl::Status Persist(const v1::VolumeState& state) override;

  EtcdClient& etcd_;
  const std::string key_;
  const std::string name_;  // "etcd:KEY"
  const EtcdClient::Leadership leadership_;
  const SelfFence& fence_;
};

// True for the errors of a call that etcd could not take now (no endpoint
// answered, or no quorum within the call's time): worth retrying.
bool EtcdTransient(const absl::Status& status);

}  // namespace dst

#endif  // DST_SERVICES_GATEWAY_HA_ETCD_STATE_STORE_H_
