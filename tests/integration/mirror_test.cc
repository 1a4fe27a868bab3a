// Mirrors in process: the in-sync set, the lag limit, dirty regions and
// incremental resync, generations across gateway restarts (a stale replica
// is never a source), split brain and its resolution, verify, fencing of a
// stale gateway and the one-writer lease.
#include <future>
#include <string>

#include <gtest/gtest.h>

#include "dst/v1/exporter.grpc.pb.h"
#include "nbdkit-plugin/gateway_client.h"
#include "services/common/base/atomic_file.h"
#include "services/common/protocol/checksum.h"
#include "services/common/rpc/server.h"
#include "services/gateway/region_bitmap.h"
#include "tests/integration/test_cluster.h"

namespace dst {
namespace {

constexpr uint64_t kSize = 4 << 20;
constexpr uint32_t kRegion = 64 << 10;

std::unique_ptr<GatewayClient> Open(const TestGateway& gateway,
                                    const std::string& volume,
                                    const std::string& lease = "writer-1",
                                    bool read_only = false) {
  return OpenClient(gateway, volume, read_only, lease);
}

v1::GatewayConfig Mirror(const std::vector<std::string>& addresses) {
  v1::GatewayConfig config = OneVolume("m", addresses);
  v1::VolumeConfig* volume = config.mutable_volumes(0);
  volume->set_region_bytes(kRegion);
  volume->set_lag_limit_ms(200);
  volume->set_request_timeout_ms(60000);  // lag, not timeouts, decides
  volume->set_suspend_timeout_ms(1500);
  return config;
}

v1::Request Flush() {
  v1::Request request;
  request.set_op(v1::OP_FLUSH);
  return request;
}

bool InSync(const v1::VolumeStatus& status, int replica) {
  return status.replicas_size() > replica &&
         status.replicas(replica).sync() == "in_sync";
}

bool AllInSync(const v1::VolumeStatus& status) {
  for (int i = 0; i < status.replicas_size(); ++i) {
    if (!InSync(status, i)) return false;
  }
  return status.replicas_size() > 0;
}

class MirrorTest : public ::testing::Test {
 protected:
  // With B (e2) down, 'A' is written on A (e1) alone; then the gateway and
  // A die, and B comes back: B is stale, and only the state file (and A's
  // generation) knows it.
  void WriteWithBDownThenLoseA(const v1::GatewayConfig& config,
                               std::unique_ptr<TestExporter>& e1,
                               std::unique_ptr<TestExporter>& e2) {
    {
      TestGateway gateway(dir_.path(), config);
      ASSERT_TRUE(gateway.WaitReady("m"));
      // Both replicas learn the first generation before B goes away.
      ASSERT_TRUE(gateway.WaitFor("m", [](const v1::VolumeStatus& s) {
        return s.replicas(0).generation() == s.generation() &&
               s.replicas(1).generation() == s.generation();
      }));
      auto client = Open(gateway, "m");
      e2.reset();
      v1::Reply reply = client->Call(WriteRequest(0, std::string(4096, 'A')));
      ASSERT_EQ(reply.status(), 0) << reply.message();
      EXPECT_EQ(gateway.VolumeStatus("m").replicas(1).sync(), "stale");
    }
    e1.reset();
    e2 = std::make_unique<TestExporter>(dir_.path(), "e2", kSize);
  }

  TempDir dir_;
};

TEST_F(MirrorTest, FailedReplicaLeavesTheSetAndOnlyItsDirtyRegionIsCopied) {
  TestExporter e1(dir_.path(), "e1", kSize);
  TestExporter e2(dir_.path(), "e2", kSize);
  TestGateway gateway(dir_.path(), Mirror({e1.address(), e2.address()}));
  ASSERT_TRUE(gateway.WaitReady("m"));
  auto client = Open(gateway, "m");
  e2.storage().fail_writes = true;
  v1::Reply reply =
      client->Call(WriteRequest(3 * kRegion, std::string(4096, 'x')));
  ASSERT_EQ(reply.status(), 0) << reply.message();
  v1::VolumeStatus status = gateway.VolumeStatus("m");
  EXPECT_TRUE(InSync(status, 0));
  EXPECT_FALSE(InSync(status, 1));
  EXPECT_EQ(status.replicas(1).dirty_bytes(), kRegion);
  EXPECT_EQ(status.state(), "degraded");
  // Reads come from the in-sync replica only.
  reply = client->Call(ReadRequest(3 * kRegion, 4096));
  ASSERT_EQ(reply.status(), 0);
  EXPECT_EQ(reply.data(), std::string(4096, 'x'));

  e2.storage().fail_writes = false;
  ASSERT_TRUE(gateway.WaitFor("m", AllInSync));
  EXPECT_EQ(ReadFile(e1.path()), ReadFile(e2.path()));
  status = gateway.VolumeStatus("m");
  EXPECT_EQ(status.replicas(1).resync_copied_bytes(), kRegion);
  // The finished resync is reported: what it copied, and how long it took.
  EXPECT_EQ(status.replicas(1).last_resync_bytes(), kRegion);
  EXPECT_GT(status.replicas(1).last_resync_seconds(), 0.0);
  EXPECT_EQ(status.replicas(0).last_resync_bytes(), 0u);
  EXPECT_EQ(status.replicas(0).generation(), status.generation());
  EXPECT_EQ(status.replicas(1).generation(), status.generation());
}

// A 4 KiB write-zeroes at `offset` with REQUEST_FLAG_FAST_ZERO.
v1::Request FastZeroRequest(uint64_t offset) {
  v1::Request zero;
  zero.set_op(v1::OP_WRITE_ZEROES);
  zero.set_offset(offset);
  zero.set_length(4096);
  zero.set_flags(v1::REQUEST_FLAG_FAST_ZERO);
  return zero;
}

// A fast zero that one replica refuses (it cannot zero cheaply) is done on
// the other: the refusing one leaves the set and resync makes it the same.
// Refused by both: UNIMPLEMENTED (ENOTSUP for the client), nothing zeroed.
// A replica whose exporter does not offer it makes it fail at once.
TEST_F(MirrorTest, AFastZeroIsDoneWhereItIsCheapOrRefusedEverywhere) {
  TestExporter e1(dir_.path(), "e1", kSize);
  TestExporter e2(dir_.path(), "e2", kSize);
  TestGateway gateway(dir_.path(), Mirror({e1.address(), e2.address()}));
  ASSERT_TRUE(gateway.WaitReady("m"));
  auto client = Open(gateway, "m");
  const std::string data(2 * kRegion, 'x');
  ASSERT_EQ(client->Call(WriteRequest(0, data)).status(), 0);
  auto fast_zero = [&](uint64_t offset) {
    return client->Call(FastZeroRequest(offset));
  };
  e1.storage().refuse_fast_zero = true;
  e2.storage().refuse_fast_zero = true;
  v1::Reply reply = fast_zero(0);
  EXPECT_EQ(reply.status(), grpc::StatusCode::UNIMPLEMENTED) << reply.message();
  reply = client->Call(ReadRequest(0, 4096));
  EXPECT_EQ(reply.data(), std::string(4096, 'x'))
      << "a refused fast zero wrote";

  e1.storage().refuse_fast_zero = false;
  ASSERT_TRUE(gateway.WaitFor("m", AllInSync));
  reply = fast_zero(kRegion);
  ASSERT_EQ(reply.status(), 0) << reply.message();
  EXPECT_FALSE(InSync(gateway.VolumeStatus("m"), 1)) << "e2 refused it";
  e2.storage().refuse_fast_zero = false;
  ASSERT_TRUE(gateway.WaitFor("m", AllInSync));
  EXPECT_EQ(ReadFile(e1.path()), ReadFile(e2.path()));
  reply = client->Call(ReadRequest(kRegion, 4096));
  EXPECT_EQ(reply.data(), std::string(4096, '\0'));
}

TEST_F(MirrorTest, AFastZeroFailsAtOnceWhereAReplicaDoesNotOfferIt) {
  TestExporter e1(dir_.path(), "e1", kSize);
  TestExporter e2(dir_.path(), "e2", kSize, {},
                  [](FaultyStorage& storage) { storage.no_fast_zero = true; });
  TestGateway gateway(dir_.path(), Mirror({e1.address(), e2.address()}));
  ASSERT_TRUE(gateway.WaitReady("m"));
  auto client = Open(gateway, "m");
  ASSERT_EQ(client->Call(WriteRequest(0, std::string(4096, 'x'))).status(), 0);
  v1::Reply reply = client->Call(FastZeroRequest(0));
  EXPECT_EQ(reply.status(), grpc::StatusCode::UNIMPLEMENTED) << reply.message();
  EXPECT_TRUE(AllInSync(gateway.VolumeStatus("m"))) << "nothing was sent";
  EXPECT_EQ(client->Call(ReadRequest(0, 4096)).data(), std::string(4096, 'x'));
}

// A large write's payload is shared by both replicas' streams, not copied
// for each: every replica still gets every byte from the write itself
// (both stay in sync, nothing was resynced).
// Online growth: the size is durable (a restarted gateway keeps it) and
// new clients see it; a replica whose exporter cannot grow leaves the set
// with why, and is grown and resynced once it can; shrinking is refused.
TEST_F(MirrorTest, AMirrorGrowsOnlineAndAReplicaLeftBehindFollowsOnceItCan) {
  auto e1 = std::make_unique<TestExporter>(dir_.path(), "e1", kSize);
  TestExporter e2(dir_.path(), "e2", kSize);
  const v1::GatewayConfig config = Mirror({e1->address(), e2.address()});
  {
    TestGateway gateway(dir_.path(), config);
    ASSERT_TRUE(gateway.WaitReady("m"));
    auto client = Open(gateway, "m");
    ASSERT_EQ(client->Call(WriteRequest(kSize - 4096, std::string(4096, 'a')))
                  .status(),
              0);
    // Opened before the resize, its stream connects after it: the grown
    // volume is the same volume (it keeps the size it was opened with).
    auto idle = Open(gateway, "m");
    e2.storage().refuse_grow = true;
    grpc::Status resized = gateway.Resize("m", 2 * kSize);
    ASSERT_TRUE(resized.ok()) << resized.error_message();
    v1::VolumeStatus status = gateway.VolumeStatus("m");
    EXPECT_EQ(status.geometry().size(), 2 * kSize);
    EXPECT_TRUE(InSync(status, 0));
    EXPECT_FALSE(InSync(status, 1));
    EXPECT_NE(status.replicas(1).sync_reason().find(
                  "could not grow to 8388608 bytes: injected"),
              std::string::npos)
        << status.replicas(1).sync_reason();
    EXPECT_EQ(gateway.Resize("m", kSize).error_code(),
              grpc::StatusCode::FAILED_PRECONDITION);
    v1::Reply idle_write = idle->Call(WriteRequest(0, std::string(4096, 'i')));
    EXPECT_EQ(idle_write.status(), 0) << idle_write.message();
    EXPECT_EQ(idle->geometry().size(), kSize);
    idle.reset();
    // A new client sees the new size (an open one keeps what it was told:
    // nbdkit checks requests against the size of its open).
    client.reset();
    auto grown = Open(gateway, "m");
    EXPECT_EQ(grown->geometry().size(), 2 * kSize);
    ASSERT_EQ(grown->Call(WriteRequest(kSize, std::string(4096, 'b'))).status(),
              0);
    v1::Reply reply = grown->Call(ReadRequest(kSize - 4096, 3 * 4096));
    ASSERT_EQ(reply.status(), 0) << reply.message();
    EXPECT_EQ(reply.data(), std::string(4096, 'a') + std::string(4096, 'b') +
                                std::string(4096, '\0'));
    e2.storage().refuse_grow = false;
    ASSERT_TRUE(gateway.WaitFor("m", AllInSync, 30));
    // An exporter that restarts larger than it was is taken back.
    e1.reset();
    ASSERT_TRUE(gateway.WaitFor("m", [](const v1::VolumeStatus& s) {
      return s.replicas(0).state() != "connected";
    }));
    e1 = std::make_unique<TestExporter>(dir_.path(), "e1", kSize);
    ASSERT_TRUE(gateway.WaitFor("m", [](const v1::VolumeStatus& s) {
      return AllInSync(s) && s.replicas(0).state() == "connected";
    })) << gateway.VolumeStatus("m").replicas(0).last_error();
  }
  EXPECT_EQ(ReadFile(e1->path()), ReadFile(e2.path()));
  EXPECT_EQ(ReadFile(e2.path()).size(), 2 * kSize);
  TestGateway restarted(dir_.path(), config);
  ASSERT_TRUE(restarted.WaitReady("m"));
  EXPECT_EQ(restarted.VolumeStatus("m").geometry().size(), 2 * kSize);
}

TEST_F(MirrorTest, LargeWriteReachesEveryReplicaWhole) {
  TestExporter e1(dir_.path(), "e1", kSize);
  TestExporter e2(dir_.path(), "e2", kSize);
  TestGateway gateway(dir_.path(), Mirror({e1.address(), e2.address()}));
  ASSERT_TRUE(gateway.WaitReady("m"));
  auto client = Open(gateway, "m");
  std::string data(1 << 20, '\0');
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i % 251);
  v1::Reply reply = client->Call(WriteRequest(kRegion, data));
  ASSERT_EQ(reply.status(), 0) << reply.message();
  v1::VolumeStatus status = gateway.VolumeStatus("m");
  EXPECT_TRUE(AllInSync(status));
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(status.replicas(i).dirty_bytes(), 0u) << "replica " << i;
    EXPECT_EQ(status.replicas(i).resync_copied_bytes(), 0u) << "replica " << i;
  }
  EXPECT_EQ(ReadFile(e1.path()).substr(kRegion, data.size()), data);
  EXPECT_EQ(ReadFile(e2.path()).substr(kRegion, data.size()), data);
}

TEST_F(MirrorTest, LaggingReplicaDoesNotHoldWritesBack) {
  TestExporter e1(dir_.path(), "e1", kSize);
  TestExporter e2(dir_.path(), "e2", kSize);
  TestGateway gateway(dir_.path(), Mirror({e1.address(), e2.address()}));
  ASSERT_TRUE(gateway.WaitReady("m"));
  auto client = Open(gateway, "m");
  e2.storage().Hold();  // a hung disk: e2 never answers while held
  v1::Reply reply = client->Call(WriteRequest(0, std::string(8192, 'y')));
  ASSERT_EQ(reply.status(), 0) << reply.message();  // acknowledged without e2
  reply = client->Call(WriteRequest(5 * kRegion, std::string(512, 'z')));
  ASSERT_EQ(reply.status(), 0) << reply.message();
  v1::VolumeStatus status = gateway.VolumeStatus("m");
  EXPECT_FALSE(InSync(status, 1));
  EXPECT_EQ(status.replicas(1).dirty_bytes(), 2 * kRegion);
  e2.storage().Release();
  ASSERT_TRUE(gateway.WaitFor("m", AllInSync));
  EXPECT_EQ(ReadFile(e1.path()), ReadFile(e2.path()));
  EXPECT_EQ(gateway.VolumeStatus("m").replicas(1).resync_copied_bytes(),
            2 * kRegion);
}

TEST_F(MirrorTest, FlushFailureMarksTheUnflushedRegionsDirty) {
  TestExporter e1(dir_.path(), "e1", kSize);
  TestExporter e2(dir_.path(), "e2", kSize);
  TestGateway gateway(dir_.path(), Mirror({e1.address(), e2.address()}));
  ASSERT_TRUE(gateway.WaitReady("m"));
  auto client = Open(gateway, "m");
  ASSERT_EQ(client->Call(WriteRequest(kRegion, std::string(512, 'a'))).status(),
            0);
  ASSERT_EQ(client->Call(Flush()).status(), 0);
  ASSERT_EQ(
      client->Call(WriteRequest(7 * kRegion, std::string(512, 'f'))).status(),
      0);
  e2.storage().fail_flushes = true;
  v1::Reply reply = client->Call(Flush());
  ASSERT_EQ(reply.status(), 0) << reply.message();  // durable on e1
  v1::VolumeStatus status = gateway.VolumeStatus("m");
  EXPECT_FALSE(InSync(status, 1));
  // Only the region written since the last good flush is suspect.
  EXPECT_EQ(status.replicas(1).dirty_bytes(), kRegion);
  e2.storage().fail_flushes = false;
  ASSERT_TRUE(gateway.WaitFor("m", AllInSync));
  EXPECT_EQ(ReadFile(e1.path()), ReadFile(e2.path()));
}

TEST_F(MirrorTest, WriteFailsOnlyWhenNoInSyncReplicaTakesIt) {
  TestExporter e1(dir_.path(), "e1", kSize);
  TestExporter e2(dir_.path(), "e2", kSize);
  TestGateway gateway(dir_.path(), Mirror({e1.address(), e2.address()}));
  ASSERT_TRUE(gateway.WaitReady("m"));
  auto client = Open(gateway, "m");
  e1.storage().fail_writes = true;
  e2.storage().fail_writes = true;
  v1::Reply reply = client->Call(WriteRequest(0, std::string(512, 'x')));
  EXPECT_EQ(reply.status(), grpc::StatusCode::INTERNAL);
  EXPECT_NE(reply.message().find("replica"), std::string::npos);
  // A failed write may have landed in part on either: one replica stays in
  // the set, and the other copies the region from it to read the same.
  v1::VolumeStatus status = gateway.VolumeStatus("m");
  EXPECT_TRUE(InSync(status, 0));
  EXPECT_FALSE(InSync(status, 1));
  EXPECT_EQ(status.replicas(1).dirty_bytes(), kRegion);
  e1.storage().fail_writes = false;
  e2.storage().fail_writes = false;
  ASSERT_TRUE(gateway.WaitFor("m", AllInSync));
  EXPECT_EQ(ReadFile(e1.path()), ReadFile(e2.path()));
}

TEST_F(MirrorTest, StaleReplicaIsNeverASourceAfterAGatewayRestart) {
  auto e1 = std::make_unique<TestExporter>(dir_.path(), "e1", kSize);
  auto e2 = std::make_unique<TestExporter>(dir_.path(), "e2", kSize);
  const v1::GatewayConfig config = Mirror({e1->address(), e2->address()});
  ASSERT_NO_FATAL_FAILURE(WriteWithBDownThenLoseA(config, e1, e2));
  TestGateway gateway(dir_.path(), config);
  ASSERT_TRUE(gateway.WaitFor(
      "m", [](const v1::VolumeStatus& s) { return s.state() == "waiting"; }));
  auto client = Open(gateway, "m");
  ASSERT_NE(client, nullptr);
  // B's stale zeroes are never served: the read waits for A, then fails.
  v1::Reply reply = client->Call(ReadRequest(0, 4096));
  EXPECT_NE(reply.status(), 0);
  EXPECT_NE(reply.data(), std::string(4096, '\0'));
  e1 = std::make_unique<TestExporter>(dir_.path(), "e1", kSize);  // A returns
  reply = client->Call(ReadRequest(0, 4096));
  ASSERT_EQ(reply.status(), 0) << reply.message();
  EXPECT_EQ(reply.data(), std::string(4096, 'A'));
  ASSERT_TRUE(gateway.WaitFor("m", AllInSync));
  EXPECT_EQ(ReadFile(e1->path()), ReadFile(e2->path()));
  EXPECT_EQ(gateway.VolumeStatus("m").replicas(1).resync_copied_bytes(),
            kRegion);
}

TEST_F(MirrorTest, OperatorCanKeepTheStaleReplica) {
  auto e1 = std::make_unique<TestExporter>(dir_.path(), "e1", kSize);
  auto e2 = std::make_unique<TestExporter>(dir_.path(), "e2", kSize);
  const v1::GatewayConfig config = Mirror({e1->address(), e2->address()});
  ASSERT_NO_FATAL_FAILURE(WriteWithBDownThenLoseA(config, e1, e2));
  TestGateway gateway(dir_.path(), config);
  ASSERT_TRUE(gateway.WaitFor(
      "m", [](const v1::VolumeStatus& s) { return s.state() == "waiting"; }));
  EXPECT_EQ(gateway.Resolve("m", "unix:/nowhere").error_code(),
            grpc::StatusCode::NOT_FOUND);
  ASSERT_TRUE(gateway.Resolve("m", e2->address()).ok());
  auto client = Open(gateway, "m");
  v1::Reply reply = client->Call(ReadRequest(0, 4096));
  ASSERT_EQ(reply.status(), 0) << reply.message();
  EXPECT_EQ(reply.data(), std::string(4096, '\0'));  // B's data, as asked
  e1 = std::make_unique<TestExporter>(dir_.path(), "e1", kSize);
  ASSERT_TRUE(gateway.WaitFor("m", AllInSync));
  EXPECT_EQ(ReadFile(e1->path()), ReadFile(e2->path()));
}

TEST_F(MirrorTest, DivergedReplicasStopUntilResolved) {
  TestExporter e1(dir_.path(), "e1", kSize);
  TestExporter e2(dir_.path(), "e2", kSize);
  // Two histories neither of which contains the other.
  int g = 111;
  for (TestExporter* e : {&e1, &e2}) {
    v1::ClaimRequest claim;
    claim.set_epoch(1);
    claim.set_owner("someone");
    claim.set_set_generations(true);
    claim.add_generations(g++);
    ASSERT_TRUE(e->service().metadata()->Claim(claim).ok());
  }
  ASSERT_TRUE(
      e1.storage().Write(0, Payload(std::string(4096, '1')), false).ok());
  TestGateway gateway(dir_.path(), Mirror({e1.address(), e2.address()}));
  ASSERT_TRUE(gateway.WaitFor(
      "m", [](const v1::VolumeStatus& s) { return s.state() == "diverged"; }));
  EXPECT_NE(gateway.VolumeStatus("m").message().find("dstctl resolve"),
            std::string::npos);
  auto channel = GatewayChannel(gateway.address());
  GatewayClientOptions options;
  options.volume = "m";
  options.lease_token = "w";
  EXPECT_EQ(GatewayClient::Open(*channel, options).status().code(),
            absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(gateway.Resolve("m", e1.address()).ok());
  ASSERT_TRUE(gateway.WaitFor("m", AllInSync));
  EXPECT_EQ(ReadFile(e2.path()).substr(0, 4096), std::string(4096, '1'));
  EXPECT_EQ(ReadFile(e1.path()), ReadFile(e2.path()));
}

TEST_F(MirrorTest, VerifyReportsRegionsThatDiffer) {
  TestExporter e1(dir_.path(), "e1", kSize);
  TestExporter e2(dir_.path(), "e2", kSize);
  TestGateway gateway(dir_.path(), Mirror({e1.address(), e2.address()}));
  ASSERT_TRUE(gateway.WaitReady("m"));
  v1::VerifyRequest request;
  request.set_volume("m");
  v1::VerifyReply reply;
  ASSERT_TRUE(gateway.Verify(request, &reply).ok());
  EXPECT_EQ(reply.compared_bytes(), kSize);
  EXPECT_EQ(reply.differing_size(), 0);
  // Behind the gateway's back.
  ASSERT_TRUE(
      e2.storage()
          .Write(5 * kRegion + 512, Payload(std::string(512, 'q')), false)
          .ok());
  ASSERT_TRUE(gateway.Verify(request, &reply).ok());
  ASSERT_EQ(reply.differing_size(), 1);
  EXPECT_EQ(reply.differing(0).offset(), 5 * kRegion);
  EXPECT_EQ(reply.differing(0).length(), kRegion);
  // A full resync of e2 repairs it.
  v1::ResyncRequest full;
  full.set_volume("m");
  full.set_full(true);
  full.set_replica(e2.address());
  ASSERT_TRUE(gateway.Resync(full).ok());
  ASSERT_TRUE(gateway.WaitFor("m", AllInSync));
  reply.Clear();
  ASSERT_TRUE(gateway.Verify(request, &reply).ok());
  EXPECT_EQ(reply.differing_size(), 0);
}

TEST_F(MirrorTest, ResyncCanBeStoppedAndResumed) {
  TestExporter e1(dir_.path(), "e1", kSize);
  TestExporter e2(dir_.path(), "e2", kSize);
  TestGateway gateway(dir_.path(), Mirror({e1.address(), e2.address()}));
  ASSERT_TRUE(gateway.WaitReady("m"));
  v1::ResyncRequest stop;
  stop.set_volume("m");
  stop.set_stop(true);
  ASSERT_TRUE(gateway.Resync(stop).ok());
  auto client = Open(gateway, "m");
  e2.storage().fail_writes = true;
  ASSERT_EQ(client->Call(WriteRequest(0, std::string(512, 'r'))).status(), 0);
  e2.storage().fail_writes = false;
  absl::SleepFor(absl::Milliseconds(300));  // several resync rounds
  v1::VolumeStatus status = gateway.VolumeStatus("m");
  EXPECT_TRUE(status.resync_paused());
  EXPECT_FALSE(InSync(status, 1));
  EXPECT_EQ(status.replicas(1).resync_copied_bytes(), 0u);
  v1::ResyncRequest start;
  start.set_volume("m");
  start.set_rate_bytes(1 << 20);
  ASSERT_TRUE(gateway.Resync(start).ok());
  ASSERT_TRUE(gateway.WaitFor("m", AllInSync));
  EXPECT_EQ(gateway.VolumeStatus("m").resync_rate_bytes(), 1u << 20);
}

TEST_F(MirrorTest, ANewerGatewayFencesTheOldOne) {
  TestExporter e1(dir_.path(), "e1", kSize);
  TestExporter e2(dir_.path(), "e2", kSize);
  const v1::GatewayConfig config = Mirror({e1.address(), e2.address()});
  TestGateway old_gateway(dir_.path(), config, "gw-old");
  ASSERT_TRUE(old_gateway.WaitReady("m"));
  auto old_client = Open(old_gateway, "m");
  ASSERT_EQ(old_client->Call(WriteRequest(0, std::string(512, 'o'))).status(),
            0);

  TestGateway new_gateway(dir_.path(), config, "gw-new");
  ASSERT_TRUE(new_gateway.WaitReady("m"));
  auto new_client = Open(new_gateway, "m");
  ASSERT_EQ(new_client->Call(WriteRequest(0, std::string(512, 'n'))).status(),
            0);
  v1::Reply reply = old_client->Call(WriteRequest(0, std::string(512, 'X')));
  EXPECT_NE(reply.status(), 0);
  EXPECT_NE(reply.message().find("fenced"), std::string::npos)
      << reply.message();
  EXPECT_EQ(old_gateway.VolumeStatus("m").state(), "fenced");
  EXPECT_EQ(ReadFile(e1.path()).substr(0, 512), std::string(512, 'n'));
  EXPECT_EQ(ReadFile(e2.path()).substr(0, 512), std::string(512, 'n'));
}

TEST_F(MirrorTest, OneWriterAtATime) {
  TestExporter e1(dir_.path(), "e1", kSize);
  v1::GatewayConfig config = OneVolume("v", {e1.address()});
  config.mutable_volumes(0)->set_lease_timeout_ms(0);
  TestGateway gateway(dir_.path(), config);
  ASSERT_TRUE(gateway.WaitReady("v"));
  auto first = Open(gateway, "v", "writer-1");
  ASSERT_EQ(first->Call(WriteRequest(0, std::string(512, '1'))).status(), 0);
  auto channel = GatewayChannel(gateway.address());
  GatewayClientOptions options;
  options.volume = "v";
  options.lease_token = "writer-2";
  absl::Status refused = GatewayClient::Open(*channel, options).status();
  EXPECT_EQ(refused.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(refused.message().find("one writer"), std::string::npos) << refused;
  auto reader = Open(gateway, "v", "writer-2", /*read_only=*/true);
  ASSERT_NE(reader, nullptr);
  EXPECT_EQ(reader->Call(ReadRequest(0, 512)).data(), std::string(512, '1'));
  EXPECT_NE(gateway.VolumeStatus("v").lease_holder(), "");
  first.reset();  // the writer goes away; its lease lapses at once here
  absl::StatusOr<std::unique_ptr<GatewayClient>> second;
  for (int i = 0; i < 250; ++i) {
    second = GatewayClient::Open(*channel, options);
    if (second.ok()) break;
    absl::SleepFor(absl::Milliseconds(20));
  }
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ((*second)->Call(WriteRequest(0, std::string(512, '2'))).status(),
            0);
}

TEST_F(MirrorTest, DamagedReadFailsOverAndIsHealedFromAnotherReplica) {
  ExporterOptions damaging;
  damaging.reply_filter = [](v1::Reply*, Payload* data) {
    if (data->empty()) return;
    std::string damaged = data->ToString();
    damaged[0] ^= 1;  // in transit
    *data = Payload(std::move(damaged));
  };
  TestExporter e1(dir_.path(), "e1", kSize, damaging);
  TestExporter e2(dir_.path(), "e2", kSize);
  TestGateway gateway(dir_.path(), Mirror({e1.address(), e2.address()}));
  ASSERT_TRUE(gateway.WaitReady("m"));
  auto client = Open(gateway, "m");
  ASSERT_EQ(client->Call(WriteRequest(0, std::string(4096, 'g'))).status(), 0);
  for (int i = 0; i < 4; ++i) {  // reads alternate between the replicas
    v1::Reply reply = client->Call(ReadRequest(0, 4096));
    ASSERT_EQ(reply.status(), 0) << reply.message();
    EXPECT_EQ(reply.data(), std::string(4096, 'g'));
  }
  v1::VolumeStatus status = gateway.VolumeStatus("m");
  EXPECT_GE(status.replicas(0).checksum_mismatches(), 1u);
  EXPECT_EQ(status.replicas(1).checksum_mismatches(), 0u);
  // Healed: the damaged region is recopied from the good replica.
  EXPECT_TRUE(InSync(status, 1)) << "the good replica stays in the set";
  ASSERT_TRUE(gateway.WaitFor("m", [](const v1::VolumeStatus& s) {
    return s.replicas(0).resync_copied_bytes() >= kRegion;
  }));
}

TEST_F(MirrorTest, ClientWriteWithADamagedChecksumIsRefused) {
  TestExporter e1(dir_.path(), "e1", kSize);
  TestExporter e2(dir_.path(), "e2", kSize);
  TestGateway gateway(dir_.path(), Mirror({e1.address(), e2.address()}));
  ASSERT_TRUE(gateway.WaitReady("m"));
  auto client = Open(gateway, "m");
  v1::Request write = WriteRequest(0, std::string(4096, 'c'));
  write.set_checksum_algorithm(v1::CHECKSUM_CRC32C);
  write.set_checksum(ComputeChecksum(v1::CHECKSUM_CRC32C, "something else"));
  EXPECT_EQ(client->Call(write).status(), grpc::StatusCode::DATA_LOSS);
  EXPECT_EQ(ReadFile(e1.path()).substr(0, 4096), std::string(4096, '\0'));
  EXPECT_EQ(ReadFile(e2.path()).substr(0, 4096), std::string(4096, '\0'));
  EXPECT_TRUE(AllInSync(gateway.VolumeStatus("m")));
}

// The gateway's mirror state file, as the state writer left it.
v1::VolumeState LoadState(const std::string& dir) {
  v1::VolumeState state;
  EXPECT_TRUE(state.ParseFromString(ReadFile(dir + "/gateway-state/m.state")));
  return state;
}

TEST_F(MirrorTest, ARegionIsInTheActivityLogBeforeItsWriteIsSent) {
  TestExporter e1(dir_.path(), "e1", kSize);
  TestExporter e2(dir_.path(), "e2", kSize);
  v1::GatewayConfig config = Mirror({e1.address(), e2.address()});
  config.mutable_volumes(0)->set_lag_limit_ms(60000);  // keep it in flight
  TestGateway gateway(dir_.path(), config);
  ASSERT_TRUE(gateway.WaitReady("m"));
  auto client = Open(gateway, "m");
  e2.storage().Hold();
  auto write = std::async(std::launch::async, [&client] {
    return client->Call(WriteRequest(6 * kRegion, std::string(4096, 'w')));
  });
  for (int i = 0; i < 500 && ReadFile(e1.path())[6 * kRegion] != 'w'; ++i) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  ASSERT_EQ(ReadFile(e1.path())[6 * kRegion], 'w') << "e1 never got the write";
  // e1 has it, e2 not yet: a crash now must know region 6 may differ.
  RegionBitmap active;
  const v1::VolumeState state = LoadState(dir_.path());
  ASSERT_TRUE(active.FromBytes(kSize / kRegion, state.active()));
  EXPECT_TRUE(active.Test(6));
  EXPECT_EQ(active.count(), 1u);
  e2.storage().Release();
  EXPECT_EQ(write.get().status(), 0);
  ASSERT_EQ(client->Call(Flush()).status(), 0);  // clears it (lazily saved)
}

TEST_F(MirrorTest, RegionsBeingWrittenAtACrashAreCopiedAfterTheRestart) {
  TestExporter e1(dir_.path(), "e1", kSize);
  TestExporter e2(dir_.path(), "e2", kSize);
  const v1::GatewayConfig config = Mirror({e1.address(), e2.address()});
  {
    TestGateway gateway(dir_.path(), config);
    ASSERT_TRUE(gateway.WaitReady("m"));
    ASSERT_TRUE(gateway.WaitFor("m", [](const v1::VolumeStatus& s) {
      return s.replicas(0).generation() == s.generation() &&
             s.replicas(1).generation() == s.generation();
    }));
  }
  // A crash in the middle of a write to region 3: e1 took it, e2 did not,
  // and the activity log says region 3 was being written.
  ASSERT_TRUE(e1.storage()
                  .Write(3 * kRegion, Payload(std::string(4096, 'c')), false)
                  .ok());
  v1::VolumeState state = LoadState(dir_.path());
  RegionBitmap active(kSize / kRegion);
  active.Set(3, 3);
  state.set_active(active.ToBytes());
  ASSERT_TRUE(WriteFileAtomically(dir_.path() + "/gateway-state/m.state",
                                  state.SerializeAsString())
                  .ok());
  TestGateway gateway(dir_.path(), config);
  ASSERT_TRUE(gateway.WaitReady("m"));
  ASSERT_TRUE(gateway.WaitFor("m", [](const v1::VolumeStatus& s) {
    return AllInSync(s) && s.replicas(0).resync_copied_bytes() +
                                   s.replicas(1).resync_copied_bytes() ==
                               kRegion;
  })) << "exactly the active region is copied";
  EXPECT_EQ(ReadFile(e1.path()), ReadFile(e2.path()));
}

}  // namespace
}  // namespace dst
