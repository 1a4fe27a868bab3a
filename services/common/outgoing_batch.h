// A batch of transactions (a RequestBatch) or of replies (a ReplyBatch) on
// its way to gRPC, with its large payloads kept out of the message: each
// goes to gRPC as a slice of its own that shares the payload's bytes, so a
// 1 MiB write or read is not copied into a serialized message on every
// hop (protobuf would copy it; protoc 3.21 ignores [ctype=CORD]). The bytes
// on the wire are exactly the RequestBatch/ReplyBatch encoding, so a peer
// reads them with the generated code.
//
// The transaction streams write OutgoingRequests (transaction_stream.h) and
// the server streams OutgoingReplies (stream_reactor.h); the
// grpc::SerializationTraits below let gRPC's async streams take them.
#ifndef DST_SERVICES_COMMON_OUTGOING_BATCH_H_
#define DST_SERVICES_COMMON_OUTGOING_BATCH_H_

#include <cstddef>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <grpcpp/grpcpp.h>
#include <grpcpp/impl/serialization_traits.h>

#include "dst/v1/exporter.pb.h"

namespace dst {

// The gRPC names of the two transaction stream methods, which carry these
// batches.
inline constexpr char kExporterStreamMethod[] = "/dst.v1.Exporter/Stream";
inline constexpr char kGatewayIoMethod[] = "/dst.v1.Gateway/Io";

// Payloads of this size and more travel as slices of their own; smaller
// ones are copied into the batch beside their header (a slice each would
// cost more than the copy).
inline constexpr size_t kSlicedPayloadBytes = size_t{64} << 10;

// A payload shared by a transaction (kept for a resend) and the writes
// that carry it.
using SharedPayload = std::shared_ptr<const std::string>;

// Moves `item`'s data into a new shared payload when it is large
// (kSlicedPayloadBytes or more), leaving the item's data empty; null when
// it is small.
template <class Item>
SharedPayload TakeLargePayload(Item& item) {
  if (item.data().size() < kSlicedPayloadBytes) return nullptr;
  SharedPayload payload =
      std::make_shared<std::string>(std::move(*item.mutable_data()));
  item.clear_data();
  return payload;
}

template <class Item>  // v1::Request or v1::Reply
class OutgoingBatch {
 public:
  // Adds `item`, its data moved into a shared payload when it is large.
  void Add(Item item) {
    SharedPayload payload = TakeLargePayload(item);
    Add(std::move(item), std::move(payload));
  }
  // Adds `item`, whose data is `payload` when that is not null (the
  // item's own data must then be empty).
  void Add(Item item, SharedPayload payload) {
    items_.push_back(std::move(item));
    payloads_.push_back(std::move(payload));
  }

  size_t size() const { return items_.size(); }
  const Item& item(size_t i) const { return items_[i]; }
  Item& mutable_item(size_t i) { return items_[i]; }
  void Clear() {
    items_.clear();
    payloads_.clear();
  }

  // The batch's wire encoding, its large payloads shared, not copied.
  grpc::Status Serialize(grpc::ByteBuffer* out) const;

 private:
  std::vector<Item> items_;
  std::vector<SharedPayload> payloads_;  // null: the item carries its data
};

using OutgoingRequests = OutgoingBatch<v1::Request>;
using OutgoingReplies = OutgoingBatch<v1::Reply>;

extern template class OutgoingBatch<v1::Request>;
extern template class OutgoingBatch<v1::Reply>;

}  // namespace dst

namespace grpc {

// Lets ClientAsyncReaderWriter<OutgoingRequests, ...> and
// ServerAsyncReaderWriter<OutgoingReplies, ...> write the batches (they
// are never read: the reading side parses the generated messages).
template <class Item>
class SerializationTraits<dst::OutgoingBatch<Item>, void> {
 public:
  static Status Serialize(const dst::OutgoingBatch<Item>& batch,
                          ByteBuffer* buffer, bool* own_buffer) {
    *own_buffer = true;
    return batch.Serialize(buffer);
  }
};

}  // namespace grpc

#endif  // DST_SERVICES_COMMON_OUTGOING_BATCH_H_
