// Validation of a transaction against an export's or a volume's geometry.
// Every Request from the network passes through here before it touches a
// volume or a disk; the status says precisely what is wrong:
//   INVALID_ARGUMENT   unknown op, misaligned, length/data mismatch
//   OUT_OF_RANGE       offset+length past the end (NBD: ENOSPC/EINVAL)
//   FAILED_PRECONDITION write/trim/zero on a read-only export or stream
//                      (NBD: EROFS; PERMISSION_DENIED is kept for ACLs)
//   UNIMPLEMENTED      an op the export does not support
#ifndef DST_SERVICES_COMMON_PROTOCOL_REQUEST_VALIDATION_H_
#define DST_SERVICES_COMMON_PROTOCOL_REQUEST_VALIDATION_H_

#include <cstddef>
#include <cstdint>

#include "absl/status/status.h"

#include "dst/v1/exporter.pb.h"

namespace dst {

// True for ops that change the contents of the export.
bool IsModifying(v1::Op op);

// `data_size` is the size of the request's data (its Payload: the
// request's own data field is empty). `read_only` is the access of the
// stream (export read-only, or the client opened the stream read-only).
absl::Status ValidateRequest(const v1::Request& request, size_t data_size,
                             const v1::Geometry& geometry, bool read_only);
// The same against `size` in place of geometry.size() (an export that
// grows while streams read requests).
absl::Status ValidateRequest(const v1::Request& request, size_t data_size,
                             const v1::Geometry& geometry, uint64_t size,
                             bool read_only);

// The largest gRPC message a stream peer must accept for `geometry`, and
// the batch size a sender must stay under (room for per-request headers).
int MaxMessageBytes(const v1::Geometry& geometry);
size_t MaxBatchBytes(const v1::Geometry& geometry);

// Checks a geometry is usable: size a multiple of the logical block size,
// block sizes powers of two, max_transfer a positive multiple.
absl::Status ValidateGeometry(const v1::Geometry& geometry);

}  // namespace dst

#endif  // DST_SERVICES_COMMON_PROTOCOL_REQUEST_VALIDATION_H_
