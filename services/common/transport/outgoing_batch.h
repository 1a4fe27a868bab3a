// A batch of transactions (a RequestBatch) or of replies (a ReplyBatch) on
// its way to gRPC, with each item's data beside it as a Payload: a large
// one (kSlicedPayloadBytes or more) goes to gRPC as slices that share its
// bytes, so a 1 MiB write or read is not copied into a serialized message
// on any hop (protobuf would copy it; protoc 3.21 ignores [ctype=CORD]).
// The bytes on the wire are exactly the RequestBatch/ReplyBatch encoding,
// so a peer reads them with the generated code.
//
// The transaction streams write OutgoingRequests (transaction_stream.h) and
// the server streams OutgoingReplies (server_stream.h); the
// grpc::SerializationTraits below let gRPC's async streams take them.
#ifndef DST_SERVICES_COMMON_TRANSPORT_OUTGOING_BATCH_H_
#define DST_SERVICES_COMMON_TRANSPORT_OUTGOING_BATCH_H_

#include <cstddef>
#include <utility>
#include <vector>

#include <grpcpp/grpcpp.h>
#include <grpcpp/impl/serialization_traits.h>

#include "dst/v1/exporter.pb.h"
#include "services/common/transport/payload.h"

namespace dst {

// The gRPC names of the two transaction stream methods, which carry these
// batches.
inline constexpr char kExporterStreamMethod[] = "/dst.v1.Exporter/Stream";
inline constexpr char kGatewayIoMethod[] = "/dst.v1.Gateway/Io";

template <class Item>  // v1::Request or v1::Reply
class OutgoingBatch {
 public:
  // Adds `item` (its own data field empty) with its data.
  void Add(Item item, Payload data) {
    items_.push_back(std::move(item));
    data_.push_back(std::move(data));
  }

  size_t size() const { return items_.size(); }
  void Clear() {
    items_.clear();
    data_.clear();
  }

  // The batch's wire encoding, its large payloads shared, not copied.
  grpc::Status Serialize(grpc::ByteBuffer* out) const;

 private:
  std::vector<Item> items_;
  std::vector<Payload> data_;
};

using OutgoingRequests = OutgoingBatch<v1::Request>;
using OutgoingReplies = OutgoingBatch<v1::Reply>;

extern template class OutgoingBatch<v1::Request>;
extern template class OutgoingBatch<v1::Reply>;

}  // namespace dst

namespace grpc {

// Lets ClientAsyncReaderWriter<OutgoingRequests, ...> and
// ServerAsyncReaderWriter<OutgoingReplies, ...> write the batches (they
// are never read: the reading side has IncomingBatch).
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

#endif  // DST_SERVICES_COMMON_TRANSPORT_OUTGOING_BATCH_H_
