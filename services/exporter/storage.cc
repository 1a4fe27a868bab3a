// FileStorage: a regular file or a block device as an exporter's backing
// store. Data goes through the page cache; FLUSH and FUA use fdatasync /
// RWF_DSYNC so nothing acknowledged as durable is only in memory.
#include "services/exporter/storage.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <climits>
#include <cstring>
#include <limits>
#include <vector>

#include <linux/falloc.h>
#include <linux/fs.h>
#include <linux/magic.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/uio.h>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"

namespace dst {
namespace {

absl::Status ErrnoStatus(int error, absl::string_view what) {
  std::string message = absl::StrCat(what, ": ", std::strerror(error));
  switch (error) {
    case ENOENT:
      return absl::NotFoundError(message);
    case EACCES:
    case EPERM:
    case EROFS:
      return absl::PermissionDeniedError(message);
    case ENOSPC:
    case EDQUOT:
      return absl::ResourceExhaustedError(message);
    case EOPNOTSUPP:
      return absl::UnimplementedError(message);
    case EISDIR:
    case ENXIO:
      return absl::InvalidArgumentError(message);
    default:
      return absl::InternalError(message);  // EIO and friends
  }
}

class FileStorage : public Storage {
 public:
  FileStorage(int fd, uint64_t size, bool block_device, bool in_memory,
              std::string path, FileSyscalls syscalls)
      : fd_(fd),
        size_(size),
        block_device_(block_device),
        in_memory_(in_memory),
        path_(std::move(path)),
        sys_(std::move(syscalls)) {}
  ~FileStorage() override { ::close(fd_); }

  uint64_t size() const override {
    return size_.load(std::memory_order_acquire);
  }
  bool can_trim() const override { return true; }
  bool in_memory() const override { return in_memory_; }

  absl::Status Read(uint64_t offset, size_t length, char* out) override {
    while (length > 0) {
      ssize_t n = ::pread(fd_, out, length, static_cast<off_t>(offset));
      if (n < 0) {
        if (errno == EINTR) continue;
        return ErrnoStatus(errno, absl::StrCat("pread ", path_));
      }
      if (n == 0) {
        // Zeroes here would be served as good data: an error instead.
        return absl::DataLossError(
            absl::StrCat("pread ", path_, ": end of file at ", offset,
                         " (the backing file shrank under the exporter)"));
      }
      out += n;
      offset += static_cast<uint64_t>(n);
      length -= static_cast<size_t>(n);
    }
    return absl::OkStatus();
  }

  absl::Status Write(uint64_t offset, const Payload& data, bool fua) override {
    std::vector<iovec> pieces;
    data.ForEachPiece([&pieces](absl::string_view piece) {
      if (!piece.empty()) {
        pieces.push_back(iovec{const_cast<char*>(piece.data()), piece.size()});
      }
    });
    return WritePieces(offset, std::move(pieces), fua);
  }

  absl::Status WriteZeroes(uint64_t offset, uint64_t length, bool may_trim,
                           bool fua) override {
    absl::Status status = ZeroFast(offset, length, may_trim);
    if (!status.ok()) status = ZeroByWriting(offset, length);
    if (status.ok() && fua) status = Flush();
    return status;
  }

  bool can_fast_zero() const override { return true; }
  absl::Status FastZero(uint64_t offset, uint64_t length, bool may_trim,
                        bool fua) override {
    absl::Status status;
    if (block_device_) {
      // A block device's punch never falls back to writing zeroes
      // (BLKZEROOUT and zero-range may).
      if (!may_trim || !Punch(offset, length)) {
        status = absl::UnimplementedError(
            may_trim ? absl::StrCat("no zeroing offload on ", path_)
                     : "a block device zeroes fast only by deallocating");
      }
    } else {
      status = ZeroFast(offset, length, may_trim);
      if (!status.ok()) {
        status = absl::UnimplementedError(absl::StrCat(
            "no fast zero on ", path_, " (", status.message(), ")"));
      }
    }
    if (status.ok() && fua) status = Flush();
    return status;
  }

  absl::Status Trim(uint64_t offset, uint64_t length, bool fua) override {
    // Deallocates where the file system or device can, and reads as
    // zeroes in every case: a trim that left the data on one replica and
    // not on another would make them read differently.
    absl::Status status;
    if (block_device_) {
      uint64_t range[2] = {offset, length};
      if (::ioctl(fd_, BLKZEROOUT, range) != 0) {
        status = ErrnoStatus(errno, absl::StrCat("BLKZEROOUT ", path_));
      }
    } else if (!Punch(offset, length)) {
      status = ErrnoStatus(errno, absl::StrCat("trim ", path_));
    }
    if (!status.ok()) status = ZeroFast(offset, length, /*may_trim=*/false);
    if (!status.ok()) status = ZeroByWriting(offset, length);
    if (status.ok() && fua) status = Flush();
    return status;
  }

  absl::Status Flush() override {
    if (::fdatasync(fd_) != 0) {
      return ErrnoStatus(errno, absl::StrCat("fdatasync ", path_));
    }
    return absl::OkStatus();
  }

  absl::StatusOr<uint64_t> Grow(uint64_t size) override {
    absl::MutexLock lock(&grow_mu_);
    uint64_t now = 0;
    if (block_device_) {
      // The device grew under us (lvextend, a larger LUN) or it did not.
      if (::ioctl(fd_, BLKGETSIZE64, &now) != 0) {
        return ErrnoStatus(errno, absl::StrCat("BLKGETSIZE64 ", path_));
      }
      if (now < size) {
        return absl::FailedPreconditionError(absl::StrCat(
            path_, " is a block device of ", now, " bytes, fewer than ", size,
            ": grow the device first"));
      }
    } else {
      struct stat st;
      if (::fstat(fd_, &st) != 0) {
        return ErrnoStatus(errno, absl::StrCat("fstat ", path_));
      }
      now = static_cast<uint64_t>(st.st_size);
      if (now < size) {
        if (size > static_cast<uint64_t>(std::numeric_limits<off_t>::max())) {
          return absl::FailedPreconditionError(
              absl::StrCat(size, " bytes is past the largest file size"));
        }
        // The new range is a hole: it reads as zeroes and takes no space
        // until written. fsync: the size is metadata, and must be durable
        // before a gateway relies on it.
        if (::ftruncate(fd_, static_cast<off_t>(size)) != 0) {
          absl::Status status =
              ErrnoStatus(errno, absl::StrCat("grow ", path_));
          return absl::FailedPreconditionError(status.message());
        }
        if (::fsync(fd_) != 0) {
          return ErrnoStatus(errno, absl::StrCat("fsync ", path_));
        }
        now = size;
      }
    }
    if (now > size_.load(std::memory_order_relaxed)) {
      size_.store(now, std::memory_order_release);
    }
    return size_.load(std::memory_order_relaxed);
  }

  // A file's holes from SEEK_DATA and SEEK_HOLE; a block device, or a file
  // system that cannot say, is all data.
  absl::StatusOr<std::vector<Extent>> Extents(uint64_t offset, uint64_t length,
                                              size_t max_extents) override {
    const uint64_t end = offset + length;
    std::vector<Extent> extents;
    if (block_device_) return std::vector<Extent>{Extent{length, 0}};
    uint64_t at = offset;
    while (at < end && extents.size() < std::max<size_t>(max_extents, 1)) {
      off_t data = sys_.lseek(fd_, static_cast<off_t>(at), SEEK_DATA);
      if (data < 0 && errno == ENXIO) {  // only a hole from here to the end
        data = static_cast<off_t>(end);
      } else if (data < 0) {
        if (errno == EINVAL || errno == EOPNOTSUPP) break;  // cannot say
        return ErrnoStatus(errno, absl::StrCat("SEEK_DATA ", path_));
      }
      if (static_cast<uint64_t>(data) > at) {
        const uint64_t stop = std::min<uint64_t>(data, end);
        extents.push_back(Extent{stop - at, kExtentHole | kExtentZero});
        at = stop;
        continue;
      }
      uint64_t run_end = KnownDataEnd(at);
      if (run_end == 0) {
        off_t hole = sys_.lseek(fd_, static_cast<off_t>(at), SEEK_HOLE);
        if (hole < 0)
          return ErrnoStatus(errno, absl::StrCat("SEEK_HOLE ", path_));
        run_end = static_cast<uint64_t>(hole);
        KnowData(at, run_end);
      }
      const uint64_t stop = std::min<uint64_t>(run_end, end);
      extents.push_back(Extent{stop - at, 0});
      at = stop;
    }
    if (extents.empty()) extents.push_back(Extent{length, 0});
    return extents;
  }

 private:
  // The last run of data SEEK_HOLE found, for the queries that follow
  // inside it: on tmpfs SEEK_HOLE walks the page cache up to the next hole
  // (about 6 ms a GiB of data here), so a scan in pieces would walk a long
  // run once per piece. A hole punched since makes the run claim data
  // where there is none, which is still a true answer (data promises
  // nothing about the contents); the run is forgotten then, for precision.
  // 0: `at` is not inside the known run.
  uint64_t KnownDataEnd(uint64_t at) {
    absl::MutexLock lock(&known_mu_);
    return at >= known_start_ && at < known_end_ ? known_end_ : 0;
  }
  void KnowData(uint64_t start, uint64_t end) {
    absl::MutexLock lock(&known_mu_);
    known_start_ = start;
    known_end_ = end;
  }
  void ForgetData() { KnowData(0, 0); }

  // Zeroes without writing data where the file system or device can:
  // punching a hole first when allowed (the range then stays sparse).
  absl::Status ZeroFast(uint64_t offset, uint64_t length, bool may_trim) {
    if (block_device_) {
      uint64_t range[2] = {offset, length};
      if (::ioctl(fd_, BLKZEROOUT, range) == 0) return absl::OkStatus();
      return ErrnoStatus(errno, "BLKZEROOUT");
    }
    if (may_trim && Punch(offset, length)) return absl::OkStatus();
    if (sys_.fallocate(fd_, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE,
                       static_cast<off_t>(offset),
                       static_cast<off_t>(length)) == 0) {
      ForgetData();  // a file system may deallocate a zeroed range
      return absl::OkStatus();
    }
    return ErrnoStatus(errno, "fallocate");
  }

  // Deallocates [offset, +length) (it reads as zeroes after): false with
  // errno set when the file system cannot.
  bool Punch(uint64_t offset, uint64_t length) {
    if (sys_.fallocate(fd_, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                       static_cast<off_t>(offset),
                       static_cast<off_t>(length)) != 0) {
      return false;
    }
    ForgetData();
    return true;
  }

  // Writes `pieces` (none empty) in order from `offset`, resuming after a
  // short write; a received payload is written from the slices it arrived
  // in.
  absl::Status WritePieces(uint64_t offset, std::vector<iovec> pieces,
                           bool fua) {
    size_t first = 0;
    while (first < pieces.size()) {
      const int count =
          static_cast<int>(std::min<size_t>(pieces.size() - first, IOV_MAX));
      ssize_t n =
          sys_.pwritev2(fd_, &pieces[first], count, static_cast<off_t>(offset),
                        fua ? RWF_DSYNC : 0);
      if (n < 0) {
        if (errno == EINTR) continue;
        return ErrnoStatus(errno, absl::StrCat("pwrite ", path_));
      }
      if (n == 0) {  // no progress: retrying would loop forever
        return absl::InternalError(
            absl::StrCat("pwrite ", path_, " at ", offset, " wrote nothing"));
      }
      offset += static_cast<uint64_t>(n);
      size_t written = static_cast<size_t>(n);
      while (written > 0) {
        iovec& piece = pieces[first];
        if (written < piece.iov_len) {
          piece.iov_base = static_cast<char*>(piece.iov_base) + written;
          piece.iov_len -= written;
          break;
        }
        written -= piece.iov_len;
        ++first;
      }
    }
    return absl::OkStatus();
  }

  absl::Status ZeroByWriting(uint64_t offset, uint64_t length) {
    static const std::vector<char> kZeroes(1 << 20, 0);
    while (length > 0) {
      size_t n =
          static_cast<size_t>(std::min<uint64_t>(length, kZeroes.size()));
      absl::Status status = WritePieces(
          offset, {iovec{const_cast<char*>(kZeroes.data()), n}}, false);
      if (!status.ok()) return status;
      offset += n;
      length -= n;
    }
    return absl::OkStatus();
  }

  const int fd_;
  std::atomic<uint64_t> size_;
  absl::Mutex grow_mu_;  // one Grow at a time
  const bool block_device_;
  const bool in_memory_;
  const std::string path_;
  const FileSyscalls sys_;
  absl::Mutex known_mu_;  // the last data run found (KnownDataEnd)
  uint64_t known_start_ ABSL_GUARDED_BY(known_mu_) = 0;
  uint64_t known_end_ ABSL_GUARDED_BY(known_mu_) = 0;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Storage>> OpenFileStorage(
    const FileStorageOptions& options) {
  int flags = (options.read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC;
  int fd = ::open(options.path.c_str(), flags);
  if (fd < 0 && errno == ENOENT && options.size > 0 && !options.read_only) {
    fd = ::open(options.path.c_str(), flags | O_CREAT | O_EXCL, 0600);
    if (fd >= 0 && ::ftruncate(fd, static_cast<off_t>(options.size)) != 0) {
      absl::Status status = ErrnoStatus(errno, "ftruncate " + options.path);
      ::close(fd);
      return status;
    }
  }
  if (fd < 0) {
    if (errno == ENOENT) {
      return absl::NotFoundError(absl::StrCat(
          options.path, " does not exist (give --size to create it)"));
    }
    return ErrnoStatus(errno, absl::StrCat("open ", options.path));
  }
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    absl::Status status = ErrnoStatus(errno, "fstat " + options.path);
    ::close(fd);
    return status;
  }
  uint64_t size = 0;
  bool block_device = S_ISBLK(st.st_mode);
  if (block_device) {
    if (::ioctl(fd, BLKGETSIZE64, &size) != 0) {
      absl::Status status = ErrnoStatus(errno, "BLKGETSIZE64 " + options.path);
      ::close(fd);
      return status;
    }
  } else if (S_ISREG(st.st_mode)) {
    size = static_cast<uint64_t>(st.st_size);
  } else {
    ::close(fd);
    return absl::InvalidArgumentError(absl::StrCat(
        options.path, " is neither a regular file nor a block device"));
  }
  if (options.size != 0 && size < options.size) {
    ::close(fd);
    return absl::InvalidArgumentError(
        absl::StrCat(options.path, " is ", size, " bytes, fewer than the ",
                     options.size, " given by --size"));
  }
  // A file on tmpfs or ramfs lives in memory; a block device never counts
  // (even a RAM disk's calls go through the block layer).
  struct statfs fs;
  const bool in_memory = !block_device && ::fstatfs(fd, &fs) == 0 &&
                         (fs.f_type == TMPFS_MAGIC || fs.f_type == RAMFS_MAGIC);
  return std::unique_ptr<Storage>(new FileStorage(
      fd, size, block_device, in_memory, options.path, options.syscalls));
}

}  // namespace dst
