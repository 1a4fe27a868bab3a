// Outgoing batches: see outgoing_batch.h.
//
// A batch is encoded as the repeated field 1 of RequestBatch/ReplyBatch:
// for each item the tag, the item's length and the item, whose fields are
// its header (serialized by protobuf, data empty) followed, when it has a
// shared payload, by the data field's tag, length and bytes. Field order
// does not matter to a protobuf parser. The header bytes of consecutive
// items share one slice; each shared payload is a slice of its own.
#include "services/common/outgoing_batch.h"

#include <cstdint>

#include <google/protobuf/io/coded_stream.h>

#include "services/common/tsan.h"

namespace dst {
namespace {

using google::protobuf::io::CodedOutputStream;

// RequestBatch.requests, ReplyBatch.replies.
constexpr uint32_t kItemsField = 1;
constexpr uint32_t LengthDelimitedTag(uint32_t field) {
  return (field << 3) | 2;
}

// Runs on whichever gRPC thread drops the slice's last reference.
void ReleasePayload(void* payload) {
  DST_TSAN_AFTER_GRPC(payload);
  delete static_cast<SharedPayload*>(payload);
}

}  // namespace

template <class Item>
grpc::Status OutgoingBatch<Item>::Serialize(grpc::ByteBuffer* out) const {
  static_assert(Item::kDataFieldNumber < 16, "the data tag is one byte");
  constexpr uint32_t kItemTag = LengthDelimitedTag(kItemsField);
  constexpr uint32_t kDataTag = LengthDelimitedTag(Item::kDataFieldNumber);
  // First pass: the size of each item and of each run of header bytes
  // (one before each shared payload, and one after the last).
  std::vector<size_t> item_sizes(items_.size());
  std::vector<size_t> run_sizes;
  size_t run = 0;
  for (size_t i = 0; i < items_.size(); ++i) {
    const size_t header = items_[i].ByteSizeLong();  // cached for pass two
    const size_t payload = payloads_[i] ? payloads_[i]->size() : 0;
    const size_t payload_prefix =
        payloads_[i] ? 1 + CodedOutputStream::VarintSize32(payload) : 0;
    item_sizes[i] = header + payload_prefix + payload;
    if (item_sizes[i] > UINT32_MAX) {
      return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                          "a transaction is larger than 4 GiB");
    }
    run += 1 + CodedOutputStream::VarintSize32(item_sizes[i]) + header +
           payload_prefix;
    if (payloads_[i]) {
      run_sizes.push_back(run);
      run = 0;
    }
  }
  run_sizes.push_back(run);
  // Second pass: the header runs, with the payload slices between them.
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
    if (payloads_[i] == nullptr) continue;
    const std::string& payload = *payloads_[i];
    p = CodedOutputStream::WriteVarint32ToArray(kDataTag, p);
    p = CodedOutputStream::WriteVarint32ToArray(
        static_cast<uint32_t>(payload.size()), p);
    if (!end_run()) break;
    auto* reference = new SharedPayload(payloads_[i]);
    DST_TSAN_BEFORE_GRPC(reference);  // released on a gRPC thread
    slices.emplace_back(const_cast<char*>(payload.data()), payload.size(),
                        ReleasePayload, reference);
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
