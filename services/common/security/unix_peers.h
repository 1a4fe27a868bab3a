// The peers of plaintext Unix connections, by file descriptor: a
// UnixListener (rpc/unix_listener.h) records the credentials of each
// connection it accepts (SO_PEERCRED) before handing it to gRPC, which
// names the peer "fd:N"; the ACL asks UnixPeerOf(N) to match `uid`.
//
// Thread-safe.
#ifndef DST_SERVICES_COMMON_SECURITY_UNIX_PEERS_H_
#define DST_SERVICES_COMMON_SECURITY_UNIX_PEERS_H_

#include <optional>

#include <sys/types.h>

namespace dst {

struct UnixCredentials {
  uid_t uid = 0;
  gid_t gid = 0;
  pid_t pid = 0;
};

// Records who is behind `fd`, replacing what an earlier connection with
// that number left.
void RememberUnixPeer(int fd, const UnixCredentials& credentials);

// The credentials recorded for `fd`, if that fd is a connection a
// UnixListener accepted.
std::optional<UnixCredentials> UnixPeerOf(int fd);

}  // namespace dst

#endif  // DST_SERVICES_COMMON_SECURITY_UNIX_PEERS_H_
