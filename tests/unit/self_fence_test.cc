// SelfFence: the deadline is the renewal's send time plus the TTL less the
// clock-rate margin; a later renewal moves it forward, an older answer
// never moves it back; Expire ends it at once (or keeps a deadline that
// has passed).
#include "services/gateway/ha/self_fence.h"

#include <gtest/gtest.h>

namespace dst {
namespace {

TEST(SelfFenceTest, NeverSetIsExpired) {
  SelfFence fence;
  EXPECT_TRUE(fence.ExpiredAt(absl::Seconds(1)));
  EXPECT_TRUE(fence.Expired());
}

TEST(SelfFenceTest, TheDeadlineIsTheSendTimePlusTheTtlLessTheMargin) {
  SelfFence fence(/*rate_margin=*/0.1);
  fence.Renewed(absl::Seconds(100), absl::Seconds(2));
  EXPECT_FALSE(fence.ExpiredAt(absl::Seconds(101)));
  EXPECT_FALSE(fence.ExpiredAt(absl::Milliseconds(101799)));
  EXPECT_TRUE(fence.ExpiredAt(absl::Milliseconds(101800)))
      << "2 s less 10% after the renewal was sent";
}

TEST(SelfFenceTest, AnOlderRenewalsAnswerNeverShortensTheDeadline) {
  SelfFence fence(0.1);
  fence.Renewed(absl::Seconds(110), absl::Seconds(2));  // newer, answered first
  fence.Renewed(absl::Seconds(100), absl::Seconds(2));  // older, late
  EXPECT_FALSE(fence.ExpiredAt(absl::Seconds(111)));
  EXPECT_TRUE(fence.ExpiredAt(absl::Seconds(112)));
}

TEST(SelfFenceTest, ExpireEndsItAtOnce) {
  SelfFence fence;
  fence.Renewed(SelfFence::Now(), absl::Seconds(60));
  EXPECT_FALSE(fence.Expired());
  EXPECT_GT(fence.Left(), absl::Seconds(50));
  fence.Expire();
  EXPECT_TRUE(fence.Expired());
  EXPECT_LE(fence.Left(), absl::ZeroDuration());
  EXPECT_GT(fence.Left(), -absl::Seconds(10)) << "the deadline is now";
  fence.Renewed(absl::Seconds(1), absl::Seconds(2));
  EXPECT_TRUE(fence.Expired()) << "a stale renewal does not revive it";
}

TEST(SelfFenceTest, ExpireKeepsADeadlineThatHadPassed) {
  SelfFence fence(0.1);
  const absl::Duration sent = SelfFence::Now() - absl::Seconds(30);
  fence.Renewed(sent, absl::Seconds(10));  // deadline 21 s ago
  fence.Expire();
  EXPECT_LT(fence.Left(), -absl::Seconds(20))
      << "the deadline reported is when replies stopped, not the Expire call";
}

}  // namespace
}  // namespace dst
