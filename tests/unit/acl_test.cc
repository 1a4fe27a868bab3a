// ACLs: parsing with precise errors, matching by certificate identity,
// IPv4/IPv6 CIDR and Unix socket, first match wins, default deny; gRPC peer
// strings.
#include "services/common/acl.h"

#include <gtest/gtest.h>

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
  EXPECT_EQ(error("{a: b}"),
            "acl: expected a list of entries (identity/cidr/local, access)");
  EXPECT_EQ(error("[{identity: x}]"),
            "acl[0].access: required (read or read-write)");
  EXPECT_EQ(error("[{identity: x, access: all}]"),
            "acl[0].access: 'all' must be read or read-write");
  EXPECT_EQ(error("[{access: read}]"), "acl[0]: needs identity, cidr or local");
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
