// WriterLease: one writer's token at a time, held while a stream is
// attached and for the timeout after the last one detaches.
#include "services/gateway/writer_lease.h"

#include <gtest/gtest.h>

namespace dst {
namespace {

constexpr absl::Duration kTimeout = absl::Seconds(30);
const absl::Time kStart = absl::FromUnixSeconds(1000);

TEST(WriterLeaseTest, AReadWriteOpenNeedsAToken) {
  WriterLease lease("vol0", kTimeout);
  EXPECT_EQ(lease.Acquire("", "nbdkit", kStart).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(lease.Holder(kStart), "");
}

TEST(WriterLeaseTest, AnotherTokenIsRefusedWhileAStreamIsAttached) {
  WriterLease lease("vol0", kTimeout);
  ASSERT_TRUE(lease.Acquire("a", "client-a", kStart).ok());
  ASSERT_TRUE(lease.Attach("a").ok());
  // Long past the timeout: an attached stream keeps the lease.
  const absl::Status refused =
      lease.Acquire("b", "client-b", kStart + 10 * kTimeout);
  EXPECT_EQ(refused.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(refused.message().find("vol0"), absl::string_view::npos);
  EXPECT_NE(refused.message().find("client-a"), absl::string_view::npos);
  EXPECT_EQ(lease.Holder(kStart + 10 * kTimeout), "client-a");
  EXPECT_EQ(lease.Attach("b").code(), absl::StatusCode::kFailedPrecondition);
}

TEST(WriterLeaseTest, TheLeaseLapsesTheTimeoutAfterTheLastStreamDetaches) {
  WriterLease lease("vol0", kTimeout);
  ASSERT_TRUE(lease.Acquire("a", "client-a", kStart).ok());
  ASSERT_TRUE(lease.Attach("a").ok());
  ASSERT_TRUE(lease.Attach("a").ok());
  lease.Detach(kStart + absl::Seconds(1));
  lease.Detach(kStart + absl::Seconds(2));  // the last: lapses at 2 s + 30 s
  const absl::Time lapse = kStart + absl::Seconds(2) + kTimeout;
  EXPECT_EQ(
      lease.Acquire("b", "client-b", lapse - absl::Milliseconds(1)).code(),
      absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(lease.Holder(lapse - absl::Milliseconds(1)), "client-a");
  EXPECT_EQ(lease.Holder(lapse), "");
  ASSERT_TRUE(lease.Acquire("b", "client-b", lapse).ok());
  EXPECT_EQ(lease.Holder(lapse), "client-b");
  // The old token's streams may no longer attach.
  EXPECT_EQ(lease.Attach("a").code(), absl::StatusCode::kFailedPrecondition);
}

TEST(WriterLeaseTest, AnOpenWithNoStreamHoldsTheLeaseForTheTimeout) {
  WriterLease lease("vol0", kTimeout);
  ASSERT_TRUE(lease.Acquire("a", "client-a", kStart).ok());
  EXPECT_FALSE(lease.Acquire("b", "client-b", kStart + kTimeout / 2).ok());
  EXPECT_TRUE(lease.Acquire("b", "client-b", kStart + kTimeout).ok());
}

TEST(WriterLeaseTest, TheHolderMayOpenAgainAndRenews) {
  WriterLease lease("vol0", kTimeout);
  ASSERT_TRUE(lease.Acquire("a", "client-a", kStart).ok());
  ASSERT_TRUE(lease.Acquire("a", "client-a", kStart + kTimeout / 2).ok());
  // Renewed at the second open: still held past the first one's lapse.
  EXPECT_FALSE(lease.Acquire("b", "client-b", kStart + kTimeout).ok());
  EXPECT_EQ(lease.Holder(kStart + kTimeout), "client-a");
}

TEST(WriterLeaseTest, AnUnnamedClientIsShownAsAQuestionMark) {
  WriterLease lease("vol0", kTimeout);
  ASSERT_TRUE(lease.Acquire("a", "", kStart).ok());
  EXPECT_EQ(lease.Holder(kStart), "?");
  EXPECT_EQ(lease.Attach("").code(), absl::StatusCode::kFailedPrecondition);
}

TEST(WriterLeaseTest, AttachBeforeAnyOpenSaysToOpenFirst) {
  WriterLease lease("vol0", kTimeout);
  const absl::Status refused = lease.Attach("a");
  EXPECT_EQ(refused.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(refused.message().find("Open it read-write first"),
            absl::string_view::npos);
}

}  // namespace
}  // namespace dst
