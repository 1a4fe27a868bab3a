// The process's data-path completion queue: one gRPC CompletionQueue and the
// one thread that drains it. Every client transaction stream
// (TransactionStream) runs its reads, writes and finishes through it.
//
// Why not gRPC's callback API: in gRPC 1.51 it delivers each event through
// a pair of shared "nexting" threads that wake each other for every
// completion, and on a 2-core VM those wake-ups were most of a 4 KiB
// request's cost. The plugin's process uses no other callback API, so its
// data path has one gRPC thread; measured: nbdkit's CPU per request down
// from 31-36 to 24 us, and 4 KiB writes at queue depth 32 through one
// replica up 25% (bench/results/2026-11-25-data-path.md). The services'
// server side stays on the callback API: moving it here too gained nothing
// while their unary methods keep the nexting threads, which (epoll1 polls
// every descriptor from whichever thread polls) still carry its events.
//
// Handlers run on the loop thread and must not block: a blocked handler
// stalls every stream of the process.
#ifndef DST_SERVICES_COMMON_COMPLETION_LOOP_H_
#define DST_SERVICES_COMMON_COMPLETION_LOOP_H_

#include <memory>
#include <thread>

#include <grpcpp/grpcpp.h>

#include "services/common/tsan.h"

namespace dst {

class CompletionLoop {
 public:
  // What a tag handed to gRPC stands for: its Proceed runs on the loop
  // thread with the operation's outcome.
  class Tag {
   public:
    virtual void Proceed(bool ok) = 0;

   protected:
    ~Tag() = default;
  };

  // What to pass to gRPC as the tag of an operation: `tag` itself, with
  // the hand-off made visible to ThreadSanitizer (gRPC is not built with
  // it; see tsan.h).
  static void* Hand(Tag* tag) {
    DST_TSAN_BEFORE_GRPC(tag);
    return tag;
  }

  // The process's loop, started on first use and never ended (like gRPC's
  // own threads: a service leaves by ExitNow, nbdkit by exit).
  static CompletionLoop& Shared();

  grpc::CompletionQueue* cq() { return &cq_; }
  // True on the loop's own thread.
  bool OnLoopThread() const {
    return std::this_thread::get_id() == thread_.get_id();
  }

 private:
  CompletionLoop();
  void Run();

  grpc::CompletionQueue cq_;
  std::thread thread_;
};

}  // namespace dst

#endif  // DST_SERVICES_COMMON_COMPLETION_LOOP_H_
