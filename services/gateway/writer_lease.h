// A volume's write lease: one writer at a time. A read-write open takes
// the lease with a token of its client's choosing; the holder's Io streams
// attach to it; the lease lasts while one is attached and `timeout` after
// the last detaches, then another token may take it. The same token may
// open again at any time (a client reconnecting after a lost stream).
//
// Pure: the caller passes the time, so tests drive it with a fake clock.
// Thread-safe.
#ifndef DST_SERVICES_GATEWAY_WRITER_LEASE_H_
#define DST_SERVICES_GATEWAY_WRITER_LEASE_H_

#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace dst {

class WriterLease {
 public:
  // `volume` names the volume in errors.
  WriterLease(std::string volume, absl::Duration timeout);

  // A read-write open by `client` with `token`: OK when the lease is free,
  // lapsed or already this token's (it is then this token's, renewed);
  // INVALID_ARGUMENT for an empty token; FAILED_PRECONDITION naming the
  // holder when another token holds it.
  absl::Status Acquire(const std::string& token, const std::string& client,
                       absl::Time now);
  // An Io stream of the holder starts: FAILED_PRECONDITION unless `token`
  // holds the lease.
  absl::Status Attach(const std::string& token);
  // An attached Io stream ends; the lease lapses `timeout` after the last.
  void Detach(absl::Time now);
  // The holder's client id while the lease is held, else "".
  std::string Holder(absl::Time now) const;

 private:
  bool HeldLocked(absl::Time now) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::string volume_;
  const absl::Duration timeout_;
  mutable absl::Mutex mu_;
  std::string token_ ABSL_GUARDED_BY(mu_);
  std::string client_ ABSL_GUARDED_BY(mu_);
  int streams_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Time expiry_ ABSL_GUARDED_BY(mu_);
};

}  // namespace dst

#endif  // DST_SERVICES_GATEWAY_WRITER_LEASE_H_
