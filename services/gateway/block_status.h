// Block status of a volume (NBD base:allocation, OP_BLOCK_STATUS): each
// query is asked of every in-sync replica, the replicas reads may go to,
// and their answers merged (MergeExtents, extents.h).
//
// Invariant: the answer holds for every replica a read may be served from:
// "zero" only where each of them reads zeroes, "hole" only where each has a
// hole. A replica that cannot say counts as all data, which is always
// true: its exporter lacks FEATURE_BLOCK_STATUS, it is disconnected, its
// answer fails or is malformed, or it does not answer within the lag
// limit. Out-of-sync replicas are not asked (reads never go to them). An
// answer from a replica that left the in-sync set meanwhile still counts:
// merged, an answer can only turn "hole" or "zero" into data, never the
// reverse, so a stale one makes the answer more cautious, never wrong.
//
// Thread-safe. Replies run on the replicas' threads, lag expiries on the
// core's timers; neither blocks.
#ifndef DST_SERVICES_GATEWAY_BLOCK_STATUS_H_
#define DST_SERVICES_GATEWAY_BLOCK_STATUS_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "dst/v1/exporter.pb.h"
#include "services/common/protocol/extent.h"
#include "services/common/transport/transaction_table.h"
#include "services/gateway/volume_core.h"

namespace dst {

class BlockStatus {
 public:
  // Of `core`, which outlives it.
  explicit BlockStatus(VolumeCore& core) : core_(core) {}
  BlockStatus(const BlockStatus&) = delete;
  BlockStatus& operator=(const BlockStatus&) = delete;

  // Answers `request` (OP_BLOCK_STATUS, validated): `done` runs once, with
  // the extents from its offset (at least one, covering at most its
  // length), or UNAVAILABLE when no replica is in sync.
  void Query(v1::Request request, TransactionDone done);

  // A replica's answer to `request`, checked: its extents, or all data
  // when it failed or is malformed (none, an empty extent, unknown flags,
  // or more than the range).
  static std::vector<Extent> AnswerOf(const v1::Request& request,
                                      const v1::Reply& reply);

 private:
  struct Op;
  // Replica `i` of `op` answered with `extents` (or its lag expired).
  void Answered(const std::shared_ptr<Op>& op, size_t i,
                std::vector<Extent> extents);

  VolumeCore& core_;
};

}  // namespace dst

#endif  // DST_SERVICES_GATEWAY_BLOCK_STATUS_H_
