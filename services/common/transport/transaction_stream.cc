// Client-side transaction stream: see transaction_stream.h.
#include "services/common/transport/transaction_stream.h"

#include <algorithm>
#include <functional>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"

#include "services/common/base/status.h"

namespace dst {

v1::Reply ErrorReply(uint64_t id, const absl::Status& status) {
  v1::Reply reply;
  reply.set_id(id);
  reply.set_status(static_cast<int32_t>(status.code()));
  reply.set_message(std::string(status.message()));
  return reply;
}

TransactionStream::TransactionStream(const StartFn& start,
                                     const TransactionStreamOptions& options)
    : options_(options),
      loop_(CompletionLoop::Shared()),
      table_(options.max_in_flight),
      done_future_(done_promise_.get_future().share()) {
  call_ = start(&context_, loop_.cq());
  {
    absl::MutexLock lock(&mu_);
    BeginOpLocked();
  }
  call_->StartCall(CompletionLoop::Hand(&start_tag_));
}

TransactionStream::~TransactionStream() {
  Close();
  done_future_.wait();
}

std::shared_ptr<TransactionStream> TransactionStream::Share(
    std::unique_ptr<TransactionStream> stream) {
  return std::shared_ptr<TransactionStream>(
      stream.release(), [](TransactionStream* s) {
        if (s->loop_.OnLoopThread()) {
          std::thread([s] { delete s; }).detach();
        } else {
          delete s;
        }
      });
}

void TransactionStream::Proceed(Op op, bool ok) {
  switch (op) {
    case Op::kStart:
      OnStarted(ok);
      break;
    case Op::kRead:
      OnReadDone(ok);
      break;
    case Op::kWrite:
      OnWriteDone(ok);
      break;
    case Op::kWritesDone:
      break;  // nothing follows it but the end of the call
    case Op::kFinish:
      OnFinished();
      break;
    case Op::kFlush:
      OnFlush();
      break;
  }
  EndOp();
}

void TransactionStream::EndOp() {
  {
    absl::MutexLock lock(&mu_);
    --pending_ops_;
    if (!finished_ || pending_ops_ > 0 || over_) return;
    over_ = true;
  }
  done_promise_.set_value();  // last: `this` may be freed from here on
}

void TransactionStream::Submit(v1::Request request, TransactionDone done,
                               Payload data) {
  if (!request.data().empty()) data = TakeData(&request);
  QueuedTransaction transaction{std::move(request), std::move(done), 0,
                                absl::Now(), std::move(data)};
  bool write = false;
  absl::Status refused = Enqueue(transaction, &write);
  if (!refused.ok()) {
    transaction.done(ErrorReply(transaction.request.id(), refused), Payload());
    return;
  }
  StartOps(write, false);
}

bool TransactionStream::TrySubmit(QueuedTransaction& transaction) {
  bool write = false;
  if (!Enqueue(transaction, &write).ok()) return false;
  StartOps(write, false);
  return true;
}

absl::Status TransactionStream::Enqueue(QueuedTransaction& transaction,
                                        bool* write) {
  absl::MutexLock lock(&mu_);
  if (!status_.ok() && read_ended_ && !finished_ && !closing_) {
    // The server ended the call and Finish is on its way: it says why
    // (RESOURCE_EXHAUSTED, PERMISSION_DENIED...), and OnFinished fails or
    // hands back this transaction with the rest, not with "stream ended".
    waiting_.push_back(std::move(transaction));
    *write = false;
    return absl::OkStatus();
  }
  if (!status_.ok()) return status_;
  if (closing_) return absl::UnavailableError("stream is closing");
  waiting_.push_back(std::move(transaction));
  *write = AdmitAndFillLocked();
  return absl::OkStatus();
}

absl::Time TransactionStream::OldestSent() const {
  absl::MutexLock lock(&mu_);
  absl::Time oldest = absl::InfiniteFuture();
  // Slots are few (max_in_flight); this runs on a slow timer, not per I/O.
  table_.ForEach([&](const Transaction& t) {
    if (t.sends > 0 && t.sent < oldest) oldest = t.sent;
  });
  return oldest;
}

v1::Reply WaitForReply(const std::function<void(TransactionDone)>& submit,
                       Payload* data) {
  // The reply is handed over on this thread's stack. Not a std::promise:
  // its set_value runs std::call_once, whose glibc implementation makes a
  // futex system call every time, on top of the wake-up, and its shared
  // state is a heap allocation; this is once per NBD request on nbdkit's
  // threads. A notified Notification may be destroyed by its waiter at
  // once, while Notify returns.
  v1::Reply reply;
  Payload reply_data;
  absl::Notification replied;
  submit([&](v1::Reply&& r, Payload&& d) {
    reply = std::move(r);
    reply_data = std::move(d);
    replied.Notify();
  });
  replied.WaitForNotification();
  if (data != nullptr) {
    *data = std::move(reply_data);
  } else if (!reply_data.empty()) {
    reply.set_data(reply_data.ToString());
  }
  return reply;
}

std::unique_ptr<AsyncClientStream> PrepareTransactionStream(
    grpc::ChannelInterface* channel, const char* method,
    grpc::ClientContext* context, grpc::CompletionQueue* cq) {
  // What the generated PrepareAsyncStream does, with dst's batch types.
  return std::unique_ptr<AsyncClientStream>(
      grpc::internal::ClientAsyncReaderWriterFactory<OutgoingRequests,
                                                     IncomingReplies>::
          Create(channel, cq,
                 grpc::internal::RpcMethod(
                     method, grpc::internal::RpcMethod::BIDI_STREAMING),
                 context, /*start=*/false, /*tag=*/nullptr));
}

v1::Reply TransactionStream::Call(v1::Request request, Payload data,
                                  Payload* reply_data) {
  return WaitForReply(
      [&](TransactionDone done) {
        Submit(std::move(request), std::move(done), std::move(data));
      },
      reply_data);
}

bool TransactionStream::AdmitAndFillLocked() {
  while (!waiting_.empty()) {
    Transaction* transaction = table_.Allocate();
    if (transaction == nullptr) break;
    QueuedTransaction& next = waiting_.front();
    transaction->request = std::move(next.request);
    transaction->done = std::move(next.done);
    transaction->sends = next.sends;
    transaction->submitted = next.submitted;
    transaction->data = std::move(next.data);
    transaction->request.set_id(transaction->id);
    waiting_.pop_front();
    unsent_.push_back(transaction->id);
  }
  return Counted(writer_.Request(CanWriteLocked(), Peek(), Take()));
}

std::function<std::optional<size_t>()> TransactionStream::Peek() {
  return [this]() -> std::optional<size_t> {
    while (!unsent_.empty()) {
      const Transaction* transaction = table_.Find(unsent_.front());
      if (transaction != nullptr) return transaction->data.size();
      unsent_.pop_front();  // completed before it was written
    }
    return std::nullopt;
  };
}

std::function<void(OutgoingRequests&)> TransactionStream::Take() {
  // The clock is read once per batch, at its first item.
  return [this, now = absl::InfinitePast()](OutgoingRequests& batch) mutable {
    if (now == absl::InfinitePast()) now = absl::Now();
    Transaction* transaction = table_.Find(unsent_.front());
    // The transaction keeps its request and data until the reply comes
    // (for a resend); the write shares the data.
    batch.Add(transaction->request, transaction->data);
    transaction->sent = now;
    ++transaction->sends;
    unsent_.pop_front();
  };
}

bool TransactionStream::Counted(BatchWriter<v1::Request>::Next next) {
  if (next != BatchWriter<v1::Request>::Next::kNothing) BeginOpLocked();
  return next == BatchWriter<v1::Request>::Next::kWrite;
}

void TransactionStream::OnFlush() {
  bool write;
  bool writes_done;
  {
    absl::MutexLock lock(&mu_);
    write = Counted(writer_.OnFlush(CanWriteLocked(), Peek(), Take()));
    writes_done = WritesDoneDueLocked();
  }
  StartOps(write, writes_done);
}

bool TransactionStream::WritesDoneDueLocked() {
  if (!closing_ || !started_ || writer_.writing() || !unsent_.empty() ||
      writes_done_sent_ || read_ended_) {
    return false;
  }
  writes_done_sent_ = true;
  BeginOpLocked();
  return true;
}

void TransactionStream::StartOps(bool write, bool writes_done) {
  if (write) {
    messages_written_.fetch_add(1, std::memory_order_relaxed);
    call_->Write(writer_.batch(), CompletionLoop::Hand(&write_tag_));
  }
  if (writes_done) {
    call_->WritesDone(CompletionLoop::Hand(&writes_done_tag_));
  }
}

void TransactionStream::OnStarted(bool ok) {
  bool write = false;
  bool writes_done = false;
  {
    absl::MutexLock lock(&mu_);
    BeginOpLocked();  // the first read, or the Finish that says why not
    if (!ok) {
      read_ended_ = true;  // the call never started
    } else {
      started_ = true;
      write = AdmitAndFillLocked();
      // A Close() before the start waits for this.
      writes_done = WritesDoneDueLocked();
    }
  }
  if (!ok) {
    call_->Finish(&final_status_, CompletionLoop::Hand(&finish_tag_));
    return;
  }
  call_->Read(&in_, CompletionLoop::Hand(&read_tag_));
  StartOps(write, writes_done);
}

void TransactionStream::OnWriteDone(bool ok) {
  bool write = false;
  bool writes_done = false;
  {
    absl::MutexLock lock(&mu_);
    writer_.WriteDone();
    // !ok: the stream is broken; the read side ends too and OnFinished
    // fails what is left.
    if (ok) {
      write = AdmitAndFillLocked();
      writes_done = WritesDoneDueLocked();
    }
  }
  StartOps(write, writes_done);
}

void TransactionStream::OnReadDone(bool ok) {
  if (!ok) {
    // No more replies: the call is over. Finish says how; no write may
    // start from now on.
    {
      absl::MutexLock lock(&mu_);
      read_ended_ = true;
      if (status_.ok()) status_ = absl::UnavailableError("stream ended");
      BeginOpLocked();
    }
    call_->Finish(&final_status_, CompletionLoop::Hand(&finish_tag_));
    return;
  }
  messages_read_.fetch_add(1, std::memory_order_relaxed);
  struct Completed {
    TransactionDone done;
    v1::Reply reply;
    Payload data;
  };
  std::vector<Completed> completed;
  completed.reserve(in_.size());
  bool write;
  {
    absl::MutexLock lock(&mu_);
    for (size_t i = 0; i < in_.size(); ++i) {
      v1::Reply& reply = in_.item(i);
      Transaction* transaction = table_.Find(reply.id());
      if (transaction == nullptr) {
        late_replies_.fetch_add(1);
        continue;
      }
      completed.push_back({std::move(transaction->done), std::move(reply),
                           std::move(in_.data(i))});
      table_.Release(transaction);
    }
    write = AdmitAndFillLocked();
    BeginOpLocked();  // the next read
  }
  in_.Clear();
  call_->Read(&in_, CompletionLoop::Hand(&read_tag_));
  StartOps(write, false);
  for (Completed& c : completed) c.done(std::move(c.reply), std::move(c.data));
}

void TransactionStream::OnFinished() {
  const grpc::Status& status = final_status_;
  std::vector<QueuedTransaction> unfinished;
  absl::Status why;
  {
    absl::MutexLock lock(&mu_);
    finished_ = true;
    read_ended_ = true;
    if (!status.ok()) {
      status_ = FromGrpcStatus(status);
    } else if (status_.ok() || closing_) {
      status_ = absl::UnavailableError(closing_ ? "stream closed"
                                                : "stream ended by the server");
    }
    why = status_;
    std::vector<Transaction*> in_table;
    table_.ForEach([&](Transaction& t) { in_table.push_back(&t); });
    // Oldest first: ids grow with submission order.
    std::sort(in_table.begin(), in_table.end(),
              [](const Transaction* a, const Transaction* b) {
                return a->id < b->id;
              });
    for (Transaction* t : in_table) {
      // The data goes with it, shared still: the next stream sends the
      // same bytes.
      unfinished.push_back(QueuedTransaction{std::move(t->request),
                                             std::move(t->done), t->sends,
                                             t->submitted, std::move(t->data)});
      table_.Release(t);
    }
    for (QueuedTransaction& waiting : waiting_)
      unfinished.push_back(std::move(waiting));
    waiting_.clear();
    unsent_.clear();
  }
  if (options_.on_orphans && !unfinished.empty()) {
    options_.on_orphans(std::move(unfinished));
  } else {
    absl::Status failure(why.code(),
                         absl::StrCat("transaction failed: ", why.message()));
    for (QueuedTransaction& t : unfinished) {
      t.done(ErrorReply(t.request.id(), failure), Payload());
    }
  }
}

void TransactionStream::Close(absl::Duration timeout) {
  bool writes_done = false;
  {
    absl::MutexLock lock(&mu_);
    if (!closing_) {
      closing_ = true;
      writes_done = WritesDoneDueLocked();
    }
  }
  StartOps(false, writes_done);
  if (done_future_.wait_for(absl::ToChronoSeconds(timeout)) !=
      std::future_status::ready) {
    context_.TryCancel();
  }
}

absl::Status TransactionStream::status() const {
  absl::MutexLock lock(&mu_);
  return status_;
}

size_t TransactionStream::in_flight() const {
  absl::MutexLock lock(&mu_);
  return table_.in_use() + waiting_.size();
}

}  // namespace dst
