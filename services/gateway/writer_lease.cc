// A volume's one-writer lease; see writer_lease.h.
#include "services/gateway/writer_lease.h"

#include <utility>

#include "absl/strings/str_cat.h"

#include "services/common/base/log.h"

namespace dst {

WriterLease::WriterLease(std::string volume, absl::Duration timeout)
    : volume_(std::move(volume)), timeout_(timeout) {}

bool WriterLease::HeldLocked(absl::Time now) const {
  return !token_.empty() && (streams_ > 0 || now < expiry_);
}

absl::Status WriterLease::Acquire(const std::string& token,
                                  const std::string& client, absl::Time now) {
  if (token.empty()) {
    return absl::InvalidArgumentError(
        "a read-write open needs a lease token (OpenRequest.lease_token)");
  }
  absl::MutexLock lock(&mu_);
  if (token_ != token && HeldLocked(now)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "volume ", volume_, " is already open read-write by '", client_,
        "': one writer at a time (open it read-only, or stop the other "
        "client; its lease lapses ",
        absl::ToDoubleSeconds(timeout_), " s after it disconnects)"));
  }
  if (token_ != token) {
    DST_LOG(Info, "gateway: volume %s: write lease granted to '%s'", volume_,
            client);
  }
  token_ = token;
  client_ = client.empty() ? "?" : client;
  expiry_ = now + timeout_;
  return absl::OkStatus();
}

absl::Status WriterLease::Attach(const std::string& token) {
  absl::MutexLock lock(&mu_);
  if (token.empty() || token != token_) {
    return absl::FailedPreconditionError(absl::StrCat(
        "no write lease on volume ", volume_,
        token_.empty() ? ": Open it read-write first"
                       : absl::StrCat(": it is held by '", client_, "'")));
  }
  ++streams_;
  return absl::OkStatus();
}

void WriterLease::Detach(absl::Time now) {
  absl::MutexLock lock(&mu_);
  if (streams_ > 0 && --streams_ == 0) expiry_ = now + timeout_;
}

std::string WriterLease::Holder(absl::Time now) const {
  absl::MutexLock lock(&mu_);
  return HeldLocked(now) ? client_ : "";
}

}  // namespace dst
