// How a transaction's status becomes the errno an NBD client sees.
#ifndef DST_NBDKIT_PLUGIN_ERRNO_MAP_H_
#define DST_NBDKIT_PLUGIN_ERRNO_MAP_H_

#include <cstdint>

#include "dst/v1/exporter.pb.h"

namespace dst {

// `status` is a google.rpc.Code value (Reply.status); 0 maps to 0.
//   INVALID_ARGUMENT, UNIMPLEMENTED     -> EINVAL
//   OUT_OF_RANGE                        -> ENOSPC for writes/zero/trim, else
//   EINVAL FAILED_PRECONDITION (read-only)     -> EROFS PERMISSION_DENIED,
//   UNAUTHENTICATED  -> EPERM RESOURCE_EXHAUSTED                  -> ENOSPC
//   everything else                     -> EIO
int StatusToErrno(int32_t status, v1::Op op);

}  // namespace dst

#endif  // DST_NBDKIT_PLUGIN_ERRNO_MAP_H_
