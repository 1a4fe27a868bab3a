// EtcdClient against a real etcd (Debian's etcd-server, started by the
// test): leases live while renewed and end without; one leader per
// election, the next elected with a higher revision (the epoch) once the
// first's lease ends; a write guarded by a leadership refused once it is
// gone; an endpoint that is down passes calls to the next.
#include "services/gateway/ha/etcd_client.h"

#include <thread>

#include <gtest/gtest.h>

#include "absl/time/clock.h"

#include "tests/integration/etcd_server.h"

namespace dst {
namespace {

class EtcdClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::Status started = server_.Start();
    ASSERT_TRUE(started.ok()) << started;
    client_ = Client({server_.endpoint()});
  }

  static std::unique_ptr<EtcdClient> Client(
      std::vector<std::string> endpoints) {
    EtcdClient::Options options;
    options.endpoints = std::move(endpoints);
    options.call_timeout = absl::Seconds(2);
    auto client = EtcdClient::Create(options);
    EXPECT_TRUE(client.ok()) << client.status();
    return client.ok() ? std::move(*client) : nullptr;
  }

  // Campaigns in "vol0" as `value` on a fresh 5 s lease and wins (the
  // election is free); a second lease, for a rival, goes to
  // `*rival_lease`.
  EtcdClient::Leadership Lead(const std::string& value, int64_t* rival_lease) {
    auto lease = client_->GrantLease(absl::Seconds(5));
    auto rival = client_->GrantLease(absl::Seconds(5));
    EXPECT_TRUE(lease.ok() && rival.ok());
    *rival_lease = rival.ok() ? *rival : 0;
    auto leadership = client_->Campaign("vol0", lease.ok() ? *lease : 0, value,
                                        absl::Now() + absl::Seconds(5));
    EXPECT_TRUE(leadership.ok()) << leadership.status();
    return leadership.ok() ? *leadership : EtcdClient::Leadership{};
  }

  EtcdServer server_;
  std::unique_ptr<EtcdClient> client_;
};

TEST(EtcdClientCreateTest, RefusesNoOrEmptyEndpoints) {
  EXPECT_EQ(EtcdClient::Create({}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EtcdClient::Options options;
  options.endpoints = {"127.0.0.1:2379", ""};
  EXPECT_EQ(EtcdClient::Create(options).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(EtcdClientTest, ALeaseLivesWhileRenewedAndEndsWithout) {
  absl::StatusOr<int64_t> lease = client_->GrantLease(absl::Seconds(1));
  ASSERT_TRUE(lease.ok()) << lease.status();
  for (int i = 0; i < 4; ++i) {  // 2 s of renewals, twice the TTL
    absl::SleepFor(absl::Milliseconds(500));
    absl::StatusOr<absl::Duration> ttl = client_->KeepAlive(*lease);
    ASSERT_TRUE(ttl.ok()) << "renewal " << i << ": " << ttl.status();
    EXPECT_GE(*ttl, absl::Seconds(1));
  }
  absl::SleepFor(absl::Milliseconds(2500));  // not renewed: gone
  EXPECT_EQ(client_->KeepAlive(*lease).status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(EtcdClientTest,
       TheNextCampaignerLeadsWithAHigherEpochOnceTheFirstsLeaseEnds) {
  int64_t second_lease = 0;
  const EtcdClient::Leadership first = Lead("gw-a", &second_lease);
  EXPECT_GT(first.revision, 0);

  absl::StatusOr<EtcdClient::Leadership> second =
      absl::UnknownError("not elected");
  std::thread campaigner([&] {
    second = client_->Campaign("vol0", second_lease, "gw-b",
                               absl::Now() + absl::Seconds(10));
  });
  absl::SleepFor(absl::Milliseconds(300));
  auto leader = client_->CurrentLeader("vol0");
  ASSERT_TRUE(leader.ok()) << leader.status();
  ASSERT_TRUE(leader->has_value());
  EXPECT_EQ((*leader)->value, "gw-a") << "one leader while the first holds";
  EXPECT_EQ((*leader)->revision, first.revision);

  ASSERT_TRUE(client_->RevokeLease(first.lease).ok());  // as if it expired
  campaigner.join();
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_GT(second->revision, first.revision) << "the epoch only grows";
  leader = client_->CurrentLeader("vol0");
  ASSERT_TRUE(leader.ok() && leader->has_value());
  EXPECT_EQ((*leader)->value, "gw-b");
}

TEST_F(EtcdClientTest, AGuardedPutIsRefusedOnceTheLeadershipIsGone) {
  int64_t unused = 0;
  const EtcdClient::Leadership leadership = Lead("gw-a", &unused);
  ASSERT_TRUE(client_->PutIfLeader(leadership, "dst/vol0/state", "v1").ok());
  auto value = client_->Get("dst/vol0/state");
  ASSERT_TRUE(value.ok() && value->has_value());
  EXPECT_EQ((*value)->value, "v1");

  ASSERT_TRUE(client_->Resign(leadership).ok());
  EXPECT_EQ(client_->PutIfLeader(leadership, "dst/vol0/state", "v2").code(),
            absl::StatusCode::kFailedPrecondition);
  value = client_->Get("dst/vol0/state");
  ASSERT_TRUE(value.ok() && value->has_value());
  EXPECT_EQ((*value)->value, "v1") << "nothing written without the leadership";
  auto leader = client_->CurrentLeader("vol0");
  ASSERT_TRUE(leader.ok()) << leader.status();
  EXPECT_FALSE(leader->has_value()) << "resigned: no leader";
}

TEST_F(EtcdClientTest, AGuardedPutWithARevisionIsACompareAndSwap) {
  int64_t unused = 0;
  const EtcdClient::Leadership leadership = Lead("gw-a", &unused);
  EXPECT_EQ(
      client_->PutIfLeader(leadership, "dst/vol0/epoch", "1", 12345).code(),
      absl::StatusCode::kFailedPrecondition)
      << "the key does not exist: only revision 0 matches";
  ASSERT_TRUE(client_->PutIfLeader(leadership, "dst/vol0/epoch", "1", 0).ok());
  auto value = client_->Get("dst/vol0/epoch");
  ASSERT_TRUE(value.ok() && value->has_value());
  const int64_t first = (*value)->mod_revision;
  EXPECT_GT(first, 0);
  EXPECT_EQ(client_->PutIfLeader(leadership, "dst/vol0/epoch", "9", 0).code(),
            absl::StatusCode::kFailedPrecondition)
      << "it exists now";
  ASSERT_TRUE(
      client_->PutIfLeader(leadership, "dst/vol0/epoch", "2", first).ok());
  EXPECT_EQ(
      client_->PutIfLeader(leadership, "dst/vol0/epoch", "9", first).code(),
      absl::StatusCode::kFailedPrecondition)
      << "a stale revision loses the race";
  value = client_->Get("dst/vol0/epoch");
  ASSERT_TRUE(value.ok() && value->has_value());
  EXPECT_EQ((*value)->value, "2");
  EXPECT_GT((*value)->mod_revision, first);
}

TEST_F(EtcdClientTest, ACampaignThatCannotWinByItsDeadlineIsWithdrawn) {
  int64_t second_lease = 0;
  const EtcdClient::Leadership first = Lead("gw-a", &second_lease);
  auto second = client_->Campaign("vol0", second_lease, "gw-b",
                                  absl::Now() + absl::Milliseconds(300));
  EXPECT_EQ(second.status().code(), absl::StatusCode::kDeadlineExceeded);
  ASSERT_TRUE(client_->Resign(first).ok());
  absl::SleepFor(absl::Milliseconds(300));
  auto leader = client_->CurrentLeader("vol0");
  ASSERT_TRUE(leader.ok()) << leader.status();
  EXPECT_FALSE(leader->has_value())
      << "the withdrawn campaign did not become leader";
}

TEST_F(EtcdClientTest, AnEndpointThatIsDownPassesTheCallToTheNext) {
  // Port 1: nothing listens there.
  std::unique_ptr<EtcdClient> client =
      Client({"127.0.0.1:1", server_.endpoint()});
  ASSERT_NE(client, nullptr);
  auto lease = client->GrantLease(absl::Seconds(5));
  EXPECT_TRUE(lease.ok()) << lease.status();
}

TEST_F(EtcdClientTest, CallsFailWhenEtcdIsDown) {
  server_.Stop();
  auto lease = client_->GrantLease(absl::Seconds(5));
  EXPECT_FALSE(lease.ok());
  EXPECT_TRUE(lease.status().code() == absl::StatusCode::kUnavailable ||
              lease.status().code() == absl::StatusCode::kDeadlineExceeded)
      << lease.status();
}

}  // namespace
}  // namespace dst
