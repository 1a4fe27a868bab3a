// A batch of transactions (a RequestBatch) or of replies (a ReplyBatch) as
// gRPC delivered it, each item's `data` taken out as a Payload. A large
// payload (kSlicedPayloadBytes or more) shares the slices its bytes arrived
// in, where the generated parser would copy it into the message: a 1 MiB
// write or read is not copied on its way in at any hop.
//
// The transaction streams read IncomingReplies (transaction_stream.h) and
// the server streams IncomingRequests (server_stream.h); the
// grpc::SerializationTraits below let gRPC's async streams fill them. The
// bytes on the wire are the generated messages' encoding, so peers using
// the generated code (tools, other languages) see no difference.
#ifndef DST_SERVICES_COMMON_TRANSPORT_INCOMING_BATCH_H_
#define DST_SERVICES_COMMON_TRANSPORT_INCOMING_BATCH_H_

#include <cstddef>
#include <vector>

#include <grpcpp/grpcpp.h>
#include <grpcpp/impl/serialization_traits.h>

#include "absl/status/status.h"

#include "dst/v1/exporter.pb.h"
#include "services/common/transport/payload.h"

namespace dst {

template <class Item>  // v1::Request or v1::Reply
class IncomingBatch {
 public:
  // Parses the batch whose encoding is `slices` (in order), sharing the
  // slices' bytes with the large payloads. INVALID_ARGUMENT, saying what
  // is wrong, when the bytes are not a well-formed batch; the batch is
  // then empty.
  absl::Status Parse(const std::vector<grpc::Slice>& slices);

  size_t size() const { return items_.size(); }
  // The i-th item, its `data` field empty, and that data.
  Item& item(size_t i) { return items_[i]; }
  Payload& data(size_t i) { return data_[i]; }
  void Clear() {
    items_.clear();
    data_.clear();
  }

 private:
  std::vector<Item> items_;
  std::vector<Payload> data_;
};

using IncomingRequests = IncomingBatch<v1::Request>;
using IncomingReplies = IncomingBatch<v1::Reply>;

extern template class IncomingBatch<v1::Request>;
extern template class IncomingBatch<v1::Reply>;

}  // namespace dst

namespace grpc {

// Lets ClientAsyncReaderWriter<..., IncomingReplies> and
// ServerAsyncReaderWriter<..., IncomingRequests> read the batches (they
// are never written: the writing side has OutgoingBatch).
template <class Item>
class SerializationTraits<dst::IncomingBatch<Item>, void> {
 public:
  static Status Deserialize(ByteBuffer* buffer,
                            dst::IncomingBatch<Item>* batch) {
    std::vector<Slice> slices;
    Status dumped = buffer->Dump(&slices);  // references, not copies
    buffer->Clear();
    if (!dumped.ok()) return dumped;
    absl::Status parsed = batch->Parse(slices);
    if (!parsed.ok()) {
      return Status(StatusCode::INTERNAL, std::string(parsed.message()));
    }
    return Status::OK;
  }
};

}  // namespace grpc

#endif  // DST_SERVICES_COMMON_TRANSPORT_INCOMING_BATCH_H_
