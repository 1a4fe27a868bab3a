// A completion loop: one gRPC CompletionQueue and the one thread that
// drains it, running each tag's Proceed. The process-wide Shared() loop
// carries every client transaction stream (TransactionStream); each server
// has a loop of its own over its server queue (async_service.h), so that a
// server's only gRPC thread is its loop's.
//
// Why not gRPC's callback API: in gRPC 1.51 it delivers each event through
// a pair of shared "nexting" threads that wake each other for every
// completion, and on a 2-core VM those wake-ups were most of a 4 KiB
// request's cost. Measured on the plugin's side: nbdkit's CPU per request
// down from 31-36 to 24 us, and 4 KiB writes at queue depth 32 through one
// replica up 25% (bench/results/2026-11-25-data-path.md); on the servers'
// side see bench/results/2026-11-25-server-loop.md.
//
// Handlers run on the loop thread and must not block: a blocked handler
// stalls every call on the loop.
//
// When the loop is behind (a completion was ready the moment it looked),
// the writes its handlers start are deferred (Defer): a stream queues the
// data and writes it once the loop has caught up, so the requests or
// replies of every event handled meanwhile go out in one message. A
// gateway that reads one request per message from a plugin then sends the
// exporter one message for all it read while busy, and the exporter
// answers them with one: gRPC's cost per message, most of a 4 KiB
// request's, is paid once per batch (bench/results/
// 2026-12-03-write-when-behind.md). An event that wakes an idle loop has
// its writes started at once, so a lone request waits for nothing. The
// deferred work runs after at most kMaxEventsBeforeFlush events even when
// more are ready.
#ifndef DST_SERVICES_COMMON_RPC_COMPLETION_LOOP_H_
#define DST_SERVICES_COMMON_RPC_COMPLETION_LOOP_H_

#include <memory>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "services/common/base/tsan.h"

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

  // The tag of one kind of operation of an object that has several in
  // flight: runs owner->Proceed(op, ok) (the owner befriends it).
  template <class Owner, class Op>
  class OpTag final : public Tag {
   public:
    OpTag(Owner* owner, Op op) : owner_(owner), op_(op) {}
    void Proceed(bool ok) override { owner_->Proceed(op_, ok); }

   private:
    Owner* const owner_;
    const Op op_;
  };

  // On a loop thread that is behind, queues `tag` to run (Proceed(true))
  // once no completion is ready; its owner counts it as an operation in
  // flight like any other. False, nothing queued, on an idle loop or on
  // another thread: the caller does the work at once.
  static bool Defer(Tag* tag);
  // Events a loop handles before it runs deferred work, ready or not.
  static constexpr int kMaxEventsBeforeFlush = 32;

  // What to pass to gRPC as the tag of an operation: `tag` itself, with
  // the hand-off made visible to ThreadSanitizer (gRPC is not built with
  // it; see tsan.h).
  static void* Hand(Tag* tag) {
    DST_TSAN_BEFORE_GRPC(tag);
    return tag;
  }

  // The process's loop for client streams, started on first use and never
  // ended (like gRPC's own threads: a service leaves by ExitNow, nbdkit by
  // exit).
  static CompletionLoop& Shared();
  // Makes a loop over `cq` (a server's queue) the process's Shared() loop,
  // so that a server process with client streams (the gateway) has one
  // gRPC thread. Null (`cq` left as it is) when Shared() was used already.
  static CompletionLoop* ShareQueue(std::unique_ptr<grpc::CompletionQueue>* cq);

  // A loop of its own over `cq` (a server's queue), running from now on.
  explicit CompletionLoop(std::unique_ptr<grpc::CompletionQueue> cq);
  // Shuts the queue down and waits until the thread has drained it: every
  // operation on it must be over (for a server: after its Shutdown).
  ~CompletionLoop();
  CompletionLoop(const CompletionLoop&) = delete;
  CompletionLoop& operator=(const CompletionLoop&) = delete;

  grpc::CompletionQueue* cq() { return cq_.get(); }
  // True on the loop's own thread.
  bool OnLoopThread() const {
    return std::this_thread::get_id() == thread_.get_id();
  }

 private:
  void Run();
  // Runs the deferred tags (and those they defer in turn).
  void RunDeferred();

  const std::unique_ptr<grpc::CompletionQueue> cq_;
  // Tags queued by Defer; only the loop's thread touches these two.
  std::vector<Tag*> deferred_;
  bool busy_ = false;  // the event being handled was ready without waiting
  std::thread thread_;
};

}  // namespace dst

#endif  // DST_SERVICES_COMMON_RPC_COMPLETION_LOOP_H_
