// Fencing and admission: which exporters may carry a volume's writes, and
// under which epoch.
//
// - At each exporter's first negotiation of this run, the volume claims an
//   epoch above the one the exporter holds (and above every epoch it
//   claimed elsewhere), so that writes an earlier run left in flight there
//   are refused once they run (the exporter's WriteFence). Later
//   negotiations keep that epoch; an exporter found holding a newer one,
//   or this epoch under another owner, fences the volume: another gateway
//   writes now.
// - A replica is admitted only if its geometry fits the volume's (it can
//   never shrink under clients); the first admitted sets the volume's
//   geometry. Its generation history then goes to MirrorState, which
//   decides whether it is in sync, stale or diverged.
// - The volume's generation history is pushed (with the epoch) to each
//   exporter when MirrorState says it is due.
//
// Invariant: a fenced volume claims nothing and admits nothing; every
// claim carries the epoch this run holds at that exporter.
//
// Thread-safe. Admit runs on a replica's thread after each negotiation and
// PushGenerations on the volume's worker; both block on an exporter's
// claim, outside the core's lock.
#ifndef DST_SERVICES_GATEWAY_FENCING_H_
#define DST_SERVICES_GATEWAY_FENCING_H_

#include <cstddef>
#include <cstdint>

#include "absl/status/statusor.h"

#include "dst/v1/exporter.pb.h"
#include "services/gateway/volume_core.h"

namespace dst {

class Fencing {
 public:
  // Of `core`, which outlives it.
  explicit Fencing(VolumeCore& core) : core_(core) {}
  Fencing(const Fencing&) = delete;
  Fencing& operator=(const Fencing&) = delete;

  // Admission of replica `index` after a negotiation (ReplicaHandle's
  // Admission): the epoch to present on its stream (0: an exporter that
  // keeps no metadata, or a read-only volume), or why it is refused:
  // ABORTED when fenced, FAILED_PRECONDITION when its geometry does not
  // fit.
  absl::StatusOr<uint64_t> Admit(size_t index, const v1::NegotiateReply& reply);

  // Pushes the volume's generation history to every connected exporter
  // that is due one (blocking: a claim each).
  void PushGenerations();

 private:
  VolumeCore& core_;
};

}  // namespace dst

#endif  // DST_SERVICES_GATEWAY_FENCING_H_
