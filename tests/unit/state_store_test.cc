// FileStateStore: what it writes reads back, a damaged file is an error
// and not a fresh start, and two gateways never share one state file.
#include "services/gateway/state_store.h"

#include <fstream>

#include <gtest/gtest.h>

#include "absl/synchronization/notification.h"

#include "services/common/base/limits.h"
#include "services/gateway/volume.h"
#include "services/gateway/volume_builder.h"
#include "tests/integration/test_cluster.h"

namespace dst {
namespace {

TEST(FileStateStoreTest, WhatIsWrittenReadsBack) {
  TempDir dir;
  const std::string path = dir.path() + "/v.state";
  {
    auto store = OpenFileStateStore(path);
    ASSERT_TRUE(store.ok()) << store.status();
    EXPECT_TRUE(absl::IsNotFound((*store)->Load().status()));
    v1::VolumeState state;
    state.set_volume("v");
    state.set_size(4096);
    absl::Notification saved;
    absl::Status outcome;
    (*store)->Write(state, [&](const absl::Status& s) {
      outcome = s;
      saved.Notify();
    });
    ASSERT_TRUE(saved.WaitForNotificationWithTimeout(absl::Seconds(10)));
    EXPECT_TRUE(outcome.ok()) << outcome;
  }
  auto store = OpenFileStateStore(path);
  ASSERT_TRUE(store.ok()) << store.status();
  absl::StatusOr<v1::VolumeState> loaded = (*store)->Load();
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->volume(), "v");
  EXPECT_EQ(loaded->size(), 4096u);
}

TEST(FileStateStoreTest, ADamagedFileIsDataLoss) {
  TempDir dir;
  const std::string path = dir.path() + "/v.state";
  std::ofstream(path) << "\xff\xff\xff not a state";
  auto store = OpenFileStateStore(path);
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_TRUE(absl::IsDataLoss((*store)->Load().status()));
}

// Two gateways configured with one state_dir would each overwrite the
// other's record of which replica is stale: the second cannot start.
TEST(FileStateStoreTest, ASecondGatewayOnTheSameStateDirIsRefused) {
  TempDir dir;
  v1::VolumeConfig config;
  config.set_name("m");
  config.add_replicas()->set_address("unix:" + dir.path() + "/a.sock");
  config.add_replicas()->set_address("unix:" + dir.path() + "/b.sock");
  config.set_region_bytes(65536);
  VolumeOptions options;
  options.gateway_id = "g";
  options.state_dir = dir.path();
  prometheus::Registry registry1, registry2;
  auto first = BuildVolume(config, options, kMaxMessageBytes, registry1);
  ASSERT_TRUE(first.ok()) << first.status();
  auto second = BuildVolume(config, options, kMaxMessageBytes, registry2);
  ASSERT_FALSE(second.ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(second.status()));
  EXPECT_NE(second.status().message().find("in use by another gateway"),
            std::string::npos)
      << second.status();
  first->reset();  // its lock goes with it
  auto third = BuildVolume(config, options, kMaxMessageBytes, registry2);
  EXPECT_TRUE(third.ok()) << third.status();
}

}  // namespace
}  // namespace dst
