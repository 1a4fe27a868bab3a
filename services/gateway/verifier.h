// dstctl verify: compares the in-sync replicas of a volume, chunk by chunk,
// by the checksums their exporters compute (OP_CHECKSUM), so no data
// crosses the network. Each chunk is compared under the volume's range
// lock: a write in flight is not reported as a difference.
#ifndef DST_SERVICES_GATEWAY_VERIFIER_H_
#define DST_SERVICES_GATEWAY_VERIFIER_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

#include "dst/v1/exporter.pb.h"
#include "dst/v1/gateway.pb.h"
#include "services/gateway/range_serializer.h"
#include "services/gateway/volume_core.h"

namespace dst {

// One replica's digest of [offset, +length): an OP_CHECKSUM reply. Blocks.
using ChecksumOf =
    std::function<v1::Reply(size_t replica, uint64_t offset, uint64_t length)>;

// Compares `replicas` (their addresses; ChecksumOf's index is into this)
// over [begin, end) in chunks of `chunk` bytes. The reply lists them, the
// bytes compared and the chunks that differ; fewer than two replicas are
// not compared. A replica that cannot answer ends the comparison with
// UNAVAILABLE naming it.
absl::StatusOr<v1::VerifyReply> CompareReplicas(
    const std::vector<std::string>& replicas, const ChecksumOf& checksum,
    RangeSerializer& range_lock, uint64_t begin, uint64_t end, uint64_t chunk);

// Compares the volume's in-sync replicas over the request's range (length
// 0: to the end), in chunks of a region or the largest transfer, whichever
// is smaller. UNAVAILABLE before the volume is ready; INVALID_ARGUMENT for
// an offset outside it or not a multiple of 512. Blocks.
absl::StatusOr<v1::VerifyReply> VerifyVolume(VolumeCore& core,
                                             const v1::VerifyRequest& request);

}  // namespace dst

#endif  // DST_SERVICES_GATEWAY_VERIFIER_H_
