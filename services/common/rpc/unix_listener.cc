// Unix-socket listeners that record peer credentials: see unix_listener.h.
#include "services/common/rpc/unix_listener.h"

#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <grpcpp/server_posix.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "absl/strings/str_cat.h"

#include "services/common/base/log.h"
#include "services/common/rpc/unix_send_buffer.h"
#include "services/common/security/unix_peers.h"

namespace dst {
absl::StatusOr<std::unique_ptr<UnixListener>> UnixListener::Bind(
    const std::string& path) {
  sockaddr_un address{};
  if (path.empty() || path.size() >= sizeof(address.sun_path)) {
    return absl::InvalidArgumentError(
        absl::StrCat("unix:", path, ": path must be 1..",
                     sizeof(address.sun_path) - 1, " bytes"));
  }
  address.sun_family = AF_UNIX;
  std::memcpy(address.sun_path, path.data(), path.size());
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return absl::UnavailableError(
        absl::StrCat("unix:", path, ": socket: ", std::strerror(errno)));
  }
  ::unlink(path.c_str());  // a socket left by a crash
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&address),
             sizeof(address)) != 0 ||
      ::listen(fd, SOMAXCONN) != 0) {
    const int error = errno;
    ::close(fd);
    return absl::UnavailableError(absl::StrCat("cannot listen on unix:", path,
                                               ": ", std::strerror(error)));
  }
  const int wake_fd = ::eventfd(0, EFD_CLOEXEC);
  if (wake_fd < 0) {
    const int error = errno;
    ::close(fd);
    return absl::UnavailableError(
        absl::StrCat("unix:", path, ": eventfd: ", std::strerror(error)));
  }
  return std::unique_ptr<UnixListener>(new UnixListener(path, fd, wake_fd));
}

UnixListener::~UnixListener() {
  Stop();
  ::close(wake_fd_);
}

void UnixListener::Accept(grpc::Server* server) {
  thread_ = std::thread([this, server] { Loop(server); });
}

void UnixListener::Stop() {
  if (stopped_.exchange(true)) return;
  const uint64_t one = 1;
  (void)!::write(wake_fd_, &one, sizeof(one));
  if (thread_.joinable()) thread_.join();
  ::close(fd_);
  ::unlink(path_.c_str());
}

void UnixListener::Loop(grpc::Server* server) {
  pollfd fds[2] = {{fd_, POLLIN, 0}, {wake_fd_, POLLIN, 0}};
  while (!stopped_.load()) {
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      DST_LOG(Error, "unix:%s: poll: %s", path_, std::strerror(errno));
      return;
    }
    if (fds[1].revents != 0) return;
    if (fds[0].revents == 0) continue;
    const int connection =
        ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (connection < 0) {
      if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED) {
        DST_LOG(Warning, "unix:%s: accept: %s", path_, std::strerror(errno));
        // Out of descriptors: give the server a moment to close some.
        if (errno == EMFILE || errno == ENFILE) ::usleep(100000);
      }
      continue;
    }
    ucred credentials{};
    socklen_t length = sizeof(credentials);
    if (::getsockopt(connection, SOL_SOCKET, SO_PEERCRED, &credentials,
                     &length) != 0) {
      DST_LOG(Warning, "unix:%s: SO_PEERCRED: %s; connection refused", path_,
              std::strerror(errno));
      ::close(connection);
      continue;
    }
    if (!WidenUnixSendBuffer(connection)) {
      DST_LOG(Debug, "unix:%s: SO_SNDBUF: %s", path_, std::strerror(errno));
    }
    RememberUnixPeer(connection,
                     {credentials.uid, credentials.gid, credentials.pid});
    grpc::AddInsecureChannelFromFd(server, connection);  // takes the fd
  }
}

}  // namespace dst
