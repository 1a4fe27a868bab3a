// Server-side transaction stream reactor: see stream_reactor.h.
#include "services/common/stream_reactor.h"

#include <utility>

#include "services/common/tsan.h"

namespace dst {

class TransactionStreamReactor : public ServerStreamReactor {
 public:
  TransactionStreamReactor(std::unique_ptr<StreamHandler> handler,
                           const StreamOptions& options,
                           StreamRegistry* registry)
      : handler_(std::move(handler)), options_(options), registry_(registry) {
    if (options_.max_in_flight < 1) options_.max_in_flight = 1;
    reading_ = true;
    DST_TSAN_BEFORE_GRPC(this);
    StartRead(&in_);
  }

  void Drain() {
    bool finish;
    {
      absl::MutexLock lock(&mu_);
      draining_ = true;
      finish = ShouldFinishLocked();
    }
    if (finish) DoFinish();
  }

  // The analyzer cannot see that refs_ (taken below) keeps `this` alive
  // through Complete() calls, and reports a use after free.
  // NOLINTBEGIN(clang-analyzer-cplusplus.NewDelete)
  void OnReadDone(bool ok) override {
    DST_TSAN_AFTER_GRPC(this);
    if (!ok) {
      bool finish;
      {
        absl::MutexLock lock(&mu_);
        reading_ = false;
        reads_done_ = true;
        finish = ShouldFinishLocked();
      }
      if (finish) DoFinish();
      return;
    }
    bool draining;
    {
      // reading_ stays true until the end of this reaction, so completions
      // arriving meanwhile never start a second read. The reference keeps
      // us alive through the loop below even if every request completes
      // at once (gRPC runs OnDone after this reaction, but say so here).
      absl::MutexLock lock(&mu_);
      outstanding_ += in_.requests_size();
      for (const v1::Request& request : in_.requests()) {
        outstanding_bytes_ += Weight(request);
      }
      draining = draining_;
      ++refs_;
    }
    registry_->in_flight_ += in_.requests_size();
    for (v1::Request& request : *in_.mutable_requests()) {
      if (draining) {
        v1::Reply reply;
        reply.set_id(request.id());
        reply.set_status(grpc::StatusCode::UNAVAILABLE);
        reply.set_message("server is shutting down");
        Complete(std::move(reply), Weight(request));
        continue;
      }
      uint64_t id = request.id();
      const int64_t weight = Weight(request);
      handler_->Handle(std::move(request),
                       [this, id, weight](v1::Reply&& reply) {
                         reply.set_id(id);
                         Complete(std::move(reply), weight);
                       });
    }
    in_.Clear();
    bool read;
    {
      absl::MutexLock lock(&mu_);
      read = !draining_ && !finished_ &&
             outstanding_ < options_.max_in_flight &&
             outstanding_bytes_ < options_.max_in_flight_bytes;
      reading_ = read;
    }
    if (read) {
      DST_TSAN_BEFORE_GRPC(this);
      StartRead(&in_);
    }
    Unref();
  }
  // NOLINTEND(clang-analyzer-cplusplus.NewDelete)

  void OnWriteDone(bool ok) override {
    DST_TSAN_AFTER_GRPC(this);
    bool write;
    bool finish;
    {
      absl::MutexLock lock(&mu_);
      writing_ = false;
      if (!ok) {
        write_failed_ = true;  // the client is gone; drop what is queued
        queue_.clear();
      }
      write = FillBatchLocked();
      finish = !write && ShouldFinishLocked();
    }
    if (write) {
      DST_TSAN_BEFORE_GRPC(this);
      StartWrite(&out_);
    }
    if (finish) DoFinish();
  }

  void OnCancel() override {
    DST_TSAN_AFTER_GRPC(this);
    bool finish;
    {
      absl::MutexLock lock(&mu_);
      queue_.clear();
      finish = !finished_;
      finished_ = true;
    }
    if (finish) {
      DST_TSAN_BEFORE_GRPC(this);
      Finish(grpc::Status::CANCELLED);
    }
  }

  void OnDone() override {
    DST_TSAN_AFTER_GRPC(this);
    // Leave the registry first: DrainAll then either holds a reference
    // already (and destruction waits for its Unref) or cannot find us.
    registry_->Remove(this);
    bool destroy;
    {
      absl::MutexLock lock(&mu_);
      done_ = true;
      destroy = CanDestroyLocked();
    }
    if (destroy) Destroy();
  }

  // Keeps the reactor alive while the registry drains it outside its lock.
  void Ref() {
    absl::MutexLock lock(&mu_);
    ++refs_;
  }
  void Unref() {
    bool destroy;
    {
      absl::MutexLock lock(&mu_);
      --refs_;
      destroy = CanDestroyLocked();
    }
    if (destroy) Destroy();
  }

 private:
  // What a request holds in memory until answered: its data, or the data
  // its reply will carry.
  static int64_t Weight(const v1::Request& request) {
    return static_cast<int64_t>(request.data().size()) +
           (request.op() == v1::OP_READ ? request.length() : 0);
  }

  void Complete(v1::Reply&& reply, int64_t weight) {
    registry_->in_flight_ -= 1;
    bool read = false;
    bool write = false;
    bool finish = false;
    bool destroy = false;
    {
      absl::MutexLock lock(&mu_);
      --outstanding_;
      outstanding_bytes_ -= weight;
      if (done_) {
        destroy = CanDestroyLocked();
      } else {
        if (!finished_ && !write_failed_) queue_.push_back(std::move(reply));
        if (!reading_ && !reads_done_ && !draining_ && !finished_ &&
            outstanding_ <= options_.max_in_flight / 2 &&
            outstanding_bytes_ <= options_.max_in_flight_bytes / 2) {
          reading_ = read = true;
        }
        write = FillBatchLocked();
        finish = !write && ShouldFinishLocked();
      }
    }
    if (destroy) {
      Destroy();
      return;
    }
    if (read) {
      DST_TSAN_BEFORE_GRPC(this);
      StartRead(&in_);
    }
    if (write) {
      DST_TSAN_BEFORE_GRPC(this);
      StartWrite(&out_);
    }
    if (finish) DoFinish();
  }

  // Moves queued replies into out_ if no write is in flight. True: the
  // caller must StartWrite(&out_) (after releasing the lock).
  bool FillBatchLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (writing_ || queue_.empty() || finished_) return false;
    out_.Clear();
    size_t bytes = 0;
    while (!queue_.empty() &&
           (out_.replies_size() == 0 ||
            bytes + queue_.front().data().size() <= options_.max_batch_bytes)) {
      bytes += queue_.front().data().size() + 32;
      *out_.add_replies() = std::move(queue_.front());
      queue_.pop_front();
    }
    writing_ = true;
    return true;
  }

  bool ShouldFinishLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (finished_ || writing_ || !queue_.empty() || outstanding_ > 0) {
      return false;
    }
    if (!reads_done_ && !draining_ && !write_failed_) return false;
    finished_ = true;
    return true;
  }

  void DoFinish() {
    bool draining;
    {
      absl::MutexLock lock(&mu_);
      draining = draining_ && !reads_done_;
    }
    DST_TSAN_BEFORE_GRPC(this);
    Finish(draining ? grpc::Status(grpc::StatusCode::UNAVAILABLE,
                                   "server is shutting down")
                    : grpc::Status::OK);
  }

  bool CanDestroyLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return done_ && outstanding_ == 0 && refs_ == 0;
  }

  // The registry counts the reactor until it is gone (its handler with it),
  // so WaitEmpty() returns only when nothing of a stream is left.
  void Destroy() {
    StreamRegistry* registry = registry_;
    delete this;
    registry->Deleted();
  }

  std::unique_ptr<StreamHandler> handler_;
  StreamOptions options_;
  StreamRegistry* const registry_;
  v1::RequestBatch in_;  // owned by the read in flight
  v1::ReplyBatch out_;   // owned by the write in flight

  absl::Mutex mu_;
  std::deque<v1::Reply> queue_ ABSL_GUARDED_BY(mu_);
  int outstanding_ ABSL_GUARDED_BY(mu_) = 0;  // handed to handler, unanswered
  int64_t outstanding_bytes_ ABSL_GUARDED_BY(mu_) = 0;  // their Weight()s
  bool reading_ ABSL_GUARDED_BY(mu_) = false;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool reads_done_ ABSL_GUARDED_BY(mu_) = false;
  bool write_failed_ ABSL_GUARDED_BY(mu_) = false;
  bool draining_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  int refs_ ABSL_GUARDED_BY(mu_) = 0;  // DrainAll's and OnReadDone's
};

namespace {

class RejectingReactor : public ServerStreamReactor {
 public:
  explicit RejectingReactor(const grpc::Status& status) { Finish(status); }
  void OnDone() override { delete this; }
};

}  // namespace

ServerStreamReactor* RejectStream(const grpc::Status& status) {
  return new RejectingReactor(status);
}

ServerStreamReactor* ServeStream(std::unique_ptr<StreamHandler> handler,
                                 const StreamOptions& options,
                                 StreamRegistry* registry) {
  auto* reactor =
      new TransactionStreamReactor(std::move(handler), options, registry);
  if (!registry->Add(reactor)) {
    // Registered before any read can complete, so a drain cannot miss it.
    reactor->Drain();
  }
  return reactor;
}

std::string ClientMetadata(const grpc::CallbackServerContext* context,
                           const char* key) {
  const auto& metadata = context->client_metadata();
  auto it = metadata.find(key);
  if (it == metadata.end()) return "";
  return std::string(it->second.data(), it->second.size());
}

bool StreamRegistry::Add(TransactionStreamReactor* reactor) {
  absl::MutexLock lock(&mu_);
  live_.insert(reactor);
  ++existing_;
  return !draining_;
}

void StreamRegistry::Deleted() {
  absl::MutexLock lock(&mu_);
  --existing_;
}

void StreamRegistry::Remove(TransactionStreamReactor* reactor) {
  absl::MutexLock lock(&mu_);
  live_.erase(reactor);
}

void StreamRegistry::DrainAll() {
  std::set<TransactionStreamReactor*> live;
  {
    absl::MutexLock lock(&mu_);
    draining_ = true;
    live = live_;
    // A reactor leaves live_ before it is deleted, so each one here is
    // alive; the reference keeps it so once the lock is released.
    for (TransactionStreamReactor* reactor : live) reactor->Ref();
  }
  for (TransactionStreamReactor* reactor : live) {
    reactor->Drain();
    reactor->Unref();
  }
}

bool StreamRegistry::WaitEmpty(absl::Time deadline) {
  absl::MutexLock lock(&mu_);
  auto empty = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return live_.empty() && existing_ == 0;
  };
  return mu_.AwaitWithDeadline(absl::Condition(&empty), deadline);
}

}  // namespace dst
