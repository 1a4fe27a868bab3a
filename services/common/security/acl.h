// Access control lists: who may read or write, matched on every request.
//
// An ACL is a list of entries; the first entry that matches a peer decides
// its access, and a peer no entry matches is denied. An entry matches when
// every field it has matches:
//   identity: a name in the peer's TLS client certificate (its CN or any
//             DNS, URI or IP subject alternative name);
//   cidr:     the peer's source address (IPv4 or IPv6, "10.0.0.0/8",
//             "::1/128", a bare address for one host);
//   local:    true for a peer on a Unix socket;
//   uid:      the user id of a peer on a plaintext Unix socket (read from
//             the socket by the listener; see unix_listener.h).
// access is "read" or "read-write".
//
// File form (YAML, --acl=FILE):
//   - identity: dst-gateway
//     access: read-write
//   - cidr: 10.1.0.0/16
//     access: read
//   - uid: 0
//     access: read-write
#ifndef DST_SERVICES_COMMON_SECURITY_ACL_H_
#define DST_SERVICES_COMMON_SECURITY_ACL_H_

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"

namespace dst {

enum class Access { kNone = 0, kRead = 1, kReadWrite = 2 };

// Who is on the other end of a call.
struct Peer {
  std::vector<std::string> identities;  // from a verified client certificate
  bool has_ip = false;
  std::array<uint8_t, 16> ip{};  // IPv4 as ::ffff:a.b.c.d
  bool local = false;            // Unix socket
  std::optional<uint32_t> uid;   // plaintext Unix socket: the peer's user
  std::string text;              // for messages: the gRPC peer string
};

// The peer of a call (TLS identities from its auth context).
Peer PeerOf(const grpc::ServerContextBase& context);
// Parses a gRPC peer string ("ipv4:1.2.3.4:5", "ipv6:[::1]:5", "unix:...",
// or "fd:N" for a connection a UnixListener accepted: local, with its uid).
Peer PeerFromString(absl::string_view text);

class Acl {
 public:
  struct Entry {
    std::string identity;
    bool has_cidr = false;
    std::array<uint8_t, 16> network{};
    int prefix = 0;  // bits, over the 128-bit form
    std::optional<bool> local;
    std::optional<uint32_t> uid;
    Access access = Access::kNone;
  };

  // Parses the YAML form; errors name the entry ("acl[2].cidr: ...").
  static absl::StatusOr<Acl> Parse(absl::string_view yaml);
  static absl::StatusOr<Acl> Load(const std::string& path);

  Access Check(const Peer& peer) const;
  size_t size() const { return entries_.size(); }

 private:
  std::vector<Entry> entries_;
};

// An ACL that SIGHUP can replace; a null ACL allows everything.
class AclHolder {
 public:
  AclHolder() = default;
  explicit AclHolder(std::string path) : path_(std::move(path)) {}
  // Loads the file (again); on error the previous ACL stays.
  absl::Status Reload();
  bool enabled() const { return !path_.empty(); }
  const std::string& path() const { return path_; }
  Access Check(const Peer& peer) const;

 private:
  const std::string path_;
  mutable absl::Mutex mu_;
  std::shared_ptr<const Acl> acl_ ABSL_GUARDED_BY(mu_);
};

std::string AccessName(Access access);

}  // namespace dst

#endif  // DST_SERVICES_COMMON_SECURITY_ACL_H_
