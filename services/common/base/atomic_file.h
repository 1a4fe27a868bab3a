// Small files replaced atomically and durably: the exporter's metadata and
// the gateway's volume state. A reader sees the old or the new contents,
// never a mix, across a crash at any point.
#ifndef DST_SERVICES_COMMON_BASE_ATOMIC_FILE_H_
#define DST_SERVICES_COMMON_BASE_ATOMIC_FILE_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace dst {

// Writes `contents` to a new PATH.tmp.XXXXXX (a name of its own, so that
// writers racing on one path never share a file), fsyncs it, renames it
// over `path` and fsyncs the directory.
absl::Status WriteFileAtomically(const std::string& path,
                                 absl::string_view contents);

// The whole file; NotFound when it does not exist.
absl::StatusOr<std::string> ReadWholeFile(const std::string& path);

}  // namespace dst

#endif  // DST_SERVICES_COMMON_BASE_ATOMIC_FILE_H_
