// The gateway in process over in-process exporters: plain and mirrored
// volumes, read failover, write ordering, refusals, readiness and
// reconnection (mirror degradation and resync: mirror_test.cc).
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "absl/synchronization/notification.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server_builder.h"

#include "dst/v1/exporter.grpc.pb.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "nbdkit-plugin/gateway_client.h"
#include "services/common/base/limits.h"
#include "services/gateway/replica.h"
#include "services/gateway/volume_builder.h"
#include "tests/integration/test_cluster.h"

namespace dst {
namespace {

constexpr uint64_t kSize = 4 << 20;

std::unique_ptr<GatewayClient> Open(const TestGateway& gateway,
                                    const std::string& volume,
                                    bool read_only = false) {
  return OpenClient(gateway, volume, read_only);
}

class GatewayTest : public ::testing::Test {
 protected:
  TempDir dir_;
};

TEST_F(GatewayTest, PlainVolumeReadsBackWhatWasWritten) {
  TestExporter e1(dir_.path(), "e1", kSize);
  TestGateway gateway(dir_.path(), OneVolume("vol0", {e1.address()}));
  ASSERT_TRUE(gateway.WaitReady("vol0"));
  auto client = Open(gateway, "vol0");
  ASSERT_NE(client, nullptr);
  EXPECT_EQ(client->geometry().size(), kSize);
  EXPECT_EQ(client->geometry().identity(), "vol0");
  ASSERT_EQ(
      client->Call(WriteRequest(kSize - 4096, std::string(4096, 'z'))).status(),
      0);
  v1::Reply reply = client->Call(ReadRequest(kSize - 4096, 4096));
  ASSERT_EQ(reply.status(), 0) << reply.message();
  EXPECT_EQ(reply.data(), std::string(4096, 'z')) << "the last block";
}

TEST_F(GatewayTest, MirrorWritesReachEveryReplica) {
  TestExporter e1(dir_.path(), "e1", kSize);
  TestExporter e2(dir_.path(), "e2", kSize);
  TestGateway gateway(dir_.path(),
                      OneVolume("m", {e1.address(), e2.address()}));
  ASSERT_TRUE(gateway.WaitReady("m"));
  auto client = Open(gateway, "m");
  ASSERT_NE(client, nullptr);
  for (int i = 0; i < 64; ++i) {
    ASSERT_EQ(client
                  ->Call(WriteRequest(uint64_t(i) * 65536,
                                      std::string(65536, char('a' + i % 26))))
                  .status(),
              0);
  }
  v1::Request zero;
  zero.set_op(v1::OP_WRITE_ZEROES);
  zero.set_offset(65536);
  zero.set_length(4096);
  ASSERT_EQ(client->Call(zero).status(), 0);
  v1::Request flush;
  flush.set_op(v1::OP_FLUSH);
  ASSERT_EQ(client->Call(flush).status(), 0);
  EXPECT_GE(e1.storage().flushes, 1);
  EXPECT_GE(e2.storage().flushes, 1);
  std::string a = ReadFile(e1.path()), b = ReadFile(e2.path());
  EXPECT_EQ(a.substr(65536, 4096), std::string(4096, '\0'));
  EXPECT_EQ(a.substr(65536 + 4096, 4), "bbbb");
  EXPECT_TRUE(a == b) << "replicas differ";
}

TEST_F(GatewayTest, MirrorReadFailsOverWhenAReplicaCannotRead) {
  TestExporter e1(dir_.path(), "e1", kSize);
  TestExporter e2(dir_.path(), "e2", kSize);
  TestGateway gateway(dir_.path(),
                      OneVolume("m", {e1.address(), e2.address()}));
  ASSERT_TRUE(gateway.WaitReady("m"));
  auto client = Open(gateway, "m");
  ASSERT_EQ(client->Call(WriteRequest(0, std::string(4096, 'r'))).status(), 0);
  e1.storage().fail_reads = true;
  for (int i = 0; i < 10; ++i) {  // reads are spread: some start at e1
    v1::Reply reply = client->Call(ReadRequest(0, 4096));
    ASSERT_EQ(reply.status(), 0) << reply.message();
    EXPECT_EQ(reply.data(), std::string(4096, 'r'));
  }
  e2.storage().fail_reads = true;
  EXPECT_EQ(client->Call(ReadRequest(0, 4096)).status(),
            grpc::StatusCode::INTERNAL)
      << "no replica can read: the error is reported";
}

TEST_F(GatewayTest, MirrorReadsSkipADisconnectedReplica) {
  auto e1 = std::make_unique<TestExporter>(dir_.path(), "e1", kSize);
  TestExporter e2(dir_.path(), "e2", kSize);
  v1::GatewayConfig config = OneVolume("m", {e1->address(), e2.address()});
  config.mutable_volumes(0)->set_suspend_timeout_ms(60000);
  TestGateway gateway(dir_.path(), config);
  ASSERT_TRUE(gateway.WaitReady("m"));
  auto client = Open(gateway, "m");
  ASSERT_EQ(client->Call(WriteRequest(0, std::string(4096, 'r'))).status(), 0);
  e1.reset();  // gone: reads must not wait the 60 s suspend time for it
  absl::Time deadline = absl::Now() + absl::Seconds(5);
  while (gateway.Status().volumes(0).replicas(0).state() == "connected" &&
         absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  auto reads = std::async(std::launch::async, [&client] {
    for (int i = 0; i < 10; ++i) {  // spread: half would start at e1
      v1::Reply reply = client->Call(ReadRequest(0, 4096));
      if (reply.status() != 0 || reply.data() != std::string(4096, 'r'))
        return false;
    }
    return true;
  });
  ASSERT_EQ(reads.wait_for(std::chrono::seconds(10)), std::future_status::ready)
      << "reads waited for the disconnected replica";
  EXPECT_TRUE(reads.get());
  e1 = std::make_unique<TestExporter>(dir_.path(), "e1",
                                      kSize);  // lets teardown finish
}

TEST_F(GatewayTest, OverlappingWritesReachEveryReplicaInTheSameOrder) {
  TestExporter e1(dir_.path(), "e1", kSize);
  TestExporter e2(dir_.path(), "e2", kSize);
  TestGateway gateway(dir_.path(),
                      OneVolume("m", {e1.address(), e2.address()}));
  ASSERT_TRUE(gateway.WaitReady("m"));
  auto client = Open(gateway, "m");
  e1.storage().Hold();  // the first write stalls on e1, lands on e2
  auto first = std::async(std::launch::async, [&client] {
    return client->Call(WriteRequest(0, std::string(4096, 'a')));
  });
  absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (ReadFile(e2.path()).substr(0, 1) != "a" && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  ASSERT_EQ(ReadFile(e2.path()).substr(0, 1), "a");
  auto second = std::async(std::launch::async, [&client] {
    return client->Call(WriteRequest(0, std::string(4096, 'b')));
  });
  // While the first is unfinished on e1, the second must not reach e2:
  // else e2 would apply b then (after e1's a completes) ... orders differ.
  absl::SleepFor(absl::Milliseconds(200));
  EXPECT_EQ(ReadFile(e2.path()).substr(0, 4096), std::string(4096, 'a'))
      << "the overlapping second write overtook the first";
  e1.storage().Release();
  ASSERT_EQ(first.get().status(), 0);
  ASSERT_EQ(second.get().status(), 0);
  EXPECT_EQ(ReadFile(e1.path()).substr(0, 4096), std::string(4096, 'b'));
  EXPECT_EQ(ReadFile(e2.path()).substr(0, 4096), std::string(4096, 'b'));
}

TEST_F(GatewayTest, RefusesPastTheEndAndMisalignedAtTheGateway) {
  TestExporter e1(dir_.path(), "e1", kSize);
  TestGateway gateway(dir_.path(), OneVolume("vol0", {e1.address()}));
  ASSERT_TRUE(gateway.WaitReady("vol0"));
  auto client = Open(gateway, "vol0");
  EXPECT_EQ(client->Call(ReadRequest(kSize, 512)).status(),
            grpc::StatusCode::OUT_OF_RANGE);
  EXPECT_EQ(
      client->Call(WriteRequest(kSize - 512, std::string(1024, 'x'))).status(),
      grpc::StatusCode::OUT_OF_RANGE);
  EXPECT_EQ(client->Call(ReadRequest(1, 512)).status(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(ReadFile(e1.path()), std::string(kSize, '\0'));
}

TEST_F(GatewayTest, UnknownVolumeIsNotFound) {
  TestExporter e1(dir_.path(), "e1", kSize);
  TestGateway gateway(dir_.path(), OneVolume("vol0", {e1.address()}));
  auto channel = GatewayChannel(gateway.address());
  GatewayClientOptions options;
  options.volume = "nope";
  auto client = GatewayClient::Open(*channel, options);
  EXPECT_EQ(client.status().code(), absl::StatusCode::kNotFound);
}

// What the plugin sees of a gateway: a VolumeBackend for one volume, whose
// clients may lend a write's buffer.
TEST_F(GatewayTest, AGatewayBackendOpensItsVolumeAndNamesWhereItIs) {
  TestExporter e1(dir_.path(), "e1", kSize);
  TestGateway gateway(dir_.path(), OneVolume("vol0", {e1.address()}));
  ASSERT_TRUE(gateway.WaitReady("vol0"));
  auto backend = GatewayBackend::Connect(gateway.address(), "vol0", nullptr);
  ASSERT_TRUE(backend.ok()) << backend.status();
  EXPECT_TRUE((*backend)->LendsWriteBuffers());
  EXPECT_EQ((*backend)->Where(), "on gateway " + gateway.address());
  ClientOpenOptions options;
  options.lease_token = "t1";
  auto client = (*backend)->Open(options);
  ASSERT_TRUE(client.ok()) << client.status();
  EXPECT_EQ((*client)->geometry().size(), kSize);
  ASSERT_EQ(
      (*client)
          ->Call(WriteRequest(0, std::string(4096, 'g')), Payload(), nullptr)
          .status(),
      0);
  EXPECT_EQ(ReadFile(e1.path()).substr(0, 4096), std::string(4096, 'g'));

  auto elsewhere = GatewayBackend::Connect(gateway.address(), "nope", nullptr);
  ASSERT_TRUE(elsewhere.ok()) << elsewhere.status();
  EXPECT_EQ((*elsewhere)->Open(options).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(
      GatewayBackend::Connect("bogus:1:2:3", "vol0", nullptr).status().code(),
      absl::StatusCode::kInvalidArgument);
}

TEST_F(GatewayTest, ReadOnlyVolumeAndReadOnlyClientsRefuseWrites) {
  TestExporter e1(dir_.path(), "e1", kSize);
  TestExporter e2(dir_.path(), "e2", kSize);
  v1::GatewayConfig config =
      OneVolume("ro", {e1.address()}, /*read_only=*/true);
  *config.add_volumes() = OneVolume("rw", {e2.address()}).volumes(0);
  TestGateway gateway(dir_.path(), config);
  ASSERT_TRUE(gateway.WaitReady("ro"));
  ASSERT_TRUE(gateway.WaitReady("rw"));
  auto ro = Open(gateway, "ro");
  EXPECT_TRUE(ro->geometry().read_only());
  EXPECT_EQ(ro->Call(WriteRequest(0, std::string(512, 'x'))).status(),
            grpc::StatusCode::FAILED_PRECONDITION);
  auto ro_client = Open(gateway, "rw", /*read_only=*/true);
  EXPECT_TRUE(ro_client->geometry().read_only());
  EXPECT_EQ(ro_client->Call(WriteRequest(0, std::string(512, 'x'))).status(),
            grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(ro_client->Call(ReadRequest(0, 512)).status(), 0);
  EXPECT_EQ(ReadFile(e2.path()), std::string(kSize, '\0'));
}

TEST_F(GatewayTest, VolumeBecomesReadyWhenItsExporterArrives) {
  const std::string address = "unix:" + dir_.path() + "/late.sock";
  TestGateway gateway(dir_.path(), OneVolume("vol0", {address}));
  auto channel = GatewayChannel(gateway.address());
  GatewayClientOptions options;
  options.volume = "vol0";
  EXPECT_EQ(GatewayClient::Open(*channel, options).status().code(),
            absl::StatusCode::kUnavailable);
  TestExporter late(dir_.path(), "late", kSize);
  EXPECT_TRUE(gateway.WaitReady("vol0"));
  EXPECT_NE(Open(gateway, "vol0"), nullptr);
}

TEST_F(GatewayTest, WriteDuringExporterRestartPausesThenSucceeds) {
  auto e1 = std::make_unique<TestExporter>(dir_.path(), "e1", kSize);
  TestGateway gateway(dir_.path(), OneVolume("vol0", {e1->address()}));
  ASSERT_TRUE(gateway.WaitReady("vol0"));
  auto client = Open(gateway, "vol0");
  ASSERT_EQ(client->Call(WriteRequest(0, std::string(512, '1'))).status(), 0);
  e1.reset();  // the exporter goes away
  auto during = std::async(std::launch::async, [&client] {
    return client->Call(WriteRequest(512, std::string(512, '2')));
  });
  EXPECT_EQ(during.wait_for(std::chrono::milliseconds(300)),
            std::future_status::timeout)
      << "with no replica the write must wait, not fail";
  e1 = std::make_unique<TestExporter>(dir_.path(), "e1", kSize);
  v1::Reply reply = during.get();
  ASSERT_EQ(reply.status(), 0) << reply.message();
  std::string data = ReadFile(e1->path());
  EXPECT_EQ(data.substr(0, 512), std::string(512, '1'));
  EXPECT_EQ(data.substr(512, 512), std::string(512, '2'));
}

TEST_F(GatewayTest, RequestsFailAfterTheSuspendTimeWithNoReplica) {
  auto e1 = std::make_unique<TestExporter>(dir_.path(), "e1", kSize);
  v1::GatewayConfig config = OneVolume("vol0", {e1->address()});
  config.mutable_volumes(0)->set_suspend_timeout_ms(300);
  TestGateway gateway(dir_.path(), config);
  ASSERT_TRUE(gateway.WaitReady("vol0"));
  auto client = Open(gateway, "vol0");
  e1.reset();
  absl::Time start = absl::Now();
  v1::Reply reply = client->Call(WriteRequest(0, std::string(512, 'x')));
  EXPECT_EQ(reply.status(), grpc::StatusCode::DEADLINE_EXCEEDED)
      << reply.message();
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(250))
      << "failed before the suspend time";
}

TEST_F(GatewayTest, StalledExporterIsResentToAfterTheTimeout) {
  TestExporter e1(dir_.path(), "e1", kSize);
  v1::GatewayConfig config = OneVolume("vol0", {e1.address()});
  config.mutable_volumes(0)->set_request_timeout_ms(200);
  TestGateway gateway(dir_.path(), config);
  ASSERT_TRUE(gateway.WaitReady("vol0"));
  auto client = Open(gateway, "vol0");
  e1.storage().Hold();  // the disk stalls: no reply comes
  // Large enough to travel as a shared payload (outgoing_batch.h), which
  // the lost stream must hand back whole for the resend.
  std::string data(256 << 10, 's');
  for (size_t i = 0; i < data.size(); i += 4096) data[i] = char('a' + i % 26);
  auto write = std::async(std::launch::async, [&client, &data] {
    return client->Call(WriteRequest(4096, data));
  });
  absl::SleepFor(absl::Milliseconds(500));  // > request_timeout: resent
  e1.storage().Release();
  v1::Reply reply = write.get();
  ASSERT_EQ(reply.status(), 0) << reply.message();
  EXPECT_TRUE(ReadFile(e1.path()).substr(4096, data.size()) == data);
  v1::StatusReply status = gateway.Status();
  ASSERT_EQ(status.volumes_size(), 1);
  EXPECT_GE(status.volumes(0).replicas(0).timeouts(), 1u);
  EXPECT_GE(status.volumes(0).replicas(0).resends(), 1u);
  EXPECT_GE(status.volumes(0).replicas(0).reconnects(), 1u);
}

TEST_F(GatewayTest, TransactionFailsWhenItsResendsAreExhausted) {
  TestExporter e1(dir_.path(), "e1", kSize);
  v1::GatewayConfig config = OneVolume("vol0", {e1.address()});
  config.mutable_volumes(0)->set_request_timeout_ms(100);
  config.mutable_volumes(0)->set_max_resends(1);
  TestGateway gateway(dir_.path(), config);
  ASSERT_TRUE(gateway.WaitReady("vol0"));
  auto client = Open(gateway, "vol0");
  e1.storage().Hold();
  v1::Reply reply = client->Call(WriteRequest(0, std::string(512, 'x')));
  EXPECT_EQ(reply.status(), grpc::StatusCode::DEADLINE_EXCEEDED)
      << reply.message();
  EXPECT_NE(reply.message().find("no reply after 2 sends"), std::string::npos)
      << reply.message();
  e1.storage().Release();
}

// The gateway stops while its exporter still holds a write: the volume
// must wind the transaction up while it is whole (its done callback runs
// into the volume's range locks and metrics), and the client replays the
// unanswered write through the next gateway.
TEST_F(GatewayTest, AWriteInFlightWhenTheGatewayStopsIsReplayedThroughTheNext) {
  TestExporter e1(dir_.path(), "e1", kSize);
  v1::GatewayConfig config = OneVolume("vol0", {e1.address()});
  config.mutable_volumes(0)->set_request_timeout_ms(60000);
  auto gateway = std::make_unique<TestGateway>(dir_.path(), config);
  ASSERT_TRUE(gateway->WaitReady("vol0"));
  auto client = Open(*gateway, "vol0");
  e1.storage().Hold();
  auto write = std::async(std::launch::async, [&client] {
    return client->Call(WriteRequest(8192, std::string(4096, 'w')));
  });
  absl::SleepFor(absl::Milliseconds(300));  // at the exporter, held
  // TestGateway's destructor drains the Io streams for 5 s (the write
  // keeps its stream open), stops the server, then destroys the service:
  // the reply comes while the volume closes its sessions (up to 5 s).
  // Without Volume::Close first, ASan sees its range lock used after free.
  auto release = std::async(std::launch::async, [&e1] {
    absl::SleepFor(absl::Milliseconds(6500));
    e1.storage().Release();
  });
  gateway.reset();
  release.get();
  gateway = std::make_unique<TestGateway>(dir_.path(), config);
  v1::Reply reply = write.get();
  ASSERT_EQ(reply.status(), 0) << reply.message();
  EXPECT_EQ(ReadFile(e1.path()).substr(8192, 4096), std::string(4096, 'w'));
}

TEST_F(GatewayTest, ClientRidesOutAGatewayRestart) {
  TestExporter e1(dir_.path(), "e1", kSize);
  auto gateway = std::make_unique<TestGateway>(
      dir_.path(), OneVolume("vol0", {e1.address()}));
  ASSERT_TRUE(gateway->WaitReady("vol0"));
  auto client = Open(*gateway, "vol0");
  ASSERT_EQ(client->Call(WriteRequest(0, std::string(512, 'a'))).status(), 0);
  gateway.reset();  // the gateway goes away
  auto during = std::async(std::launch::async, [&client] {
    return client->Call(WriteRequest(512, std::string(512, 'b')));
  });
  EXPECT_EQ(during.wait_for(std::chrono::milliseconds(300)),
            std::future_status::timeout)
      << "with no gateway the request must wait, not fail";
  gateway = std::make_unique<TestGateway>(dir_.path(),
                                          OneVolume("vol0", {e1.address()}));
  v1::Reply reply = during.get();
  ASSERT_EQ(reply.status(), 0) << reply.message();
  EXPECT_EQ(ReadFile(e1.path()).substr(0, 1024),
            std::string(512, 'a') + std::string(512, 'b'));
  EXPECT_GE(client->session().reconnects(), 1u);
}

TEST_F(GatewayTest, StatusCountsTransactions) {
  TestExporter e1(dir_.path(), "e1", kSize);
  TestGateway gateway(dir_.path(), OneVolume("vol0", {e1.address()}));
  ASSERT_TRUE(gateway.WaitReady("vol0"));
  auto client = Open(gateway, "vol0");
  for (int i = 0; i < 5; ++i) client->Call(ReadRequest(0, 512));
  client->Call(ReadRequest(kSize, 512));
  v1::StatusReply reply = gateway.Status();
  ASSERT_EQ(reply.volumes_size(), 1);
  EXPECT_EQ(reply.volumes(0).transactions_total(), 6u);
  EXPECT_EQ(reply.volumes(0).transactions_failed(), 1u);
  EXPECT_EQ(reply.volumes(0).replicas(0).state(), "connected");
}

}  // namespace
}  // namespace dst

namespace dst {
namespace {

TEST_F(GatewayTest, ConcurrentMaxSizeWritesStayUnderMessageLimits) {
  // Batches must follow the negotiated max_transfer: several 4 MiB writes
  // in one message would exceed what the exporter accepts.
  TestExporter e1(dir_.path(), "e1", 64 << 20);
  TestGateway gateway(dir_.path(), OneVolume("vol0", {e1.address()}));
  ASSERT_TRUE(gateway.WaitReady("vol0"));
  auto client = Open(gateway, "vol0");
  const uint32_t max = client->geometry().max_transfer();
  ASSERT_EQ(max, 4u << 20);
  std::vector<std::thread> writers;
  writers.reserve(12);
  std::atomic<int> failures{0};
  for (int i = 0; i < 12; ++i) {
    writers.emplace_back([&, i] {
      v1::Reply reply = client->Call(
          WriteRequest(uint64_t(i) * max, std::string(max, char('A' + i))));
      if (reply.status() != 0) {
        ADD_FAILURE() << reply.message();
        ++failures;
      }
    });
  }
  for (auto& t : writers) t.join();
  ASSERT_EQ(failures, 0);
  std::string data = ReadFile(e1.path());
  for (int i = 0; i < 12; ++i)
    EXPECT_EQ(data[uint64_t(i) * max + max - 1], char('A' + i));
}

// gRPC 1.51's callback API and sync methods bring threads of their own
// that poll beside the loops (services/common/rpc/async_service.h); dst's
// services and the gateway's calls to its exporters use neither. A callback
// or sync method, or a callback-API call, added on these paths fails this.
TEST_F(GatewayTest, ServingAndPingingStartNoCallbackOrSyncThreads) {
  TestExporter e1(dir_.path(), "e1", kSize);
  TestGateway gateway(dir_.path(), OneVolume("vol0", {e1.address()}));
  ASSERT_TRUE(gateway.WaitReady("vol0"));
  auto client = Open(gateway, "vol0");
  EXPECT_EQ(client->Call(ReadRequest(0, 512)).status(), 0);
  EXPECT_EQ(gateway.Status().volumes_size(), 1);
  ReplicaOptions options;
  options.address = e1.address();
  Replica replica(options);
  replica.Start([] {}, nullptr);
  for (int i = 0; i < 200 && !replica.connected(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_TRUE(replica.connected());
  std::promise<void> pinged;
  replica.Ping([&pinged](absl::Duration) { pinged.set_value(); });
  ASSERT_EQ(pinged.get_future().wait_for(std::chrono::seconds(10)),
            std::future_status::ready);
  replica.Stop();
  std::vector<std::string> names;
  for (const auto& task :
       std::filesystem::directory_iterator("/proc/self/task")) {
    std::ifstream comm(task.path() / "comm");
    std::string name;
    std::getline(comm, name);
    names.push_back(name);
  }
  ASSERT_GT(names.size(), 3u);
  for (const std::string& name : names) {
    EXPECT_NE(name, "nexting_thread") << "a gRPC callback-API thread";
    EXPECT_NE(name.rfind("grpcpp_sync", 0), 0u) << "a gRPC sync-server thread";
  }
}

// An exporter that negotiates and then holds every Ping until released.
class HeldPingExporter final : public v1::Exporter::Service {
 public:
  grpc::Status Negotiate(grpc::ServerContext* /*context*/,
                         const v1::NegotiateRequest* /*request*/,
                         v1::NegotiateReply* reply) override {
    v1::Geometry* geometry = reply->mutable_geometry();
    geometry->set_size(kSize);
    geometry->set_logical_block_size(512);
    geometry->set_physical_block_size(4096);
    geometry->set_max_transfer(1 << 20);
    geometry->set_identity("held");
    return grpc::Status::OK;
  }
  grpc::Status Ping(grpc::ServerContext* /*context*/,
                    const v1::PingRequest* request,
                    v1::PingReply* reply) override {
    ++entered;
    released.WaitForNotification();
    reply->set_nonce(request->nonce());
    ++answered;
    return grpc::Status::OK;
  }
  std::atomic<int> entered{0};
  std::atomic<int> answered{0};
  absl::Notification released;
};

// A ping answered after Stop must not reach its `done`: the volume that
// asked has gone with its metrics (a use after free, seen under ASan).
TEST_F(GatewayTest, APingAnsweredAfterStopIsDropped) {
  HeldPingExporter exporter;
  const std::string address = "unix:" + dir_.path() + "/held.sock";
  grpc::ServerBuilder builder;
  builder.AddListeningPort(address, grpc::InsecureServerCredentials());
  builder.RegisterService(&exporter);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  ASSERT_NE(server, nullptr);
  ReplicaOptions options;
  options.address = address;
  options.keepalive_timeout = absl::Seconds(30);
  Replica replica(options);
  replica.Start([] {}, nullptr);
  std::atomic<int> done_calls{0};
  // Ping sends nothing before the first negotiation: try until one arrives.
  for (int i = 0; i < 500 && exporter.entered == 0; ++i) {
    replica.Ping([&done_calls](absl::Duration) { ++done_calls; });
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_GT(exporter.entered, 0) << "no ping reached the exporter";
  const int sent = exporter.entered;
  replica.Stop();
  exporter.released.Notify();
  for (int i = 0; i < 500 && exporter.answered < sent; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_EQ(exporter.answered, sent);
  // The answers are on their way back; give them time to be handled.
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_EQ(done_calls, 0) << "a ping's done ran after Stop";
  server->Shutdown();
}

TEST_F(GatewayTest, HealthCheckAnswersKnownServicesOnly) {
  TestExporter e1(dir_.path(), "e1", kSize);
  TestGateway gateway(dir_.path(), OneVolume("vol0", {e1.address()}));
  auto channel = GatewayChannel(gateway.address());
  ASSERT_TRUE(channel.ok());
  auto stub = grpc::health::v1::Health::NewStub(*channel);
  using grpc::health::v1::HealthCheckResponse;
  auto check = [&stub](const std::string& service,
                       HealthCheckResponse::ServingStatus* status) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::seconds(5));
    grpc::health::v1::HealthCheckRequest request;
    request.set_service(service);
    HealthCheckResponse reply;
    grpc::Status result = stub->Check(&context, request, &reply);
    *status = reply.status();
    return result.error_code();
  };
  HealthCheckResponse::ServingStatus status;
  EXPECT_EQ(check("", &status), grpc::StatusCode::OK);
  EXPECT_EQ(status, HealthCheckResponse::SERVING);
  EXPECT_EQ(check("dst.v1.Gateway", &status), grpc::StatusCode::NOT_FOUND)
      << "a service whose status was never set";
  gateway.health().SetServingStatus("dst.v1.Gateway", false);
  EXPECT_EQ(check("dst.v1.Gateway", &status), grpc::StatusCode::OK);
  EXPECT_EQ(status, HealthCheckResponse::NOT_SERVING);
  gateway.health().SetServingStatus("dst.v1.Gateway", true);
  EXPECT_EQ(check("dst.v1.Gateway", &status), grpc::StatusCode::OK);
  EXPECT_EQ(status, HealthCheckResponse::SERVING);
  gateway.health().SetServingStatus(false);  // the drain: every service
  EXPECT_EQ(check("", &status), grpc::StatusCode::OK);
  EXPECT_EQ(status, HealthCheckResponse::NOT_SERVING);
  EXPECT_EQ(check("dst.v1.Gateway", &status), grpc::StatusCode::OK);
  EXPECT_EQ(status, HealthCheckResponse::NOT_SERVING);
}

// The gateway and the embedded mode build their volumes with BuildVolume.
TEST_F(GatewayTest, BuildVolumeMakesAMirrorsStateDirOrSaysWhyNot) {
  const v1::GatewayConfig config = OneVolume(
      "m", {"unix:/nonexistent/e1.sock", "unix:/nonexistent/e2.sock"});
  VolumeOptions options;
  options.gateway_id = "gateway";
  const std::string file = dir_.path() + "/a-file";
  std::ofstream(file) << "not a directory";
  options.state_dir = file + "/state";
  prometheus::Registry refused_registry;
  absl::StatusOr<std::unique_ptr<Volume>> refused = BuildVolume(
      config.volumes(0), options, kMaxMessageBytes, refused_registry);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(refused.status().message().find("state_dir " + options.state_dir),
            std::string::npos)
      << refused.status();
  options.state_dir = dir_.path() + "/new/state";
  prometheus::Registry registry;
  absl::StatusOr<std::unique_ptr<Volume>> built =
      BuildVolume(config.volumes(0), options, kMaxMessageBytes, registry);
  ASSERT_TRUE(built.ok()) << built.status();
  EXPECT_TRUE(std::filesystem::is_directory(options.state_dir));
  EXPECT_EQ((*built)->name(), "m");
}

}  // namespace
}  // namespace dst
