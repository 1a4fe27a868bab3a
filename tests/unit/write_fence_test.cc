// WriteFence: who may write when a request runs. Streams without an epoch
// are not fenced (never claimed); a newer stream of the holder supersedes
// older ones; a stale gateway's new stream supersedes nothing.
#include "services/exporter/write_fence.h"

#include <gtest/gtest.h>

#include "tests/integration/test_cluster.h"

namespace dst {
namespace {

v1::ClaimRequest Claim(uint64_t epoch) {
  v1::ClaimRequest request;
  request.set_epoch(epoch);
  request.set_owner("g" + std::to_string(epoch));
  return request;
}

TEST(WriteFenceTest, WithoutAClaimNothingIsFenced) {
  TempDir dir;
  auto metadata = MetadataStore::Open(dir.path() + "/e.state");
  ASSERT_TRUE(metadata.ok());
  WriteFence fence(metadata->get());
  const uint64_t a = fence.OpenStream(0), b = fence.OpenStream(0);
  ASSERT_TRUE(fence.Enter(0, a).ok());
  fence.Exit(a);
  EXPECT_TRUE(fence.Enter(0, b).ok()) << "streams without an epoch coexist";
  fence.Exit(b);
}

TEST(WriteFenceTest, TheHoldersNewestStreamSupersedesItsOlderOnes) {
  TempDir dir;
  auto metadata = MetadataStore::Open(dir.path() + "/e.state");
  ASSERT_TRUE(metadata.ok());
  WriteFence fence(metadata->get());
  ASSERT_TRUE(fence.Claim(Claim(3)).ok());
  const uint64_t old_stream = fence.OpenStream(3);
  const uint64_t new_stream = fence.OpenStream(3);
  EXPECT_TRUE(absl::IsUnavailable(fence.Enter(3, old_stream)));
  ASSERT_TRUE(fence.Enter(3, new_stream).ok());
  fence.Exit(new_stream);
  // A stale gateway's stream neither writes nor disturbs the holder's.
  const uint64_t stale = fence.OpenStream(2);
  EXPECT_TRUE(absl::IsAborted(fence.Enter(2, stale)));
  EXPECT_TRUE(fence.Enter(3, new_stream).ok());
  fence.Exit(new_stream);
  // A newer claim fences the holder's stream too.
  ASSERT_TRUE(fence.Claim(Claim(4)).ok());
  EXPECT_TRUE(absl::IsAborted(fence.Enter(3, new_stream)));
}

}  // namespace
}  // namespace dst
