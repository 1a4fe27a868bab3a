// Request validation: see request_validation.h.
#include "services/common/protocol/request_validation.h"

#include "absl/strings/str_cat.h"

#include "services/common/protocol/checksum.h"

namespace dst {
namespace {

bool IsPowerOfTwo(uint32_t value) {
  return value != 0 && (value & (value - 1)) == 0;
}

constexpr uint32_t kKnownFlags = v1::REQUEST_FLAG_FUA |
                                 v1::REQUEST_FLAG_NO_HOLE |
                                 v1::REQUEST_FLAG_FAST_ZERO;

}  // namespace

bool IsModifying(v1::Op op) {
  return op == v1::OP_WRITE || op == v1::OP_WRITE_ZEROES || op == v1::OP_TRIM;
}

absl::Status ValidateRequest(const v1::Request& request, size_t data_size,
                             const v1::Geometry& geometry, bool read_only) {
  return ValidateRequest(request, data_size, geometry, geometry.size(),
                         read_only);
}

absl::Status ValidateRequest(const v1::Request& request, size_t data_size,
                             const v1::Geometry& geometry, uint64_t size,
                             bool read_only) {
  const v1::Op op = request.op();
  const uint64_t offset = request.offset();
  const uint64_t length = request.length();
  if (request.flags() & ~kKnownFlags) {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown request flags 0x", absl::Hex(request.flags())));
  }
  const v1::ChecksumAlgorithm algorithm = request.checksum_algorithm();
  if (algorithm != v1::CHECKSUM_NONE) {
    if (ChecksumSize(algorithm) == 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "unknown checksum algorithm ", static_cast<int>(algorithm)));
    }
    if (!(geometry.features() & ChecksumFeature(algorithm))) {
      return absl::UnimplementedError(absl::StrCat(
          "checksum ", ChecksumName(algorithm), " is not supported"));
    }
  }
  if (op == v1::OP_WRITE && algorithm != v1::CHECKSUM_NONE) {
    if (request.checksum().size() != ChecksumSize(algorithm)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "a ", ChecksumName(algorithm), " checksum has ",
          ChecksumSize(algorithm), " bytes, not ", request.checksum().size()));
    }
  } else if (!request.checksum().empty()) {
    return absl::InvalidArgumentError(
        "only a write with a checksum algorithm carries a checksum");
  }
  switch (op) {
    case v1::OP_PING:
    case v1::OP_FLUSH:
      if (op == v1::OP_FLUSH && !(geometry.features() & v1::FEATURE_FLUSH)) {
        return absl::UnimplementedError("flush is not supported");
      }
      if (offset != 0 || length != 0 || data_size != 0) {
        return absl::InvalidArgumentError(
            absl::StrCat(v1::Op_Name(op), " takes no offset, length or data"));
      }
      return absl::OkStatus();
    case v1::OP_READ:
    case v1::OP_WRITE:
    case v1::OP_WRITE_ZEROES:
    case v1::OP_TRIM:
    case v1::OP_CHECKSUM:
      break;
    case v1::OP_BLOCK_STATUS:
      if (!(geometry.features() & v1::FEATURE_BLOCK_STATUS)) {
        return absl::UnimplementedError("block status is not supported");
      }
      break;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("unknown operation ", static_cast<int>(op)));
  }
  if (read_only && IsModifying(op)) {
    return absl::FailedPreconditionError(
        absl::StrCat(v1::Op_Name(op), " refused: read-only access"));
  }
  if (op == v1::OP_TRIM && !(geometry.features() & v1::FEATURE_TRIM)) {
    return absl::UnimplementedError("trim is not supported");
  }
  if (op == v1::OP_WRITE_ZEROES &&
      !(geometry.features() & v1::FEATURE_WRITE_ZEROES)) {
    return absl::UnimplementedError("write zeroes is not supported");
  }
  if (request.flags() & v1::REQUEST_FLAG_FAST_ZERO) {
    if (op != v1::OP_WRITE_ZEROES) {
      return absl::InvalidArgumentError(absl::StrCat(
          "the fast-zero flag is for OP_WRITE_ZEROES, not ", v1::Op_Name(op)));
    }
    if (!(geometry.features() & v1::FEATURE_FAST_ZERO)) {
      return absl::UnimplementedError("fast zero is not supported");
    }
  }
  if ((request.flags() & v1::REQUEST_FLAG_FUA) &&
      !(geometry.features() & v1::FEATURE_FUA)) {
    return absl::UnimplementedError("FUA is not supported");
  }
  if (length == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(v1::Op_Name(op), " with length 0"));
  }
  const uint64_t block = geometry.logical_block_size();
  if (block > 1 && (offset % block != 0 || length % block != 0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("offset ", offset, " or length ", length,
                     " not a multiple of the block size ", block));
  }
  if ((op == v1::OP_READ || op == v1::OP_WRITE || op == v1::OP_CHECKSUM) &&
      length > geometry.max_transfer()) {
    return absl::InvalidArgumentError(
        absl::StrCat("length ", length, " exceeds the maximum transfer ",
                     geometry.max_transfer()));
  }
  // offset + length cannot overflow: length < 2^32 and offset is compared
  // first, so size - offset is well defined.
  if (offset > size || length > size - offset) {
    return absl::OutOfRangeError(absl::StrCat("range [", offset, ", +", length,
                                              ") is past the end (", size,
                                              " bytes)"));
  }
  if (op == v1::OP_WRITE) {
    if (data_size != length) {
      return absl::InvalidArgumentError(absl::StrCat("write of length ", length,
                                                     " carries ", data_size,
                                                     " bytes of data"));
    }
  } else if (data_size != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(v1::Op_Name(op), " carries data"));
  }
  return absl::OkStatus();
}

int MaxMessageBytes(const v1::Geometry& geometry) {
  return static_cast<int>(geometry.max_transfer()) + (1 << 20);
}

size_t MaxBatchBytes(const v1::Geometry& geometry) {
  return geometry.max_transfer() + (512u << 10);
}

absl::Status ValidateGeometry(const v1::Geometry& geometry) {
  if (!IsPowerOfTwo(geometry.logical_block_size()) ||
      geometry.logical_block_size() > 65536) {
    return absl::InvalidArgumentError(
        absl::StrCat("logical block size ", geometry.logical_block_size(),
                     " is not a power of two in 1..65536"));
  }
  if (!IsPowerOfTwo(geometry.physical_block_size()) ||
      geometry.physical_block_size() < geometry.logical_block_size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("physical block size ", geometry.physical_block_size(),
                     " is not a power of two >= the logical block size"));
  }
  if (geometry.size() % geometry.logical_block_size() != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("size ", geometry.size(),
                     " is not a multiple of the logical block size ",
                     geometry.logical_block_size()));
  }
  if (geometry.max_transfer() == 0 ||
      geometry.max_transfer() % geometry.logical_block_size() != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("max transfer ", geometry.max_transfer(),
                     " is not a positive multiple of the logical block size"));
  }
  return absl::OkStatus();
}

}  // namespace dst
