// MetadataStore: epochs only go up, a held epoch is kept only by its owner,
// generations persist, writers are checked against the current epoch, and a
// damaged file stops the exporter instead of resetting its epoch.
#include "services/exporter/metadata_store.h"

#include <fstream>

#include <gtest/gtest.h>

#include "tests/integration/test_cluster.h"

namespace dst {
namespace {

v1::ClaimRequest Claim(uint64_t epoch, const std::string& owner) {
  v1::ClaimRequest request;
  request.set_epoch(epoch);
  request.set_owner(owner);
  return request;
}

TEST(MetadataStoreTest, EpochsGoUpAndFenceOlderWriters) {
  TempDir dir;
  const std::string path = dir.path() + "/e.state";
  auto store = MetadataStore::Open(path);
  ASSERT_TRUE(store.ok());
  EXPECT_TRUE((*store)->CheckWriter(0).ok()) << "never claimed: no fencing";
  ASSERT_TRUE((*store)->Claim(Claim(1, "a")).ok());
  EXPECT_TRUE((*store)->Claim(Claim(1, "a")).ok()) << "the holder keeps it";
  EXPECT_TRUE(absl::IsAborted((*store)->Claim(Claim(1, "b")).status()));
  EXPECT_TRUE((*store)->CheckWriter(1).ok());
  ASSERT_TRUE((*store)->Claim(Claim(2, "b")).ok());
  absl::Status old = (*store)->CheckWriter(1);
  EXPECT_TRUE(absl::IsAborted(old));
  EXPECT_NE(old.message().find("fenced"), std::string::npos);
  EXPECT_TRUE(absl::IsAborted((*store)->CheckWriter(0)));
  EXPECT_TRUE(absl::IsAborted((*store)->Claim(Claim(1, "a")).status()));
  EXPECT_TRUE(absl::IsInvalidArgument((*store)->Claim(Claim(0, "a")).status()));
}

TEST(MetadataStoreTest, ClaimsAndGenerationsSurviveARestart) {
  TempDir dir;
  const std::string path = dir.path() + "/e.state";
  {
    auto store = MetadataStore::Open(path);
    ASSERT_TRUE(store.ok());
    v1::ClaimRequest claim = Claim(7, "gw");
    claim.set_set_generations(true);
    claim.add_generations(42);
    claim.add_generations(41);
    ASSERT_TRUE((*store)->Claim(claim).ok());
  }
  auto store = MetadataStore::Open(path);
  ASSERT_TRUE(store.ok());
  v1::ReplicaMetadata md = (*store)->Get();
  EXPECT_EQ(md.epoch(), 7u);
  EXPECT_EQ(md.owner(), "gw");
  ASSERT_EQ(md.generations_size(), 2);
  EXPECT_EQ(md.generations(0), 42u);
  EXPECT_TRUE(absl::IsAborted((*store)->CheckWriter(6)));
}

TEST(MetadataStoreTest, DamagedFileIsAnError) {
  TempDir dir;
  const std::string path = dir.path() + "/e.state";
  std::ofstream(path) << "\xff\xff\xff not a protobuf";
  auto store = MetadataStore::Open(path);
  EXPECT_TRUE(absl::IsDataLoss(store.status())) << store.status();
}

}  // namespace
}  // namespace dst
