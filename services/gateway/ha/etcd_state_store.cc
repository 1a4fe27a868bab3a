// A volume's mirror state in etcd: see etcd_state_store.h.
#include "services/gateway/ha/etcd_state_store.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace dst {

namespace {
constexpr absl::Duration kRetryPause = absl::Milliseconds(50);
}  // namespace

bool EtcdTransient(const absl::Status& status) {
  return absl::IsUnavailable(status) || absl::IsDeadlineExceeded(status);
}

EtcdStateStore::EtcdStateStore(EtcdClient& etcd, std::string key,
                               EtcdClient::Leadership leadership,
                               const SelfFence& fence)
    : etcd_(etcd),
      key_(std::move(key)),
      name_(absl::StrCat("etcd:", key_)),
      leadership_(std::move(leadership)),
      fence_(fence) {}

EtcdStateStore::~EtcdStateStore() { StopWriter(); }

absl::StatusOr<v1::VolumeState> EtcdStateStore::Load() {
  absl::StatusOr<std::optional<EtcdClient::Value>> value = etcd_.Get(key_);
  while (!value.ok() && EtcdTransient(value.status()) && !fence_.Expired()) {
    absl::SleepFor(kRetryPause);
    value = etcd_.Get(key_);
  }
  if (!value.ok()) return value.status();
  if (!value->has_value()) {
    return absl::NotFoundError(absl::StrCat(name_, ": no state yet"));
  }
  v1::VolumeState state;
  if (!state.ParseFromString((*value)->value)) {
    return absl::DataLossError(absl::StrCat(name_, ": not a dst volume state"));
  }
  return state;
}

absl::Status EtcdStateStore::Persist(const v1::VolumeState& state) {
  const std::string bytes = state.SerializeAsString();
  if (bytes.size() > kMaxStateBytes) {
    return absl::FailedPreconditionError(absl::StrCat(
        name_, ": the volume's state takes ", bytes.size(),
        " bytes, more than etcd is asked to hold for one volume (",
        kMaxStateBytes, "); a larger region_bytes makes it smaller"));
  }
  absl::Status status = etcd_.PutIfLeader(leadership_, key_, bytes);
  while (EtcdTransient(status) && !fence_.Expired()) {
    absl::SleepFor(kRetryPause);
    status = etcd_.PutIfLeader(leadership_, key_, bytes);
  }
  return status;
}

}  // namespace dst
