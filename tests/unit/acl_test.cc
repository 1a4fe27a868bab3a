// ACLs: parsing with precise errors, matching by certificate identity,
// IPv4/IPv6 CIDR, Unix socket and Unix peer uid, first match wins, default
// deny; gRPC peer strings.
#include "services/common/security/acl.h"

#include <unistd.h>

#include <cstdlib>
#include <cstring>

#include <grpcpp/generic/async_generic_service.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "absl/strings/str_cat.h"

#include "services/common/rpc/unix_listener.h"
#include "services/common/security/unix_peers.h"

namespace dst {
namespace {

Peer WithIdentity(const std::string& peer, const std::string& identity) {
  Peer p = PeerFromString(peer);
  p.identities.push_back(identity);
  return p;
}

TEST(AclTest, PeerStrings) {
  Peer v4 = PeerFromString("ipv4:10.1.2.3:4567");
  EXPECT_TRUE(v4.has_ip);
  EXPECT_FALSE(v4.local);
  Peer v6 = PeerFromString("ipv6:[::1]:4567");
  EXPECT_TRUE(v6.has_ip);
  EXPECT_EQ(v6.ip[15], 1);
  EXPECT_EQ(PeerFromString("ipv6:%5B::1%5D:4567").ip, v6.ip)
      << "gRPC percent-encodes the brackets";
  Peer mapped = PeerFromString("ipv6:[::ffff:10.1.2.3]:80");
  EXPECT_EQ(mapped.ip, v4.ip) << "an IPv4-mapped peer is its IPv4 address";
  Peer unix_peer = PeerFromString("unix:/tmp/x.sock");
  EXPECT_TRUE(unix_peer.local);
  EXPECT_FALSE(unix_peer.has_ip);
  EXPECT_FALSE(PeerFromString("garbage").has_ip);
}

TEST(AclTest, FirstMatchWinsAndNoMatchIsDenied) {
  auto acl = Acl::Parse(R"(
- identity: dst-gateway
  access: read-write
- cidr: 10.0.0.0/8
  access: read
- cidr: "2001:db8::/32"
  access: read-write
- local: true
  access: read
- identity: backup
  cidr: 192.168.1.0/24
  access: read-write
)");
  ASSERT_TRUE(acl.ok()) << acl.status();
  EXPECT_EQ(acl->Check(WithIdentity("ipv4:10.1.1.1:1", "dst-gateway")),
            Access::kReadWrite);
  EXPECT_EQ(acl->Check(PeerFromString("ipv4:10.1.1.1:1")), Access::kRead);
  EXPECT_EQ(acl->Check(PeerFromString("ipv4:11.1.1.1:1")), Access::kNone);
  EXPECT_EQ(acl->Check(PeerFromString("ipv6:[2001:db8::7]:1")),
            Access::kReadWrite);
  EXPECT_EQ(acl->Check(PeerFromString("ipv6:[2001:db9::7]:1")), Access::kNone);
  EXPECT_EQ(acl->Check(PeerFromString("unix:/run/x.sock")), Access::kRead);
  // Every field of an entry must match.
  EXPECT_EQ(acl->Check(WithIdentity("ipv4:192.168.1.5:1", "backup")),
            Access::kReadWrite);
  EXPECT_EQ(acl->Check(WithIdentity("ipv4:192.168.2.5:1", "backup")),
            Access::kNone);
  EXPECT_EQ(acl->Check(PeerFromString("ipv4:192.168.1.5:1")), Access::kNone);
}

// A connection accepted by a UnixListener is "fd:N" to gRPC; its uid comes
// from the listener's record of SO_PEERCRED, here a real socket pair.
TEST(AclTest, UnixPeerUids) {
  // Under /tmp: a Unix socket path has at most 107 bytes, and test
  // runners' temporary directories can be longer.
  std::string dir = "/tmp/dst-acl-uid-XXXXXX";
  ASSERT_NE(::mkdtemp(dir.data()), nullptr);
  const std::string path = dir + "/s.sock";
  absl::StatusOr<std::unique_ptr<UnixListener>> listener =
      UnixListener::Bind(path);
  ASSERT_TRUE(listener.ok()) << listener.status();
  grpc::CallbackGenericService generic;  // a server needs a service
  grpc::ServerBuilder builder;
  builder.RegisterCallbackGenericService(&generic);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  ASSERT_NE(server, nullptr);
  (*listener)->Accept(server.get());
  const int client = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::memcpy(address.sun_path, path.c_str(), path.size());
  ASSERT_EQ(
      ::connect(client, reinterpret_cast<sockaddr*>(&address), sizeof(address)),
      0);
  // The listener accepted the connection on some descriptor of this
  // process (which one depends on what else is open): this test's
  // connection is the only one a UnixListener accepted here, so look at
  // every descriptor the process may have.
  std::optional<uint32_t> uid;
  for (int attempt = 0; attempt < 500 && !uid.has_value(); ++attempt) {
    for (int fd = 0; fd < 65536 && !uid.has_value(); ++fd) {
      if (std::optional<UnixCredentials> found = UnixPeerOf(fd)) {
        Peer peer = PeerFromString("fd:" + std::to_string(fd));
        EXPECT_TRUE(peer.local);
        EXPECT_EQ(peer.uid, found->uid);
        EXPECT_EQ(found->pid, ::getpid());
        uid = peer.uid;
      }
    }
    if (!uid.has_value()) ::usleep(10000);
  }
  ASSERT_TRUE(uid.has_value()) << "no credentials recorded for the connection";
  EXPECT_EQ(*uid, ::getuid());

  auto acl = Acl::Parse(absl::StrCat(
      "[{uid: ", ::getuid() + 1, ", access: read-write}, {uid: ", ::getuid(),
      ", access: read}]"));
  ASSERT_TRUE(acl.ok()) << acl.status();
  Peer me;
  me.local = true;
  me.uid = ::getuid();
  EXPECT_EQ(acl->Check(me), Access::kRead);
  Peer other = me;
  other.uid = ::getuid() + 2;
  EXPECT_EQ(acl->Check(other), Access::kNone);
  EXPECT_EQ(acl->Check(PeerFromString("unix:/x.sock")), Access::kNone)
      << "a Unix peer without a known uid matches no uid entry";
  EXPECT_FALSE(PeerFromString("fd:99999").uid.has_value())
      << "an fd no listener accepted has no uid";
  ::close(client);
  (*listener)->Stop();
  server->Shutdown(std::chrono::system_clock::now());
  EXPECT_NE(::access(path.c_str(), F_OK), 0) << "Stop removes the socket file";
  ::rmdir(dir.c_str());
}

TEST(AclTest, HostAddressesAndPrefixes) {
  auto acl = Acl::Parse(
      "[{cidr: 127.0.0.1, access: read-write}, {cidr: '::1', access: read}]");
  ASSERT_TRUE(acl.ok()) << acl.status();
  EXPECT_EQ(acl->Check(PeerFromString("ipv4:127.0.0.1:9")), Access::kReadWrite);
  EXPECT_EQ(acl->Check(PeerFromString("ipv4:127.0.0.2:9")), Access::kNone);
  EXPECT_EQ(acl->Check(PeerFromString("ipv6:[::1]:9")), Access::kRead);
}

TEST(AclTest, ErrorsNameTheEntry) {
  auto error = [](const std::string& text) {
    return std::string(Acl::Parse(text).status().message());
  };
  EXPECT_EQ(
      error("{a: b}"),
      "acl: expected a list of entries (identity/cidr/local/uid, access)");
  EXPECT_EQ(error("[{identity: x}]"),
            "acl[0].access: required (read or read-write)");
  EXPECT_EQ(error("[{identity: x, access: all}]"),
            "acl[0].access: 'all' must be read or read-write");
  EXPECT_EQ(error("[{access: read}]"),
            "acl[0]: needs identity, cidr, local or uid");
  EXPECT_EQ(error("[{uid: -1, access: read}]"),
            "acl[0].uid: '-1' is not a user id");
  EXPECT_EQ(error("[{uid: root, access: read}]"),
            "acl[0].uid: 'root' is not a user id");
  EXPECT_EQ(error("[{identity: x, access: read}, {cidr: 10.0.0.0/33, "
                  "access: read}]"),
            "acl[1].cidr: '10.0.0.0/33': prefix must be 0..32");
  EXPECT_EQ(error("[{cidr: nohost, access: read}]"),
            "acl[0].cidr: 'nohost' is not an address");
  EXPECT_EQ(error("[{user: root, access: read}]"), "acl[0].user: unknown key");
  EXPECT_EQ(error("[{local: maybe, access: read}]"),
            "acl[0].local: expected true or false");
}

TEST(AclTest, HolderWithoutFileAllowsAndWithBadFileFails) {
  AclHolder open;
  EXPECT_EQ(open.Check(PeerFromString("ipv4:1.2.3.4:5")), Access::kReadWrite);
  AclHolder missing("/nonexistent/acl.yaml");
  EXPECT_FALSE(missing.Reload().ok());
  EXPECT_EQ(missing.Check(PeerFromString("ipv4:1.2.3.4:5")), Access::kNone)
      << "an ACL that never loaded denies";
}

}  // namespace
}  // namespace dst
