// The exporter's view of its backing store, behind an interface so tests can
// inject faults. FileStorage serves a regular file or a block device.
#ifndef DST_SERVICES_EXPORTER_STORAGE_H_
#define DST_SERVICES_EXPORTER_STORAGE_H_

#include <fcntl.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <sys/uio.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

#include "services/common/protocol/extent.h"
#include "services/common/transport/payload.h"

namespace dst {

// Thread-safe: every method may be called concurrently; callers validate
// ranges first (offset + length <= size()).
class Storage {
 public:
  virtual ~Storage() = default;
  virtual uint64_t size() const = 0;
  virtual bool can_trim() const = 0;
  // True when the data lives in memory (tmpfs, ramfs): a read or write is
  // a memory copy that never waits for a device, so the exporter may run
  // it on the thread that received it (ExporterOptions::inline_io).
  virtual bool in_memory() const { return false; }
  // Fills `out` with `length` bytes from `offset`.
  virtual absl::Status Read(uint64_t offset, size_t length, char* out) = 0;
  // Writes `data` at `offset`; `fua`: durable before returning.
  virtual absl::Status Write(uint64_t offset, const Payload& data,
                             bool fua) = 0;
  // Makes the range read as zeroes; `may_trim` allows deallocating it.
  virtual absl::Status WriteZeroes(uint64_t offset, uint64_t length,
                                   bool may_trim, bool fua) = 0;
  // WriteZeroes only where no data need be written (a hole punched when
  // `may_trim`, a range zeroed by the file system, a device's offload):
  // else UNIMPLEMENTED, with nothing changed. The default cannot.
  virtual bool can_fast_zero() const { return false; }
  virtual absl::Status FastZero(uint64_t offset, uint64_t length, bool may_trim,
                                bool fua) {
    (void)offset, (void)length, (void)may_trim, (void)fua;
    return absl::UnimplementedError("this storage cannot zero fast");
  }
  // Deallocates the range where it can; either way it then reads as
  // zeroes, so that the replicas of a mirror read the same after a trim.
  virtual absl::Status Trim(uint64_t offset, uint64_t length, bool fua) = 0;
  // Every write completed before the call is durable when it returns.
  virtual absl::Status Flush() = 0;
  // Grows to at least `size` bytes and returns the size now; never
  // shrinks. A file is extended (the new range reads as zeroes) and its new
  // size is durable on return; a block device is measured again and must
  // already hold `size`. FailedPrecondition when it cannot grow. size()
  // changes only once the new range may be used. The default cannot.
  virtual absl::StatusOr<uint64_t> Grow(uint64_t size) {
    (void)size;
    return absl::UnimplementedError("this storage cannot grow");
  }
  // Block status of [offset, offset + length): extents from `offset`, at
  // least one and covering at most the range; the answer may stop early
  // (NBD allows it): after `max_extents` extents. The default says data.
  virtual absl::StatusOr<std::vector<Extent>> Extents(uint64_t offset,
                                                      uint64_t length,
                                                      size_t max_extents) {
    (void)max_extents;
    return std::vector<Extent>{Extent{length, 0}};
  }
};

// The system calls FileStorage makes that tests replace to inject what a
// file system or device may answer (unsupported, short, failed).
struct FileSyscalls {
  std::function<ssize_t(int fd, const iovec* iov, int count, off_t offset,
                        int flags)>
      pwritev2 = ::pwritev2;
  std::function<int(int fd, int mode, off_t offset, off_t length)> fallocate =
      ::fallocate;
  std::function<off_t(int fd, off_t offset, int whence)> lseek = ::lseek;
};

struct FileStorageOptions {
  std::string path;
  // Regular file only: create it with this size if it is missing, and
  // refuse it if it is smaller; a larger file (grown by `dstctl resize`)
  // is served at its own size. 0: use the file's size (must exist).
  uint64_t size = 0;
  bool read_only = false;
  FileSyscalls syscalls;  // default: the real ones
};

// Opens a regular file or block device. Errors: NotFound (missing, no
// size given), InvalidArgument (size mismatch, not a file or device),
// PermissionDenied, Internal (other system errors).
absl::StatusOr<std::unique_ptr<Storage>> OpenFileStorage(
    const FileStorageOptions& options);

}  // namespace dst

#endif  // DST_SERVICES_EXPORTER_STORAGE_H_
