// HA mode against a real etcd (etcd_server.h) with gateways and exporters
// in process: one leader per volume, the other gateway redirecting to it;
// a standby taking over where a leader that died stopped (its mirror state
// read from etcd, its epoch above the old leader's); a leader cut from
// etcd answering nothing once its lease could have expired, and its writes
// refused by the exporters after the takeover; an exporter epoch from
// before HA mode left behind; a client of both gateways following the
// leader; one etcd member of three lost without a new election.
#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

#include "nbdkit-plugin/gateway_client.h"
#include "services/common/base/limits.h"
#include "services/gateway/config.h"
#include "services/gateway/ha/leader_volumes.h"
#include "services/gateway/volume_builder.h"
#include "tests/integration/etcd_server.h"
#include "tests/integration/test_cluster.h"

namespace dst {
namespace {

constexpr uint64_t kSize = 4 << 20;

// A gateway in HA mode on unix:DIR/ID.sock; `deposed` is recorded (the
// real gateway exits).
class HaGateway {
 public:
  HaGateway(const std::string& dir, v1::GatewayConfig config,
            const std::vector<std::string>& etcd, const std::string& id)
      : address_("unix:" + dir + "/" + id + ".sock") {
    for (const std::string& endpoint : etcd) {
      config.mutable_etcd()->add_endpoints(endpoint);
    }
    // 2 s: a renewal every 0.67 s, with room for the sanitizers' slowness.
    config.mutable_etcd()->set_lease_ttl_ms(2000);
    VolumeOptions options;
    options.gateway_id = id;
    options.schedulers = GatewaySchedulers(lag_timers_);
    service_ = std::make_unique<GatewayService>(
        std::vector<std::unique_ptr<Volume>>());
    auto leaders = LeaderVolumes::Start(
        config, address_, /*etcd_tls=*/nullptr, options, kMaxMessageBytes,
        *service_, *registry_, [this](const std::string& why) {
          absl::MutexLock lock(&mu_);
          if (deposed_.empty()) deposed_ = why;
        });
    if (!leaders.ok()) {
      ADD_FAILURE() << leaders.status();
      std::abort();
    }
    leaders_ = std::move(*leaders);
    ServerSpec spec;
    spec.listen = {address_};
    spec.services = {service_.get()};
    auto server = StartServer(spec);
    if (!server.ok()) {
      ADD_FAILURE() << server.status();
      std::abort();
    }
    server_ = std::move(*server);
    service_->Start();
  }
  ~HaGateway() {
    leaders_->Stop();
    service_->Drain(absl::Now() + absl::Seconds(5));
    server_.Shutdown(absl::Now());
    server_.server->Wait();
    server_.server.reset();
    service_.reset();
  }

  const std::string& address() const { return address_; }
  HaCoordinator& coordinator() { return leaders_->coordinator(); }
  std::string deposed() {
    absl::MutexLock lock(&mu_);
    return deposed_;
  }

  v1::VolumeStatus Status(const std::string& volume) {
    auto channel = GatewayChannel(address_);
    v1::StatusRequest request;
    request.set_volume(volume);
    v1::StatusReply reply;
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
    grpc::Status s =
        v1::Gateway::NewStub(*channel)->Status(&context, request, &reply);
    return s.ok() && reply.volumes_size() == 1 ? reply.volumes(0)
                                               : v1::VolumeStatus();
  }
  // True once this gateway leads `volume` and serves I/O.
  bool WaitLeading(const std::string& volume, absl::Duration limit) {
    for (absl::Time end = absl::Now() + limit; absl::Now() < end;
         absl::SleepFor(absl::Milliseconds(50))) {
      v1::VolumeStatus s = Status(volume);
      if (s.state() == "ready" || s.state() == "degraded") return true;
    }
    return false;
  }

 private:
  const std::string address_;
  std::shared_ptr<prometheus::Registry> registry_ =
      std::make_shared<prometheus::Registry>();
  SharedTimers lag_timers_;
  std::unique_ptr<GatewayService> service_;
  std::unique_ptr<LeaderVolumes> leaders_;
  RunningServer server_;
  absl::Mutex mu_;
  std::string deposed_ ABSL_GUARDED_BY(mu_);
};

class HaTest : public ::testing::Test {
 protected:
  // etcd's members (one, unless a test says otherwise).
  virtual int members() const { return 1; }

  void SetUp() override {
    absl::Status started = etcd_.Start(members());
    ASSERT_TRUE(started.ok()) << started;
    e1_ = std::make_unique<TestExporter>(dir_.path(), "e1", kSize);
    e2_ = std::make_unique<TestExporter>(dir_.path(), "e2", kSize);
    config_ = OneVolume("m", {e1_->address(), e2_->address()});
  }

  std::unique_ptr<HaGateway> Gateway(const std::string& id) {
    return std::make_unique<HaGateway>(dir_.path(), config_, etcd_.endpoints(),
                                       id);
  }
  // Starts gateways a and b; returns the one that leads "m" first (in
  // *leader) and the other.
  void StartPair(std::unique_ptr<HaGateway>* leader,
                 std::unique_ptr<HaGateway>* standby) {
    auto a = Gateway("gw-a");
    auto b = Gateway("gw-b");
    for (absl::Time end = absl::Now() + absl::Seconds(30);
         absl::Now() < end && !*leader;
         absl::SleepFor(absl::Milliseconds(50))) {
      for (auto* g : {&a, &b}) {
        const std::string state = (*g)->Status("m").state();
        if (state == "ready" || state == "degraded") {
          *leader = std::move(*g);
          *standby = std::move(g == &a ? b : a);
          break;
        }
      }
    }
    ASSERT_NE(*leader, nullptr) << "no gateway led the volume";
  }

  // A writer of "m" through `addresses` (comma-separated, as gateway=).
  static std::unique_ptr<GatewayClient> Client(
      const std::string& addresses,
      absl::Duration suspend_timeout = absl::Seconds(2)) {
    auto gateways = GatewaySet::Create(addresses);
    EXPECT_TRUE(gateways.ok()) << gateways.status();
    if (!gateways.ok()) return nullptr;
    GatewayClientOptions options;
    options.volume = "m";
    options.lease_token = "writer-1";
    options.suspend_timeout = suspend_timeout;
    auto client = GatewayClient::Open(*gateways, options);
    EXPECT_TRUE(client.ok()) << client.status();
    return client.ok() ? std::move(*client) : nullptr;
  }

  TempDir dir_;
  EtcdServer etcd_;
  std::unique_ptr<TestExporter> e1_, e2_;
  v1::GatewayConfig config_;
};

TEST_F(HaTest, OneGatewayLeadsAndTheOtherNamesIt) {
  std::unique_ptr<HaGateway> leader, standby;
  StartPair(&leader, &standby);
  const v1::VolumeStatus led = leader->Status("m");
  EXPECT_GT(led.epoch(), 0u);
  EXPECT_EQ(led.leader_address(), leader->address());

  const v1::VolumeStatus other = standby->Status("m");
  EXPECT_EQ(other.state(), "standby");
  EXPECT_EQ(other.leader(), led.leader());
  EXPECT_EQ(other.leader_address(), leader->address());

  // An Open at the standby is refused as UNAVAILABLE naming the leader.
  auto channel = GatewayChannel(standby->address());
  ASSERT_TRUE(channel.ok());
  v1::OpenRequest request;
  request.set_volume("m");
  request.set_lease_token("writer-1");
  v1::OpenReply reply;
  grpc::ClientContext context;
  grpc::Status s =
      v1::Gateway::NewStub(*channel)->Open(&context, request, &reply);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE) << s.error_message();
  auto it = context.GetServerTrailingMetadata().find("dst-leader");
  ASSERT_NE(it, context.GetServerTrailingMetadata().end());
  EXPECT_EQ(std::string(it->second.data(), it->second.size()),
            leader->address());
  EXPECT_TRUE(leader->deposed().empty());
}

TEST_F(HaTest, AStandbyTakesOverWhereALeaderThatDiedStopped) {
  std::unique_ptr<HaGateway> leader, standby;
  StartPair(&leader, &standby);
  const uint64_t old_epoch = leader->Status("m").epoch();
  {
    auto client = Client(leader->address());
    ASSERT_NE(client, nullptr);
    ASSERT_EQ(client->Call(WriteRequest(0, std::string(65536, 'a'))).status(),
              0);
  }
  // e2 goes away: the mirror state in etcd marks what it misses.
  e2_->Stop();
  {
    auto client = Client(leader->address());
    ASSERT_NE(client, nullptr);
    ASSERT_EQ(
        client->Call(WriteRequest(1 << 20, std::string(65536, 'b'))).status(),
        0);
  }
  // The leader dies: no resignation, its lease runs out.
  leader->coordinator().Abandon();
  leader.reset();
  const absl::Time died = absl::Now();
  ASSERT_TRUE(standby->WaitLeading("m", absl::Seconds(30)));
  // Reported, not asserted (timing belongs to the benchmarks): the lease's
  // TTL, etcd's expiry check, the election, the state load and the claims.
  RecordProperty(
      "takeover_ms",
      static_cast<int>(absl::ToInt64Milliseconds(absl::Now() - died)));
  const v1::VolumeStatus taken = standby->Status("m");
  EXPECT_GT(taken.epoch(), old_epoch) << "a new leader's epoch is higher";
  EXPECT_EQ(taken.state(), "degraded") << "e2 is still out of sync";

  auto client = Client(standby->address());
  ASSERT_NE(client, nullptr);
  v1::Reply read = client->Call(ReadRequest(0, 65536));
  ASSERT_EQ(read.status(), 0) << read.message();
  EXPECT_EQ(read.data(), std::string(65536, 'a'));
  read = client->Call(ReadRequest(1 << 20, 65536));
  ASSERT_EQ(read.status(), 0) << read.message();
  EXPECT_EQ(read.data(), std::string(65536, 'b'));

  // e2 returns: only what it missed is copied (the state came from etcd).
  e2_ = std::make_unique<TestExporter>(dir_.path(), "e2", kSize);
  bool synced = false;
  v1::VolumeStatus after;
  for (absl::Time end = absl::Now() + absl::Seconds(20);
       absl::Now() < end && !synced; absl::SleepFor(absl::Milliseconds(100))) {
    after = standby->Status("m");
    synced = after.state() == "ready";
  }
  ASSERT_TRUE(synced) << after.ShortDebugString();
  for (const v1::ReplicaStatus& r : after.replicas()) {
    // The region it missed and the one in the activity log when the
    // leader died: 2 of the volume's 4.
    EXPECT_LE(r.resync_copied_bytes(), uint64_t{2} << 20)
        << r.address() << ": an incremental resync, not a full copy";
  }
  EXPECT_EQ(ReadFile(e1_->path()), ReadFile(e2_->path()));
}

TEST_F(HaTest, AClientOfBothGatewaysFollowsTheLeaderAcrossATakeover) {
  std::unique_ptr<HaGateway> leader, standby;
  StartPair(&leader, &standby);
  // The standby listed first: the client is sent on to the leader.
  std::unique_ptr<GatewayClient> client =
      Client(absl::StrCat(standby->address(), ",", leader->address()),
             absl::Seconds(30));
  ASSERT_NE(client, nullptr);

  // A writer records what was acknowledged while the leader dies.
  std::atomic<int> acknowledged{0};
  std::atomic<bool> failed{false};
  std::thread writer([&] {
    for (int i = 0; i < 64 && !failed; ++i) {
      v1::Reply reply = client->Call(WriteRequest(
          uint64_t(i) * 65536, std::string(65536, char('A' + i % 26))));
      if (reply.status() != 0) {
        ADD_FAILURE() << "write " << i << ": " << reply.message();
        failed = true;
      }
      acknowledged = i + 1;
    }
  });
  while (acknowledged < 16 && !failed) absl::SleepFor(absl::Milliseconds(1));
  leader->coordinator().Abandon();  // it dies, writes in flight: its lease
  leader.reset();                   // runs out
  writer.join();
  ASSERT_FALSE(failed) << "the takeover was an error, not a stall";
  ASSERT_EQ(acknowledged, 64);
  for (int i = 0; i < 64; ++i) {
    v1::Reply read = client->Call(ReadRequest(uint64_t(i) * 65536, 65536));
    ASSERT_EQ(read.status(), 0) << read.message();
    EXPECT_EQ(read.data(), std::string(65536, char('A' + i % 26)))
        << "write " << i << " was acknowledged";
  }
  EXPECT_EQ(standby->Status("m").leader_address(), standby->address());
}

TEST_F(HaTest, ALeaderCutFromEtcdStopsAnsweringAndItsWritesAreRefused) {
  std::unique_ptr<HaGateway> leader, standby;
  StartPair(&leader, &standby);
  auto old_client = Client(leader->address());
  ASSERT_NE(old_client, nullptr);
  ASSERT_EQ(old_client->Call(WriteRequest(0, std::string(4096, 'o'))).status(),
            0);

  // Cut from etcd: the old leader renews no more but keeps running.
  leader->coordinator().Abandon();
  ASSERT_TRUE(standby->WaitLeading("m", absl::Seconds(30)));

  auto client = Client(standby->address());
  ASSERT_NE(client, nullptr);
  ASSERT_EQ(client->Call(WriteRequest(0, std::string(4096, 'n'))).status(), 0);

  // The old leader answers nothing with success any more, and what it
  // sends is refused by the exporters: the new data stays.
  v1::Reply late = old_client->Call(WriteRequest(0, std::string(4096, 'x')));
  EXPECT_NE(late.status(), 0) << "a deposed leader acknowledged a write";
  EXPECT_FALSE(leader->deposed().empty());
  v1::Reply read = client->Call(ReadRequest(0, 4096));
  ASSERT_EQ(read.status(), 0) << read.message();
  EXPECT_EQ(read.data(), std::string(4096, 'n'));
  EXPECT_EQ(ReadFile(e1_->path()).substr(0, 4096), std::string(4096, 'n'));
  EXPECT_EQ(ReadFile(e2_->path()).substr(0, 4096), std::string(4096, 'n'));
}

TEST_F(HaTest, ALeaderClaimsAboveAnEpochFromBeforeHaMode) {
  uint64_t single_epoch = 0;
  {
    // A single gateway ran first, several times: its epochs are local.
    for (int run = 0; run < 3; ++run) {
      TestGateway single(dir_.path(), config_, "single");
      ASSERT_TRUE(single.WaitReady("m"));
      single_epoch = single.VolumeStatus("m").epoch();
    }
  }
  ASSERT_GT(single_epoch, 0u);
  auto a = Gateway("gw-a");
  ASSERT_TRUE(a->WaitLeading("m", absl::Seconds(30)));
  EXPECT_GT(a->Status("m").epoch(), single_epoch);
  auto client = Client(a->address());
  ASSERT_NE(client, nullptr);
  EXPECT_EQ(client->Call(WriteRequest(0, std::string(4096, 'h'))).status(), 0);
}

class HaThreeMemberTest : public HaTest {
 protected:
  int members() const override { return 3; }
};

TEST_F(HaThreeMemberTest, LosingOneEtcdMemberChangesNothing) {
  std::unique_ptr<HaGateway> leader, standby;
  StartPair(&leader, &standby);
  const v1::VolumeStatus before = leader->Status("m");
  auto client = Client(leader->address());
  ASSERT_NE(client, nullptr);
  ASSERT_EQ(client->Call(WriteRequest(0, std::string(4096, 'a'))).status(), 0);

  // The member every gateway called first dies; etcd keeps its quorum.
  etcd_.StopMember(0);
  // Two lease TTLs of writes: each acknowledged, by the same leader.
  for (absl::Time end = absl::Now() + absl::Seconds(4); absl::Now() < end;
       absl::SleepFor(absl::Milliseconds(100))) {
    v1::Reply reply = client->Call(WriteRequest(4096, std::string(4096, 'b')));
    ASSERT_EQ(reply.status(), 0) << reply.message();
  }
  const v1::VolumeStatus after = leader->Status("m");
  EXPECT_EQ(after.state(), "ready");
  EXPECT_EQ(after.epoch(), before.epoch()) << "no new election";
  EXPECT_LT(after.lease_age_ms(), 2000u) << "the lease is still renewed";
  EXPECT_TRUE(leader->deposed().empty()) << leader->deposed();
  const v1::VolumeStatus other = standby->Status("m");
  EXPECT_EQ(other.state(), "standby");
  EXPECT_EQ(other.leader(), before.leader());
}

}  // namespace
}  // namespace dst
