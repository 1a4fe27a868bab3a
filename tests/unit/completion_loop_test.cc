// The completion loop's deferred work: a handler on a loop that is behind
// (completions were ready when it looked) defers its writes until the ready
// completions are handled, at most kMaxEventsBeforeFlush of them; on an
// idle loop or off the loop nothing is deferred. Completions are made with
// grpc::Alarm: one set with a past deadline is queued before Set returns.
#include "services/common/rpc/completion_loop.h"

#include <memory>
#include <string>
#include <vector>

#include <grpcpp/alarm.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"

namespace dst {
namespace {

// What the loop ran, in order: "name" for a tag, "name:deferred" or
// "name:inline" for a tag that asked to defer `flush`.
class Journal {
 public:
  void Add(const std::string& entry) {
    absl::MutexLock lock(&mu_);
    entries_.push_back(entry);
  }
  std::vector<std::string> WaitFor(size_t count) {
    absl::MutexLock lock(&mu_);
    auto enough = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return entries_.size() >= count;
    };
    mu_.AwaitWithTimeout(absl::Condition(&enough), absl::Seconds(30));
    return entries_;
  }

 private:
  absl::Mutex mu_;
  std::vector<std::string> entries_ ABSL_GUARDED_BY(mu_);
};

class Recorded final : public CompletionLoop::Tag {
 public:
  Recorded(std::string name, Journal* journal, CompletionLoop::Tag* flush,
           absl::Notification* hold = nullptr)
      : name_(std::move(name)), journal_(journal), flush_(flush), hold_(hold) {}
  void Proceed(bool ok) override {
    if (hold_ != nullptr) hold_->WaitForNotification();
    if (!ok) {
      journal_->Add(name_ + ":cancelled");
    } else if (flush_ == nullptr) {
      journal_->Add(name_);
    } else {
      journal_->Add(name_ +
                    (CompletionLoop::Defer(flush_) ? ":deferred" : ":inline"));
    }
  }

 private:
  const std::string name_;
  Journal* const journal_;
  CompletionLoop::Tag* const flush_;
  absl::Notification* const hold_;
};

void FireNow(grpc::Alarm* alarm, CompletionLoop* loop,
             CompletionLoop::Tag* tag) {
  alarm->Set(loop->cq(), gpr_inf_past(GPR_CLOCK_MONOTONIC),
             CompletionLoop::Hand(tag));
}

// Holds `loop` in `first` until every one of `ready` has completed too,
// then lets it go. The alarms returned must outlive the handlers' runs.
std::vector<std::unique_ptr<grpc::Alarm>> CompleteWhileHeld(
    CompletionLoop* loop, Recorded* first, absl::Notification* release,
    const std::vector<std::unique_ptr<Recorded>>& ready) {
  std::vector<std::unique_ptr<grpc::Alarm>> alarms;
  alarms.reserve(ready.size() + 1);
  alarms.push_back(std::make_unique<grpc::Alarm>());
  FireNow(alarms.back().get(), loop, first);
  for (const std::unique_ptr<Recorded>& tag : ready) {
    alarms.push_back(std::make_unique<grpc::Alarm>());
    FireNow(alarms.back().get(), loop, tag.get());
  }
  release->Notify();
  return alarms;
}

TEST(CompletionLoopTest, NothingIsDeferredOffTheLoop) {
  Journal journal;
  Recorded flush("flush", &journal, nullptr);
  EXPECT_FALSE(CompletionLoop::Defer(&flush));
}

TEST(CompletionLoopTest, ALoopBehindRunsDeferredWorkAfterWhatWasReady) {
  CompletionLoop loop(std::make_unique<grpc::CompletionQueue>());
  Journal journal;
  Recorded flush("flush", &journal, nullptr);
  absl::Notification release;
  // The loop is held in the first handler while five more complete.
  Recorded first("first", &journal, nullptr, &release);
  std::vector<std::unique_ptr<Recorded>> ready;
  ready.reserve(5);
  for (int i = 0; i < 5; ++i) {
    ready.push_back(
        std::make_unique<Recorded>(absl::StrCat("ready", i), &journal, &flush));
  }
  const auto alarms = CompleteWhileHeld(&loop, &first, &release, ready);
  // Each ready handler found the loop behind and deferred; the deferred
  // runs (one per Defer: a stream's own flag keeps it to one) came after
  // every ready completion.
  const std::vector<std::string> ran = journal.WaitFor(11);
  ASSERT_GE(ran.size(), 7u);
  EXPECT_EQ(ran[0], "first");
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(ran[1 + i], absl::StrCat("ready", i, ":deferred"));
  }
  for (size_t i = 6; i < ran.size(); ++i) EXPECT_EQ(ran[i], "flush");
  EXPECT_EQ(ran.size(), 11u);  // one run per Defer, none lost or doubled
}

TEST(CompletionLoopTest, DeferredWorkWaitsForAtMostTheEventLimit) {
  CompletionLoop loop(std::make_unique<grpc::CompletionQueue>());
  Journal journal;
  Recorded flush("flush", &journal, nullptr);
  absl::Notification release;
  Recorded first("first", &journal, nullptr, &release);
  const int count = CompletionLoop::kMaxEventsBeforeFlush + 10;
  std::vector<std::unique_ptr<Recorded>> ready;
  ready.reserve(count);
  // Only the first of them defers.
  ready.push_back(std::make_unique<Recorded>("deferring", &journal, &flush));
  for (int i = 1; i < count; ++i) {
    ready.push_back(std::make_unique<Recorded>(absl::StrCat("ready", i),
                                               &journal, nullptr));
  }
  const auto alarms = CompleteWhileHeld(&loop, &first, &release, ready);
  const std::vector<std::string> ran = journal.WaitFor(count + 2);
  ASSERT_EQ(ran.size(), static_cast<size_t>(count + 2));
  EXPECT_EQ(ran[1], "deferring:deferred");
  size_t flushed_at = 0;
  for (size_t i = 0; i < ran.size(); ++i) {
    if (ran[i] == "flush") flushed_at = i;
  }
  // The flush comes once kMaxEventsBeforeFlush events were handled since
  // the loop last waited ("first" among them), though more were ready.
  EXPECT_EQ(flushed_at,
            static_cast<size_t>(CompletionLoop::kMaxEventsBeforeFlush));
}

TEST(CompletionLoopTest, AnEventThatWakesAnIdleLoopWritesAtOnce) {
  CompletionLoop loop(std::make_unique<grpc::CompletionQueue>());
  Journal journal;
  Recorded flush("flush", &journal, nullptr);
  Recorded waking("waking", &journal, &flush);
  // Due well after the loop has found nothing ready and gone to sleep.
  grpc::Alarm alarm;
  alarm.Set(loop.cq(),
            gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                         gpr_time_from_millis(500, GPR_TIMESPAN)),
            CompletionLoop::Hand(&waking));
  const std::vector<std::string> ran = journal.WaitFor(1);
  ASSERT_EQ(ran.size(), 1u);
  EXPECT_EQ(ran[0], "waking:inline");
}

}  // namespace
}  // namespace dst
