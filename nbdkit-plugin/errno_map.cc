// Status -> errno for the NBD client: see errno_map.h.
#include "nbdkit-plugin/errno_map.h"

#include <cerrno>

#include <grpcpp/support/status.h>

#include "services/common/protocol/request_validation.h"

namespace dst {

int StatusToErrno(int32_t status, v1::Op op) {
  switch (static_cast<grpc::StatusCode>(status)) {
    case grpc::StatusCode::OK:
      return 0;
    case grpc::StatusCode::UNIMPLEMENTED:
      // A zero that cannot be done fast (or at all): ENOTSUP tells nbdkit
      // to write zeroes instead, and a client asking for a fast zero that
      // it may do it another way.
      return op == v1::OP_WRITE_ZEROES ? ENOTSUP : EINVAL;
    case grpc::StatusCode::INVALID_ARGUMENT:
      return EINVAL;
    case grpc::StatusCode::OUT_OF_RANGE:
      return IsModifying(op) ? ENOSPC : EINVAL;
    case grpc::StatusCode::FAILED_PRECONDITION:
      return EROFS;
    case grpc::StatusCode::PERMISSION_DENIED:
    case grpc::StatusCode::UNAUTHENTICATED:
      return EPERM;
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return ENOSPC;
    default:
      return EIO;
  }
}

}  // namespace dst
