// Decides, when a modifying request is about to run (not when it was read),
// whether it still may: its stream must present the exporter's current
// epoch and be the newest stream that presented one. A request admitted
// under an older epoch, or on a stream the gateway has since replaced
// (after a timeout or a reconnect it resends on a new one), is refused
// then, so it can never land after what replaced it. A claim of a newer
// epoch returns only once every request still running under an older one
// has finished; a newer stream's requests wait for the older streams'
// running ones.
//
// Streams that present no epoch (a gateway with fencing off, tests) are
// neither fenced nor superseding.
//
// Thread-safe.
#ifndef DST_SERVICES_EXPORTER_WRITE_FENCE_H_
#define DST_SERVICES_EXPORTER_WRITE_FENCE_H_

#include <cstdint>
#include <map>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

#include "dst/v1/exporter.pb.h"
#include "services/exporter/metadata_store.h"

namespace dst {

class WriteFence {
 public:
  // `metadata` holds the epoch (null: nothing is fenced); not owned.
  explicit WriteFence(MetadataStore* metadata) : metadata_(metadata) {}

  // A stream presenting `epoch` opened; returns its ticket.
  uint64_t OpenStream(uint64_t epoch);

  // Before a modifying request of stream `ticket` (which presented
  // `epoch`) runs: OK, and the caller calls Exit(ticket) once it has run;
  // ABORTED ("fenced") for an old epoch; UNAVAILABLE for a superseded
  // stream. Waits while an older stream's request is running.
  absl::Status Enter(uint64_t epoch, uint64_t ticket);
  void Exit(uint64_t ticket);

  // MetadataStore::Claim, then, when the epoch went up, waits until no
  // request admitted under an older one is running.
  absl::StatusOr<v1::ReplicaMetadata> Claim(const v1::ClaimRequest& request);

 private:
  struct Running {
    uint64_t epoch;
    int count;
  };
  bool OlderRunningLocked(uint64_t ticket) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  MetadataStore* const metadata_;
  absl::Mutex mu_;
  uint64_t next_ticket_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t newest_ ABSL_GUARDED_BY(mu_) = 0;  // newest stream with an epoch
  std::map<uint64_t, Running> running_ ABSL_GUARDED_BY(mu_);  // by ticket
};

}  // namespace dst

#endif  // DST_SERVICES_EXPORTER_WRITE_FENCE_H_
