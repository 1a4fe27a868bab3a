// The streams' batching writer: one write in flight, what is queued
// meanwhile coalesced into the next up to the byte limit (the first item
// always goes), nothing written while the stream is closed, and on a loop
// that is behind one deferred flush carrying what every ready event queued.
#include "services/common/transport/batch_writer.h"

#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <grpcpp/alarm.h>
#include <gtest/gtest.h>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"

#include "dst/v1/exporter.pb.h"
#include "services/common/base/limits.h"
#include "services/common/rpc/completion_loop.h"
#include "services/common/transport/payload.h"

namespace dst {
namespace {

using Writer = BatchWriter<v1::Reply>;
using Next = Writer::Next;

// A stream's queue of replies, each with `size` bytes of data.
class Queue {
 public:
  void Push(uint64_t id, size_t size) {
    v1::Reply reply;
    reply.set_id(id);
    items_.push_back(
        {reply, Payload::Copy(std::string(size, 'x').data(), size)});
  }
  size_t size() const { return items_.size(); }
  uint64_t front_id() const { return items_.front().reply.id(); }

  Next Request(Writer& writer) {
    return writer.Request(!items_.empty(), Peek(), Take());
  }
  Next OnFlush(Writer& writer) {
    return writer.OnFlush(!items_.empty(), Peek(), Take());
  }

 private:
  struct Item {
    v1::Reply reply;
    Payload data;
  };
  std::function<std::optional<size_t>()> Peek() {
    return [this]() -> std::optional<size_t> {
      if (items_.empty()) return std::nullopt;
      return items_.front().data.size();
    };
  }
  std::function<void(OutgoingReplies&)> Take() {
    return [this](OutgoingReplies& batch) {
      batch.Add(std::move(items_.front().reply),
                std::move(items_.front().data));
      items_.pop_front();
    };
  }
  std::deque<Item> items_;
};

// Never deferred in these tests: they run off any loop.
class NeverRuns final : public CompletionLoop::Tag {
 public:
  void Proceed(bool) override { ADD_FAILURE() << "the flush ran"; }
};

TEST(BatchWriterTest, FillsUpToTheLimitAndTheFirstItemAlwaysGoes) {
  NeverRuns flush;
  const size_t item = 1000 + kBatchItemOverheadBytes;
  Writer writer(&flush, 2 * item + 10);  // room for two of them
  Queue queue;
  for (uint64_t id = 1; id <= 5; ++id) queue.Push(id, 1000);
  ASSERT_EQ(queue.Request(writer), Next::kWrite);
  EXPECT_TRUE(writer.writing());
  EXPECT_EQ(writer.batch().size(), 2u);
  EXPECT_EQ(queue.size(), 3u);
  EXPECT_EQ(queue.front_id(), 3u);

  // One larger than the limit still goes, alone.
  Writer small(&flush, 10);
  Queue big;
  big.Push(7, 4096);
  big.Push(8, 1);
  ASSERT_EQ(big.Request(small), Next::kWrite);
  EXPECT_EQ(small.batch().size(), 1u);
  EXPECT_EQ(big.size(), 1u);
}

TEST(BatchWriterTest, OneWriteInFlightAndTheNextCarriesWhatCameMeanwhile) {
  NeverRuns flush;
  Writer writer(&flush, 1 << 20);
  Queue queue;
  queue.Push(1, 100);
  ASSERT_EQ(queue.Request(writer), Next::kWrite);
  EXPECT_EQ(writer.batch().size(), 1u);
  // Queued while the write is in flight: nothing starts, nothing taken.
  queue.Push(2, 100);
  queue.Push(3, 100);
  EXPECT_EQ(queue.Request(writer), Next::kNothing);
  EXPECT_EQ(queue.size(), 2u);
  writer.WriteDone();
  EXPECT_FALSE(writer.writing());
  EXPECT_EQ(writer.batch().size(), 0u);
  ASSERT_EQ(queue.Request(writer), Next::kWrite);
  EXPECT_EQ(writer.batch().size(), 2u);
  EXPECT_EQ(queue.size(), 0u);
  writer.WriteDone();
  // Nothing queued (the stream says it is not open): no write.
  EXPECT_EQ(queue.Request(writer), Next::kNothing);
  EXPECT_FALSE(writer.writing());
}

// Runs `run` on the loop thread when its alarm fires; the first one
// holds the loop until released, so the others find it behind.
class Event final : public CompletionLoop::Tag {
 public:
  explicit Event(std::function<void()> run, absl::Notification* hold = nullptr)
      : run_(std::move(run)), hold_(hold) {}
  void Proceed(bool ok) override {
    if (hold_ != nullptr) hold_->WaitForNotification();
    if (ok) run_();
  }

 private:
  const std::function<void()> run_;
  absl::Notification* const hold_;
};

TEST(BatchWriterTest, ALoopBehindWritesWhatEveryReadyEventQueuedInOneBatch) {
  CompletionLoop loop(std::make_unique<grpc::CompletionQueue>());
  absl::Mutex mu;  // the stream's lock
  Queue queue;
  std::vector<Next> asked;
  size_t flushed = 0;
  absl::Notification flush_ran;
  // The writer needs its flush tag; the flush's work needs the writer.
  std::unique_ptr<Writer> writer;
  Event flush_tag([&] {
    absl::MutexLock lock(&mu);
    if (queue.OnFlush(*writer) == Next::kWrite) {
      flushed = writer->batch().size();
    }
    flush_ran.Notify();
  });
  writer = std::make_unique<Writer>(&flush_tag, 1 << 20);
  absl::Notification release;
  Event first([] {}, &release);
  std::vector<std::unique_ptr<Event>> ready;
  for (uint64_t id = 1; id <= 5; ++id) {
    ready.push_back(std::make_unique<Event>([&, id] {
      absl::MutexLock lock(&mu);
      queue.Push(id, 512);
      asked.push_back(queue.Request(*writer));
    }));
  }
  std::vector<std::unique_ptr<grpc::Alarm>> alarms;
  std::vector<Event*> order = {&first};
  for (const std::unique_ptr<Event>& tag : ready) order.push_back(tag.get());
  for (Event* tag : order) {  // each queued before Set returns
    alarms.push_back(std::make_unique<grpc::Alarm>());
    alarms.back()->Set(loop.cq(), gpr_inf_past(GPR_CLOCK_MONOTONIC),
                       CompletionLoop::Hand(tag));
  }
  release.Notify();
  ASSERT_TRUE(flush_ran.WaitForNotificationWithTimeout(absl::Seconds(30)));
  absl::MutexLock lock(&mu);
  ASSERT_EQ(asked.size(), 5u);
  EXPECT_EQ(asked[0], Next::kDeferred);
  for (size_t i = 1; i < asked.size(); ++i) {
    EXPECT_EQ(asked[i], Next::kNothing) << "event " << i;
  }
  EXPECT_EQ(flushed, 5u) << "the flush carries every event's item";
  EXPECT_EQ(queue.size(), 0u);
}

}  // namespace
}  // namespace dst
