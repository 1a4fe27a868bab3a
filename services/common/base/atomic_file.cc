// Atomic, durable small-file replacement: see atomic_file.h.
#include "services/common/base/atomic_file.h"

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <sys/stat.h>

#include "absl/strings/str_cat.h"

namespace dst {

namespace {
absl::Status Errno(const std::string& what) {
  return absl::Status(errno == ENOENT   ? absl::StatusCode::kNotFound
                      : errno == EACCES ? absl::StatusCode::kPermissionDenied
                                        : absl::StatusCode::kInternal,
                      absl::StrCat(what, ": ", std::strerror(errno)));
}

std::string DirectoryOf(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}
}  // namespace

absl::Status WriteFileAtomically(const std::string& path,
                                 absl::string_view contents) {
  // A name of its own: two writers of one path never write one file.
  std::string tmp = path + ".tmp.XXXXXX";
  int fd = ::mkostemp(tmp.data(), O_CLOEXEC);
  if (fd < 0) return Errno(absl::StrCat("cannot create ", tmp));
  if (::fchmod(fd, 0644) != 0) {
    absl::Status status = Errno(absl::StrCat("cannot chmod ", tmp));
    ::close(fd);
    ::unlink(tmp.c_str());
    return status;
  }
  size_t done = 0;
  while (done < contents.size()) {
    ssize_t n = ::write(fd, contents.data() + done, contents.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      absl::Status status = Errno(absl::StrCat("cannot write ", tmp));
      ::close(fd);
      ::unlink(tmp.c_str());
      return status;
    }
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) {
    absl::Status status = Errno(absl::StrCat("cannot fsync ", tmp));
    ::close(fd);
    ::unlink(tmp.c_str());
    return status;
  }
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    absl::Status status =
        Errno(absl::StrCat("cannot rename ", tmp, " to ", path));
    ::unlink(tmp.c_str());
    return status;
  }
  const std::string dir = DirectoryOf(path);
  int dir_fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd < 0) return Errno(absl::StrCat("cannot open ", dir));
  int rc = ::fsync(dir_fd);
  ::close(dir_fd);
  if (rc != 0) return Errno(absl::StrCat("cannot fsync ", dir));
  return absl::OkStatus();
}

absl::StatusOr<std::string> ReadWholeFile(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Errno(absl::StrCat("cannot open ", path));
  std::string contents;
  char buffer[65536];
  for (;;) {
    ssize_t n = ::read(fd, buffer, sizeof(buffer));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      absl::Status status = Errno(absl::StrCat("cannot read ", path));
      ::close(fd);
      return status;
    }
    if (n == 0) break;
    contents.append(buffer, static_cast<size_t>(n));
  }
  ::close(fd);
  return contents;
}

}  // namespace dst
