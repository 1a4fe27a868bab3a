// Address parsing: every form the flags and config accept, and refusals.
#include "services/common/base/address.h"

#include <gtest/gtest.h>

namespace dst {
namespace {

TEST(AddressTest, ParsesHostPort) {
  auto a = ParseAddress("127.0.0.1:7001");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->kind, Address::Kind::kTcp);
  EXPECT_EQ(a->host, "127.0.0.1");
  EXPECT_EQ(a->port, 7001);
  EXPECT_EQ(a->GrpcTarget(), "127.0.0.1:7001");
}

TEST(AddressTest, ParsesBracketedIpv6) {
  auto a = ParseAddress("[::1]:7000");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->host, "::1");
  EXPECT_EQ(a->GrpcTarget(), "[::1]:7000");
}

TEST(AddressTest, ParsesUnixPath) {
  auto a = ParseAddress("unix:/tmp/dst/gateway.sock");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->kind, Address::Kind::kUnix);
  EXPECT_EQ(a->path, "/tmp/dst/gateway.sock");
  EXPECT_EQ(a->GrpcTarget(), "unix:/tmp/dst/gateway.sock");
}

TEST(AddressTest, RefusesMalformed) {
  for (const char* bad :
       {"", "localhost", ":7000", "host:", "host:70000", "host:-1", "host:12a",
        "::1:7000", "[::1]7000", "[]:7000", "unix:", "[::1"}) {
    EXPECT_FALSE(ParseAddress(bad).ok()) << bad;
  }
}

TEST(AddressTest, RefusesOverlongUnixPath) {
  EXPECT_FALSE(ParseAddress("unix:/" + std::string(200, 'x')).ok());
}

}  // namespace
}  // namespace dst
