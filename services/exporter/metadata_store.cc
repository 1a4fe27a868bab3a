// The exporter's persistent epoch and generations: see metadata_store.h.
#include "services/exporter/metadata_store.h"

#include <utility>

#include "absl/strings/str_cat.h"

#include "services/common/base/atomic_file.h"
#include "services/common/base/log.h"
#include "services/common/base/status.h"

namespace dst {

absl::StatusOr<std::unique_ptr<MetadataStore>> MetadataStore::Open(
    const std::string& path) {
  std::unique_ptr<MetadataStore> store(new MetadataStore(path));
  absl::StatusOr<std::string> contents = ReadWholeFile(path);
  if (!contents.ok() && !absl::IsNotFound(contents.status())) {
    return contents.status();
  }
  if (contents.ok() && !store->metadata_.ParseFromString(*contents)) {
    return absl::DataLossError(
        absl::StrCat(path,
                     ": not a dst exporter state file (refusing to "
                     "start rather than forget the replica's epoch)"));
  }
  store->epoch_.store(store->metadata_.epoch());
  return store;
}

v1::ReplicaMetadata MetadataStore::Get() const {
  absl::MutexLock lock(&mu_);
  return metadata_;
}

absl::StatusOr<v1::ReplicaMetadata> MetadataStore::Claim(
    const v1::ClaimRequest& request) {
  absl::MutexLock lock(&mu_);
  if (request.epoch() == 0) {
    return absl::InvalidArgumentError("epoch must be at least 1");
  }
  const bool keeps = request.epoch() == metadata_.epoch() &&
                     request.owner() == metadata_.owner();
  if (request.epoch() < metadata_.epoch() ||
      (request.epoch() == metadata_.epoch() && !keeps)) {
    return absl::AbortedError(
        absl::StrCat("fenced: epoch ", metadata_.epoch(), " is held by '",
                     metadata_.owner(), "' (asked for epoch ", request.epoch(),
                     " by '", request.owner(), "')"));
  }
  v1::ReplicaMetadata next = metadata_;
  next.set_epoch(request.epoch());
  next.set_owner(request.owner());
  if (request.set_generations()) {
    *next.mutable_generations() = request.generations();
  }
  if (!keeps || request.set_generations()) {
    RETURN_IF_ERROR(WriteFileAtomically(path_, next.SerializeAsString()));
  }
  if (!keeps) {
    DST_LOG(Info, "exporter: epoch %d claimed by '%s'", next.epoch(),
            next.owner());
  }
  metadata_ = std::move(next);
  epoch_.store(metadata_.epoch(), std::memory_order_release);
  return metadata_;
}

absl::Status MetadataStore::CheckWriter(uint64_t stream_epoch) const {
  const uint64_t current = epoch();
  if (current == 0 || stream_epoch == current) return absl::OkStatus();
  absl::MutexLock lock(&mu_);
  return absl::AbortedError(absl::StrCat(
      "fenced: this session's epoch ", stream_epoch, " is not the current ",
      metadata_.epoch(), " (held by '", metadata_.owner(), "')"));
}

}  // namespace dst
