// libFuzzer target: request validation, the gate every network request
// passes. Any bytes that parse as a Request are validated against a fixed
// geometry; an accepted request must really be in range and aligned, with
// data matching its length.
#include <cstddef>
#include <cstdint>

#include "dst/v1/exporter.pb.h"
#include "services/common/request_validation.h"

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

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const dst::v1::Geometry geometry = MakeGeometry();
  dst::v1::Request request;
  if (!request.ParseFromArray(data, static_cast<int>(size))) return 0;
  for (bool read_only : {false, true}) {
    if (!dst::ValidateRequest(request, geometry, read_only).ok()) continue;
    const uint64_t end = request.offset() + request.length();
    const dst::v1::Op op = request.op();
    if (op == dst::v1::OP_FLUSH || op == dst::v1::OP_PING) {
      if (request.length() != 0 || !request.data().empty()) __builtin_trap();
      continue;
    }
    if (end < request.offset() || end > geometry.size()) __builtin_trap();
    if (request.offset() % 512 != 0 || request.length() % 512 != 0)
      __builtin_trap();
    if (read_only && dst::IsModifying(op)) __builtin_trap();
    if (op == dst::v1::OP_WRITE && request.data().size() != request.length()) {
      __builtin_trap();
    }
    if ((op == dst::v1::OP_READ || op == dst::v1::OP_WRITE ||
         op == dst::v1::OP_CHECKSUM) &&
        request.length() > geometry.max_transfer()) {
      __builtin_trap();
    }
  }
  return 0;
}
