// The shared completion loop: see completion_loop.h.
#include "services/common/completion_loop.h"

namespace dst {

CompletionLoop::CompletionLoop() : thread_([this] { Run(); }) {}

void CompletionLoop::Run() {
  void* tag = nullptr;
  bool ok = false;
  while (cq_.Next(&tag, &ok)) {
    DST_TSAN_AFTER_GRPC(tag);
    static_cast<Tag*>(tag)->Proceed(ok);
  }
}

CompletionLoop& CompletionLoop::Shared() {
  static CompletionLoop* const loop = new CompletionLoop();  // never deleted
  return *loop;
}

}  // namespace dst
