// CompareReplicas (dstctl verify): chunks whose digests differ are listed,
// a replica that cannot answer names itself and leaves no range locked,
// and a chunk is compared only while no modification of it is in flight.
#include "services/gateway/verifier.h"

#include <atomic>
#include <map>
#include <thread>

#include <gtest/gtest.h>

#include "absl/synchronization/notification.h"

namespace dst {
namespace {

constexpr uint64_t kChunk = 1 << 20;

// Digests: replica -> chunk offset -> digest (default "same").
struct FakeReplicas {
  std::map<size_t, std::map<uint64_t, std::string>> digests;
  std::map<size_t, std::string> broken;  // replica -> error message
  std::atomic<int> asked{0};

  ChecksumOf checksum() {
    return [this](size_t replica, uint64_t offset, uint64_t) {
      ++asked;
      v1::Reply reply;
      if (broken.count(replica) != 0) {
        reply.set_status(5);
        reply.set_message(broken[replica]);
        return reply;
      }
      auto it = digests[replica].find(offset);
      reply.set_data(it == digests[replica].end() ? "same" : it->second);
      return reply;
    };
  }
};

TEST(VerifierTest, ListsTheChunksThatDiffer) {
  FakeReplicas fake;
  fake.digests[1][2 * kChunk] = "other";
  RangeSerializer lock;
  absl::StatusOr<v1::VerifyReply> reply = CompareReplicas(
      {"a:7000", "b:7000"}, fake.checksum(), lock, 0, 3 * kChunk + 512, kChunk);
  ASSERT_TRUE(reply.ok()) << reply.status();
  EXPECT_EQ(reply->compared_bytes(), 3 * kChunk + 512);
  ASSERT_EQ(reply->differing_size(), 1);
  EXPECT_EQ(reply->differing(0).offset(), 2 * kChunk);
  EXPECT_EQ(reply->differing(0).length(), kChunk);
  ASSERT_EQ(reply->replicas_size(), 2);
  EXPECT_EQ(reply->replicas(1), "b:7000");
}

TEST(VerifierTest, OneReplicaIsNotCompared) {
  FakeReplicas fake;
  RangeSerializer lock;
  absl::StatusOr<v1::VerifyReply> reply =
      CompareReplicas({"a:7000"}, fake.checksum(), lock, 0, kChunk, kChunk);
  ASSERT_TRUE(reply.ok());
  EXPECT_EQ(reply->compared_bytes(), 0u);
  EXPECT_EQ(fake.asked.load(), 0);
}

TEST(VerifierTest, AReplicaThatCannotAnswerIsNamedAndNothingStaysLocked) {
  FakeReplicas fake;
  fake.broken[1] = "stream lost";
  RangeSerializer lock;
  absl::StatusOr<v1::VerifyReply> reply = CompareReplicas(
      {"a:7000", "b:7000"}, fake.checksum(), lock, 0, kChunk, kChunk);
  EXPECT_EQ(reply.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(reply.status().message().find("b:7000: stream lost"),
            absl::string_view::npos);
  EXPECT_EQ(lock.in_flight(), 0u);
}

TEST(VerifierTest, AChunkWithAWriteInFlightWaitsForIt) {
  FakeReplicas fake;
  RangeSerializer lock;
  bool write_started = false;
  lock.Acquire(kChunk, 4096, [&write_started] { write_started = true; });
  ASSERT_TRUE(write_started);
  absl::Notification done;
  std::thread verify([&] {
    EXPECT_TRUE(CompareReplicas({"a:7000", "b:7000"}, fake.checksum(), lock, 0,
                                2 * kChunk, kChunk)
                    .ok());
    done.Notify();
  });
  // The first chunk is compared; the second waits for the write.
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (fake.asked.load() < 2 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(1));
  }
  EXPECT_FALSE(done.WaitForNotificationWithTimeout(absl::Milliseconds(100)));
  EXPECT_EQ(fake.asked.load(), 2);
  lock.Release(kChunk, 4096);
  done.WaitForNotification();
  verify.join();
  EXPECT_EQ(fake.asked.load(), 4);
  EXPECT_EQ(lock.in_flight(), 0u);
}

}  // namespace
}  // namespace dst
