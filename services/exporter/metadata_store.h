// The exporter's persistent metadata (its --state file): the fencing epoch
// with its holder and the replica's generation history, as the gateway
// claims and sets them (ReplicaMetadata in exporter.proto). Every change is
// durable before it is acknowledged.
//
// Fencing: once an epoch was claimed, modifying requests are accepted only
// on streams that present the current epoch; a newer claim fences every
// older session at once, including streams already open.
//
// Thread-safe.
#ifndef DST_SERVICES_EXPORTER_METADATA_STORE_H_
#define DST_SERVICES_EXPORTER_METADATA_STORE_H_

#include <atomic>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

#include "dst/v1/exporter.pb.h"

namespace dst {

class MetadataStore {
 public:
  // Loads `path`, or starts empty when it does not exist (created on the
  // first claim). A file that does not parse is an error, not a reset.
  static absl::StatusOr<std::unique_ptr<MetadataStore>> Open(
      const std::string& path);

  v1::ReplicaMetadata Get() const;
  uint64_t epoch() const { return epoch_.load(std::memory_order_acquire); }

  // See ClaimRequest. Aborted ("fenced: ...") when refused.
  absl::StatusOr<v1::ReplicaMetadata> Claim(const v1::ClaimRequest& request);

  // OK when a stream presenting `stream_epoch` may modify data now.
  absl::Status CheckWriter(uint64_t stream_epoch) const;

 private:
  explicit MetadataStore(std::string path) : path_(std::move(path)) {}

  const std::string path_;
  std::atomic<uint64_t> epoch_{0};
  mutable absl::Mutex mu_;
  v1::ReplicaMetadata metadata_ ABSL_GUARDED_BY(mu_);
};

}  // namespace dst

#endif  // DST_SERVICES_EXPORTER_METADATA_STORE_H_
