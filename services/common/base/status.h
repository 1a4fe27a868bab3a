// Status helpers shared by every dst component: the RETURN_IF_ERROR /
// ASSIGN_OR_RETURN macros Abseil 20220623 lacks, and the one place where
// absl::Status and grpc::Status are converted into each other.
#ifndef DST_SERVICES_COMMON_BASE_STATUS_H_
#define DST_SERVICES_COMMON_BASE_STATUS_H_

#include <grpcpp/support/status.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define DST_CONCAT_INNER_(a, b) a##b
#define DST_CONCAT_(a, b) DST_CONCAT_INNER_(a, b)

// Returns from the enclosing function if `expr` (an absl::Status) is not OK.
#define RETURN_IF_ERROR(expr)                  \
  do {                                         \
    ::absl::Status dst_status_ = (expr);       \
    if (!dst_status_.ok()) return dst_status_; \
  } while (0)

// `lhs = value of expr` or return its error. `expr` is an absl::StatusOr<T>.
#define ASSIGN_OR_RETURN(lhs, expr) \
  ASSIGN_OR_RETURN_IMPL_(DST_CONCAT_(dst_statusor_, __LINE__), lhs, expr)
// `tmp` and `lhs` name or declare variables: they cannot be parenthesized.
// NOLINTBEGIN(bugprone-macro-parentheses)
#define ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                           \
  if (!tmp.ok()) return tmp.status();          \
  lhs = std::move(tmp).value()
// NOLINTEND(bugprone-macro-parentheses)

namespace dst {

// The canonical codes of absl and gRPC share numbers; these convert.
grpc::Status ToGrpcStatus(const absl::Status& status);
absl::Status FromGrpcStatus(const grpc::Status& status);

}  // namespace dst

#endif  // DST_SERVICES_COMMON_BASE_STATUS_H_
