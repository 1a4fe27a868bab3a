// The client side of a transaction stream: the gateway's session with an
// exporter (Exporter.Stream) and the plugin's session with a gateway
// (Gateway.Io) are both one TransactionStream.
//
// Submit() gives each request an id from a pre-sized TransactionTable and
// queues it; a pump coalesces queued requests into batches, one write in
// flight at a time (each request's data is shared with the write, a large
// one never copied); each reply is matched to its transaction by id and its
// callback run with the reply's data. A reply whose id is unknown (late,
// duplicated, forged) is counted and dropped. When the table is full, requests
// wait in a FIFO until a slot frees (callers bound how much they submit). When
// the stream ends, every transaction still in flight completes with
// UNAVAILABLE.
//
// The stream's operations complete on the process's CompletionLoop. A
// write asked for on a loop thread (a reply's callback submitting the next
// request, a gateway forwarding what it read) is deferred until that loop
// is idle (CompletionLoop::Defer), so it carries every request submitted
// meanwhile; one asked for on another thread starts at once.
//
// Thread-safe. Callbacks run on the loop thread (or inside Submit when the
// stream is already broken) and must not block.
#ifndef DST_SERVICES_COMMON_TRANSPORT_TRANSACTION_STREAM_H_
#define DST_SERVICES_COMMON_TRANSPORT_TRANSACTION_STREAM_H_

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include <grpcpp/grpcpp.h>
#include <grpcpp/impl/codegen/proto_utils.h>
#include <grpcpp/support/async_stream.h>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

#include "dst/v1/exporter.pb.h"
#include "services/common/rpc/completion_loop.h"
#include "services/common/transport/batch_writer.h"
#include "services/common/transport/incoming_batch.h"
#include "services/common/transport/outgoing_batch.h"
#include "services/common/transport/payload.h"
#include "services/common/transport/transaction_table.h"

namespace dst {

// Writes RequestBatch messages (as OutgoingRequests), reads ReplyBatch
// messages (as IncomingReplies).
using AsyncClientStream =
    grpc::ClientAsyncReaderWriter<OutgoingRequests, IncomingReplies>;

// Prepares (does not start) the transaction stream `method` (one of the
// above) on `channel`: what a StartFn returns.
std::unique_ptr<AsyncClientStream> PrepareTransactionStream(
    grpc::ChannelInterface* channel, const char* method,
    grpc::ClientContext* context, grpc::CompletionQueue* cq);

// A transaction queued for a stream: submitted and waiting for a slot, or
// one a stream could not finish (it ended first: an orphan), handed back
// for replay on another stream.
struct QueuedTransaction {
  v1::Request request;  // its data field empty
  TransactionDone done;
  int sends = 0;  // times it was written to the wire so far
  absl::Time submitted;
  // The request's data, shared with the writes that carried it and with
  // the other replicas of a mirrored write.
  Payload data;
};
using OrphanHandler = std::function<void(std::vector<QueuedTransaction>)>;

struct TransactionStreamOptions {
  // Transactions in flight on the wire (the table's pre-sized capacity).
  // Default 256.
  size_t max_in_flight = 256;
  // Requests are coalesced into one message up to this many bytes.
  size_t max_batch_bytes = 4u << 20;
  // When set, a stream that ends hands its unfinished transactions (oldest
  // first) to this handler instead of failing them. Runs on a gRPC thread.
  OrphanHandler on_orphans;
};

class TransactionStream {
 public:
  // Prepares the RPC: add metadata to `context`, then return
  // PrepareTransactionStream(...) (not started).
  using StartFn = std::function<std::unique_ptr<AsyncClientStream>(
      grpc::ClientContext* context, grpc::CompletionQueue* cq)>;

  TransactionStream(const StartFn& start,
                    const TransactionStreamOptions& options);
  // Closes the stream (see Close) and waits for it to end, so it must not
  // run on the loop thread: see Share().
  ~TransactionStream();

  // Shared ownership whose last release, should it happen on the loop
  // thread (a callback dropping the last reference), deletes the stream on
  // a thread of its own instead of waiting for the loop from inside it.
  static std::shared_ptr<TransactionStream> Share(
      std::unique_ptr<TransactionStream> stream);
  TransactionStream(const TransactionStream&) = delete;
  TransactionStream& operator=(const TransactionStream&) = delete;

  // Queues `request` (its id is replaced) with its data; `done` runs
  // exactly once. A request that carries its data in its own data field
  // has it moved into the payload.
  void Submit(v1::Request request, TransactionDone done, Payload data = {});

  // Queues the transaction if the stream still accepts work, moving from
  // `transaction`; false (nothing moved) when it has ended or is closing.
  // Its `sends` say how often it was sent before, on other streams. (Once
  // the server has ended the call but its status is not yet in, Submit and
  // TrySubmit still queue: the transaction then ends with the others, an
  // orphan or failed with the call's status, never "stream ended".)
  bool TrySubmit(QueuedTransaction& transaction);

  // When the oldest transaction still unanswered was last sent
  // (InfiniteFuture when none is).
  absl::Time OldestSent() const;

  // Ends the stream at once (its transactions become orphans or fail).
  void Cancel() { context_.TryCancel(); }

  // Blocking form of Submit, for callers on their own threads: see
  // WaitForReply for where the reply's data goes.
  v1::Reply Call(v1::Request request, Payload data = {},
                 Payload* reply_data = nullptr);

  // Half-closes the stream; the server answers what it has, then ends it.
  // Waits up to `timeout`, then cancels. Idempotent.
  void Close(absl::Duration timeout = absl::Seconds(10));

  // OK while the stream is usable; otherwise why it ended.
  absl::Status status() const;
  bool broken() const { return !status().ok(); }
  size_t in_flight() const;
  uint64_t late_replies() const { return late_replies_.load(); }
  // Messages written (batches of requests) and read (batches of replies)
  // so far.
  uint64_t messages_written() const { return messages_written_.load(); }
  uint64_t messages_read() const { return messages_read_.load(); }

 private:
  // What a tag on the completion queue stands for.
  enum class Op { kStart, kRead, kWrite, kWritesDone, kFinish, kFlush };
  using Tag = CompletionLoop::OpTag<TransactionStream, Op>;
  friend Tag;
  void Proceed(Op op, bool ok);

  void OnStarted(bool ok);
  void OnReadDone(bool ok);
  void OnWriteDone(bool ok);
  void OnFinished();
  // The deferred write: writes what is queued (and WritesDone if due).
  void OnFlush();
  // Counts an operation handed to gRPC (its tag will come back once).
  void BeginOpLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { ++pending_ops_; }
  // Runs after each tag: once the call is over and no tag is left, tells
  // the destructor.
  void EndOp();

  // Queues the transaction (moving from it) unless the stream
  // refuses it; `write` says whether the caller must start a write.
  absl::Status Enqueue(QueuedTransaction& transaction, bool* write);
  // Admits waiting requests into free slots and starts the write of the
  // unsent ones unless one is in flight or deferred (see BatchWriter).
  // True: the caller must write writer_.batch() after releasing the lock.
  bool AdmitAndFillLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The call is up and requests wait to be written.
  bool CanWriteLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return started_ && !unsent_.empty() && !read_ended_;
  }
  // The writer's view of unsent_ (called under mu_): the next unsent
  // transaction's data size, skipping those already answered; adding it
  // to the batch, marked sent.
  std::function<std::optional<size_t>()> Peek();
  std::function<void(OutgoingRequests&)> Take();
  // Counts the tag a write or a deferred flush hands over; true for a
  // write.
  bool Counted(BatchWriter<v1::Request>::Next next)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // True (once): the stream is closing and every request is written, so
  // the caller must send WritesDone after releasing the lock (counted).
  bool WritesDoneDueLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Starts the write of writer_.batch() and/or WritesDone, as decided under
  // the lock.
  void StartOps(bool write, bool writes_done);

  const TransactionStreamOptions options_;
  CompletionLoop& loop_;
  grpc::ClientContext context_;
  std::unique_ptr<AsyncClientStream> call_;
  grpc::Status final_status_;  // filled by Finish
  Tag start_tag_{this, Op::kStart};
  Tag read_tag_{this, Op::kRead};
  Tag write_tag_{this, Op::kWrite};
  Tag writes_done_tag_{this, Op::kWritesDone};
  Tag finish_tag_{this, Op::kFinish};
  Tag flush_tag_{this, Op::kFlush};
  IncomingReplies in_;  // owned by the read in flight
  std::atomic<uint64_t> late_replies_{0};
  std::atomic<uint64_t> messages_written_{0};
  std::atomic<uint64_t> messages_read_{0};

  mutable absl::Mutex mu_;
  TransactionTable table_ ABSL_GUARDED_BY(mu_);
  // Submitted, waiting for a free slot.
  std::deque<QueuedTransaction> waiting_ ABSL_GUARDED_BY(mu_);
  // Ids admitted to the table and not yet written.
  std::deque<uint64_t> unsent_ ABSL_GUARDED_BY(mu_);
  bool started_ ABSL_GUARDED_BY(mu_) = false;
  // Under mu_, but for its batch(), the write's in flight.
  BatchWriter<v1::Request> writer_{&flush_tag_, options_.max_batch_bytes};
  bool closing_ ABSL_GUARDED_BY(mu_) = false;
  bool writes_done_sent_ ABSL_GUARDED_BY(mu_) = false;
  bool read_ended_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;  // Finish's tag came back
  bool over_ ABSL_GUARDED_BY(mu_) = false;      // done_promise_ is set
  int pending_ops_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Status status_ ABSL_GUARDED_BY(mu_);
  // Set once the call is over and every tag is back; the destructor waits
  // for it. (A promise, not the mutex: the waiter may free `this` as soon
  // as it is told.)
  std::promise<void> done_promise_;
  std::shared_future<void> done_future_;
};

// Calls `submit` with a completion callback and blocks until that callback
// has run; returns the reply it got. The reply's data goes to `*data`, or,
// when `data` is null, into the reply's own data field (a copy: for control
// paths and tests). For callers on their own threads.
v1::Reply WaitForReply(const std::function<void(TransactionDone)>& submit,
                       Payload* data = nullptr);

// The reply `request` would get if it failed with `status`.
v1::Reply ErrorReply(uint64_t id, const absl::Status& status);

}  // namespace dst

#endif  // DST_SERVICES_COMMON_TRANSPORT_TRANSACTION_STREAM_H_
