// dstctl verify's comparison of replicas; see verifier.h.
#include "services/gateway/verifier.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"

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

}  // namespace dst
