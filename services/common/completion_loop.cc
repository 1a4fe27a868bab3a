// The shared completion loop: see completion_loop.h.
#include "services/common/completion_loop.h"

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

void CompletionLoop::Run() {
  void* tag = nullptr;
  bool ok = false;
  while (cq_->Next(&tag, &ok)) {
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
