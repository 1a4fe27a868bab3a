// dstctl verify's comparison of replicas; see verifier.h.
#include "services/gateway/verifier.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"

#include "services/common/transport/transaction_stream.h"

namespace dst {

absl::StatusOr<v1::VerifyReply> CompareReplicas(
    const std::vector<std::string>& replicas, const ChecksumOf& checksum,
    RangeSerializer& range_lock, uint64_t begin, uint64_t end, uint64_t chunk) {
  v1::VerifyReply reply;
  for (const std::string& address : replicas) reply.add_replicas(address);
  if (replicas.size() < 2) return reply;
  for (uint64_t offset = begin; offset < end; offset += chunk) {
    const uint64_t length = std::min(chunk, end - offset);
    absl::Notification locked;
    range_lock.Acquire(offset, length, [&locked] { locked.Notify(); });
    locked.WaitForNotification();
    std::string first;
    bool differs = false;
    for (size_t k = 0; k < replicas.size(); ++k) {
      const v1::Reply digest = checksum(k, offset, length);
      if (digest.status() != 0) {
        range_lock.Release(offset, length);
        return absl::UnavailableError(
            absl::StrCat("replica ", replicas[k], ": ", digest.message()));
      }
      if (k == 0) {
        first = digest.data();
      } else if (digest.data() != first) {
        differs = true;
      }
    }
    range_lock.Release(offset, length);
    reply.set_compared_bytes(reply.compared_bytes() + length);
    if (differs) {
      v1::Range* range = reply.add_differing();
      range->set_offset(offset);
      range->set_length(length);
    }
  }
  return reply;
}

absl::StatusOr<v1::VerifyReply> VerifyVolume(VolumeCore& core,
                                             const v1::VerifyRequest& request) {
  std::vector<size_t> compared;
  uint64_t size;
  uint64_t chunk;
  {
    absl::MutexLock lock(&core.mu);
    if (!core.state.decided() || core.geometry.size() == 0) {
      return absl::UnavailableError("volume is not ready");
    }
    for (size_t i = 0; i < core.slots.size(); ++i) {
      if (core.state.replica(i).sync == SyncState::kInSync)
        compared.push_back(i);
    }
    size = core.geometry.size();
    chunk = std::min<uint64_t>(core.config.region_bytes(),
                               core.geometry.max_transfer());
  }
  const uint64_t begin = request.offset();
  const uint64_t end =
      request.length() == 0 ? size : std::min(size, begin + request.length());
  if (begin > size || begin % 512 != 0) {
    return absl::InvalidArgumentError(
        "offset must be a multiple of 512 inside the volume");
  }
  std::vector<std::string> addresses;
  addresses.reserve(compared.size());
  for (size_t i : compared)
    addresses.push_back(core.slots[i]->replica->address());
  auto checksum = [&](size_t k, uint64_t offset, uint64_t length) {
    v1::Request sum;
    sum.set_op(v1::OP_CHECKSUM);
    sum.set_offset(offset);
    sum.set_length(static_cast<uint32_t>(length));
    return WaitForReply([&](TransactionDone done) {
      core.slots[compared[k]]->replica->Submit(sum, std::move(done));
    });
  };
  return CompareReplicas(addresses, checksum, core.modifications, begin, end,
                         chunk);
}

}  // namespace dst
