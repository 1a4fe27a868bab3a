// Plaintext Unix-socket listeners that know who connected.
//
// gRPC does not tell a service the uid of a Unix-socket peer. So for a
// plaintext Unix listener, dst accepts the connections itself, reads each
// peer's credentials (SO_PEERCRED: uid, gid, pid), remembers them by file
// descriptor, and hands the connection to the gRPC server
// (AddInsecureChannelFromFd). gRPC names such a peer "fd:N"; UnixPeerOf(N)
// gives back its credentials (security/unix_peers.h), so ACL entries can
// match `uid`.
//
// TLS-protected Unix listeners (TLS mode "require") stay gRPC's own: the
// fd hand-over is plaintext only. Their peers match by certificate.
#ifndef DST_SERVICES_COMMON_RPC_UNIX_LISTENER_H_
#define DST_SERVICES_COMMON_RPC_UNIX_LISTENER_H_

#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include <grpcpp/grpcpp.h>

#include "absl/status/statusor.h"

namespace dst {

class UnixListener {
 public:
  // Binds `path` (a stale socket file is replaced) and listens; Accept()
  // starts handing connections to `server`, which must be started and
  // outlive the listener.
  static absl::StatusOr<std::unique_ptr<UnixListener>> Bind(
      const std::string& path);
  ~UnixListener();
  UnixListener(const UnixListener&) = delete;
  UnixListener& operator=(const UnixListener&) = delete;

  void Accept(grpc::Server* server);
  // Stops accepting, closes the socket and removes its file. Connections
  // already handed over stay with the server.
  void Stop();

 private:
  UnixListener(std::string path, int fd, int wake_fd)
      : path_(std::move(path)), fd_(fd), wake_fd_(wake_fd) {}
  void Loop(grpc::Server* server);

  const std::string path_;
  const int fd_;
  const int wake_fd_;  // eventfd: Stop() wakes the accept loop
  std::thread thread_;
  std::atomic<bool> stopped_{false};
};

}  // namespace dst

#endif  // DST_SERVICES_COMMON_RPC_UNIX_LISTENER_H_
