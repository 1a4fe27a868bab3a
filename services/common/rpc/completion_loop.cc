// The shared completion loop: see completion_loop.h.
#include "services/common/rpc/completion_loop.h"

#include <utility>

#include "absl/base/const_init.h"
#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace dst {

CompletionLoop::CompletionLoop(std::unique_ptr<grpc::CompletionQueue> cq)
    : cq_(std::move(cq)), thread_([this] { Run(); }) {}

CompletionLoop::~CompletionLoop() {
  cq_->Shutdown();
  thread_.join();
}

namespace {
// The loop whose thread this is (null on other threads).
thread_local CompletionLoop* this_thread_loop = nullptr;
}  // namespace

bool CompletionLoop::Defer(Tag* tag) {
  CompletionLoop* loop = this_thread_loop;
  if (loop == nullptr || !loop->busy_) return false;
  loop->deferred_.push_back(tag);
  return true;
}

void CompletionLoop::RunDeferred() {
  std::vector<Tag*> run;
  while (!deferred_.empty()) {
    run.swap(deferred_);
    for (Tag* tag : run) tag->Proceed(true);
    run.clear();
  }
}

void CompletionLoop::Run() {
  this_thread_loop = this;
  void* tag = nullptr;
  bool ok = false;
  int events = 0;  // handled since the loop last waited or ran deferred work
  for (;;) {
    // A completion that is ready at once (one epoll_wait with no timeout
    // when gRPC's queue is empty) means the loop is behind: its writes wait
    // for the next ones.
    const grpc::CompletionQueue::NextStatus status =
        events < kMaxEventsBeforeFlush
            ? cq_->AsyncNext(&tag, &ok, gpr_inf_past(GPR_CLOCK_MONOTONIC))
            : grpc::CompletionQueue::TIMEOUT;
    if (status == grpc::CompletionQueue::GOT_EVENT) {
      busy_ = true;
    } else if (!deferred_.empty()) {
      RunDeferred();
      events = 0;
      continue;
    } else {
      // Idle: the event that wakes the loop is handled at once, its writes
      // started inline, as no other event is there to share them.
      busy_ = false;
      events = 0;
      if (!cq_->Next(&tag, &ok)) break;
    }
    ++events;
    DST_TSAN_AFTER_GRPC(tag);
    static_cast<Tag*>(tag)->Proceed(ok);
  }
}

namespace {
absl::Mutex shared_mu(absl::kConstInit);
CompletionLoop* shared_loop ABSL_GUARDED_BY(shared_mu) = nullptr;  // leaked
}  // namespace

CompletionLoop& CompletionLoop::Shared() {
  absl::MutexLock lock(&shared_mu);
  if (shared_loop == nullptr) {
    shared_loop = new CompletionLoop(std::make_unique<grpc::CompletionQueue>());
  }
  return *shared_loop;
}

CompletionLoop* CompletionLoop::ShareQueue(
    std::unique_ptr<grpc::CompletionQueue>* cq) {
  absl::MutexLock lock(&shared_mu);
  if (shared_loop != nullptr) return nullptr;
  shared_loop = new CompletionLoop(std::move(*cq));
  return shared_loop;
}

}  // namespace dst
