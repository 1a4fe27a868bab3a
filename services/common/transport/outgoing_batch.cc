// Outgoing batches: see outgoing_batch.h.
//
// A batch is encoded as the repeated field 1 of RequestBatch/ReplyBatch:
// for each item the tag, the item's length and the item, whose fields are
// its header (serialized by protobuf, data empty) followed, when it has
// data, by the data field's tag, length and bytes. Field order does not
// matter to a protobuf parser. The headers and small payloads of
// consecutive items share one slice; each large payload is shared as the
// slices it already has.
#include "services/common/transport/outgoing_batch.h"

#include <cstdint>

#include <google/protobuf/io/coded_stream.h>

namespace dst {
namespace {

using google::protobuf::io::CodedOutputStream;

// RequestBatch.requests, ReplyBatch.replies.
constexpr uint32_t kItemsField = 1;
constexpr uint32_t LengthDelimitedTag(uint32_t field) {
  return (field << 3) | 2;
}

}  // namespace

template <class Item>
grpc::Status OutgoingBatch<Item>::Serialize(grpc::ByteBuffer* out) const {
  static_assert(Item::kDataFieldNumber < 16, "the data tag is one byte");
  constexpr uint32_t kItemTag = LengthDelimitedTag(kItemsField);
  constexpr uint32_t kDataTag = LengthDelimitedTag(Item::kDataFieldNumber);
  // First pass: the size of each item and of each run of bytes copied
  // (one before each shared payload, and one after the last).
  std::vector<size_t> item_sizes(items_.size());
  std::vector<size_t> run_sizes;
  size_t run = 0;
  for (size_t i = 0; i < items_.size(); ++i) {
    const size_t header = items_[i].ByteSizeLong();  // cached for pass two
    const size_t data = data_[i].size();
    const size_t data_prefix =
        data > 0 ? 1 + CodedOutputStream::VarintSize64(data) : 0;
    item_sizes[i] = header + data_prefix + data;
    if (item_sizes[i] > UINT32_MAX) {
      return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                          "a transaction is larger than 4 GiB");
    }
    run += 1 + CodedOutputStream::VarintSize32(item_sizes[i]) + header +
           data_prefix;
    if (data >= kSlicedPayloadBytes) {
      run_sizes.push_back(run);
      run = 0;
    } else {
      run += data;
    }
  }
  run_sizes.push_back(run);
  // Second pass: the runs, with the shared payloads' slices between them.
  std::vector<grpc::Slice> slices;
  slices.reserve(2 * run_sizes.size());
  size_t next_run = 0;
  grpc::Slice current(run_sizes[0]);
  uint8_t* p = const_cast<uint8_t*>(current.begin());
  // Ends the current run: it must be exactly full.
  auto end_run = [&]() {
    if (p != current.end()) return false;
    if (current.size() > 0) slices.push_back(std::move(current));
    return true;
  };
  for (size_t i = 0; i < items_.size(); ++i) {
    p = CodedOutputStream::WriteVarint32ToArray(kItemTag, p);
    p = CodedOutputStream::WriteVarint32ToArray(
        static_cast<uint32_t>(item_sizes[i]), p);
    p = items_[i].SerializeWithCachedSizesToArray(p);
    const Payload& data = data_[i];
    if (data.empty()) continue;
    p = CodedOutputStream::WriteVarint32ToArray(kDataTag, p);
    p = CodedOutputStream::WriteVarint64ToArray(data.size(), p);
    if (data.size() < kSlicedPayloadBytes) {
      data.CopyTo(reinterpret_cast<char*>(p));
      p += data.size();
      continue;
    }
    if (!end_run()) break;
    data.ShareInto(&slices);
    current = grpc::Slice(run_sizes[++next_run]);
    p = const_cast<uint8_t*>(current.begin());
  }
  if (!end_run()) {
    return grpc::Status(grpc::StatusCode::INTERNAL,
                        "outgoing batch: encoded size mismatch");
  }
  grpc::ByteBuffer buffer(slices.data(), slices.size());
  out->Swap(&buffer);
  return grpc::Status::OK;
}

template class OutgoingBatch<v1::Request>;
template class OutgoingBatch<v1::Reply>;

}  // namespace dst
