// libFuzzer target: the gate every network request passes. The input is
// taken as one Request's encoding and read the way a stream reads it: as
// a RequestBatch item, through IncomingBatch (in slices cut from the
// input's own bytes), once as it is and once with a large data field
// after it, so that the field-by-field scan of large items runs too.
// Whatever IncomingBatch accepts, the generated parser must accept with the
// same fields and data; whatever the generated parser refuses, it must
// refuse. Each request read is then validated against a fixed geometry;
// an accepted request must really be in range and aligned, with data
// matching its length.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "google/protobuf/util/message_differencer.h"

#include "dst/v1/exporter.pb.h"
#include "services/common/protocol/request_validation.h"
#include "services/common/transport/incoming_batch.h"

namespace {

dst::v1::Geometry MakeGeometry() {
  dst::v1::Geometry g;
  g.set_size(uint64_t{1} << 30);
  g.set_logical_block_size(512);
  g.set_physical_block_size(4096);
  g.set_max_transfer(4u << 20);
  g.set_features(dst::v1::FEATURE_FLUSH | dst::v1::FEATURE_FUA |
                 dst::v1::FEATURE_TRIM | dst::v1::FEATURE_WRITE_ZEROES);
  return g;
}

// A RequestBatch of one item, `item`.
std::string Batch(const std::string& item) {
  std::string bytes;
  {
    google::protobuf::io::StringOutputStream out(&bytes);
    google::protobuf::io::CodedOutputStream coded(&out);
    coded.WriteVarint32((1 << 3) | 2);  // RequestBatch.requests
    coded.WriteVarint32(static_cast<uint32_t>(item.size()));
    coded.WriteString(item);
  }
  return bytes;
}

// `bytes` in slices whose sizes come from `seed` (1 to 64 bytes each).
std::vector<grpc::Slice> Cut(const std::string& bytes, uint8_t seed) {
  std::vector<grpc::Slice> slices;
  size_t at = 0;
  uint32_t state = seed * 2654435761u + 1;
  while (at < bytes.size()) {
    state = state * 1103515245u + 12345u;
    const size_t n =
        std::min<size_t>(1 + (state >> 16) % 64, bytes.size() - at);
    slices.emplace_back(bytes.data() + at, n);
    at += n;
  }
  return slices;
}

void CheckValidation(const dst::v1::Request& request, size_t data_size) {
  static const dst::v1::Geometry geometry = MakeGeometry();
  for (bool read_only : {false, true}) {
    if (!dst::ValidateRequest(request, data_size, geometry, read_only).ok()) {
      continue;
    }
    const uint64_t end = request.offset() + request.length();
    const dst::v1::Op op = request.op();
    if (op == dst::v1::OP_FLUSH || op == dst::v1::OP_PING) {
      if (request.length() != 0 || data_size != 0) __builtin_trap();
      continue;
    }
    if (end < request.offset() || end > geometry.size()) __builtin_trap();
    if (request.offset() % 512 != 0 || request.length() % 512 != 0)
      __builtin_trap();
    if (read_only && dst::IsModifying(op)) __builtin_trap();
    if (op == dst::v1::OP_WRITE && data_size != request.length()) {
      __builtin_trap();
    }
    if ((op == dst::v1::OP_READ || op == dst::v1::OP_WRITE ||
         op == dst::v1::OP_CHECKSUM) &&
        request.length() > geometry.max_transfer()) {
      __builtin_trap();
    }
  }
}

// Reads `item` as a one-item batch both ways and checks they agree.
void CheckItem(const std::string& item, uint8_t seed) {
  const std::string batch = Batch(item);
  dst::v1::RequestBatch generated;
  const bool generated_ok = generated.ParseFromString(batch);
  dst::IncomingRequests incoming;
  const bool ok = incoming.Parse(Cut(batch, seed)).ok();
  // Groups are refused where protobuf skips them: the one difference.
  if (!generated_ok && ok) __builtin_trap();
  if (!ok) {
    if (incoming.size() != 0) __builtin_trap();
    return;
  }
  if (incoming.size() != 1 || generated.requests_size() != 1) __builtin_trap();
  dst::v1::Request rejoined = incoming.item(0);
  if (!rejoined.data().empty()) __builtin_trap();
  rejoined.set_data(incoming.data(0).ToString());
  if (!google::protobuf::util::MessageDifferencer::Equals(
          rejoined, generated.requests(0))) {
    __builtin_trap();
  }
  CheckValidation(incoming.item(0), incoming.data(0).size());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string item(reinterpret_cast<const char*>(data), size);
  const uint8_t seed = size > 0 ? data[size / 2] : 0;
  CheckItem(item, seed);
  // The same fields with a large data field after them (it wins, as the
  // last occurrence does): the item is then scanned, not parsed whole.
  dst::v1::Request large;
  large.set_data(std::string(dst::kSlicedPayloadBytes, 'd'));
  CheckItem(item + large.SerializeAsString(), seed);
  return 0;
}
