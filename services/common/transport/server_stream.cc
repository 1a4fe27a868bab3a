// Server-side transaction streams: see server_stream.h.
#include "services/common/transport/server_stream.h"

#include <cstdlib>
#include <deque>
#include <functional>
#include <optional>
#include <string>
#include <utility>

#include <google/protobuf/descriptor.h>

#include "absl/strings/string_view.h"

#include "services/common/base/limits.h"
#include "services/common/base/log.h"
#include "services/common/rpc/completion_loop.h"
#include "services/common/transport/batch_writer.h"

namespace dst {

// One call of a stream method, from its request to the server until every
// operation on it has come back; then it deletes itself.
class ServerStream {
 public:
  explicit ServerStream(StreamAcceptor* acceptor)
      : acceptor_(acceptor), stream_(&context_) {}

  // Asks the server for the next call of the method.
  void Request() {
    {
      absl::MutexLock lock(&mu_);
      ops_ = 1;   // the done tag, which comes once a call that began is over
      refs_ = 1;  // OnNewCall's, so that nothing deletes us under it
    }
    context_.AsyncNotifyWhenDone(
        CompletionLoop::Hand(&done_tag_));  // must precede the request
    acceptor_->request_(&context_, &stream_, acceptor_->cq_, acceptor_->cq_,
                        CompletionLoop::Hand(&new_call_tag_));
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

  // Keeps the stream alive while the registry drains it outside its lock.
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
  enum class Op { kNewCall, kRead, kWrite, kFinish, kDone, kFlush };
  using Tag = CompletionLoop::OpTag<ServerStream, Op>;
  friend Tag;

  void Proceed(Op op, bool ok) {
    switch (op) {
      case Op::kNewCall:
        OnNewCall(ok);
        return;  // counted apart: no operation was open before it
      case Op::kRead:
        OnReadDone(ok);
        break;
      case Op::kWrite:
        OnWriteDone(ok);
        break;
      case Op::kFinish:
        break;
      case Op::kDone:
        OnDone();
        break;
      case Op::kFlush:
        OnFlush();
        break;
    }
    bool destroy;
    {
      absl::MutexLock lock(&mu_);
      --ops_;
      destroy = CanDestroyLocked();
    }
    if (destroy) Destroy();
  }

  // Runs on the server's loop, as does everything else of the call; the
  // reference taken in Request() and `admitted_` (may OnDone leave the
  // registry yet?) would also hold were the done tag to come on another
  // thread.
  void OnNewCall(bool ok) {
    if (!ok) {  // the server is shutting down; no call began
      delete this;
      return;
    }
    // The next call may come while this one runs.
    acceptor_->RequestNext();
    StreamStart start = acceptor_->admit_(&context_);
    if (!start.refused.ok()) {
      {
        absl::MutexLock lock(&mu_);
        admitted_ = true;
        finished_ = true;
        ++ops_;
      }
      stream_.Finish(start.refused, CompletionLoop::Hand(&finish_tag_));
      Unref();
      return;
    }
    handler_ = std::move(start.handler);
    options_ = start.options;
    writer_.set_max_batch_bytes(options_.max_batch_bytes);
    if (options_.max_in_flight < 1) options_.max_in_flight = 1;
    const bool accepted = acceptor_->registry_->Add(this);
    bool over;
    bool read;
    {
      absl::MutexLock lock(&mu_);
      admitted_ = true;
      registered_ = true;
      over = done_;  // OnDone came first and left the registry to us
      if (!accepted) draining_ = true;  // the service is draining
      read = reading_ = !draining_ && !done_;
      if (read) ++ops_;
    }
    if (over) acceptor_->registry_->Remove(this);
    if (read) {
      stream_.Read(&in_, CompletionLoop::Hand(&read_tag_));
    } else if (!over) {
      Drain();  // refused at once with UNAVAILABLE
    }
    Unref();
  }

  // The analyzer cannot see that refs_ (taken below) keeps `this` alive
  // through Complete() calls, and reports a use after free.
  // NOLINTBEGIN(clang-analyzer-cplusplus.NewDelete)
  void OnReadDone(bool ok) {
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
      // reading_ stays true until the end of this function, so completions
      // arriving meanwhile never start a second read. The reference keeps
      // us alive through the loop below even if every request completes
      // at once.
      absl::MutexLock lock(&mu_);
      outstanding_ += static_cast<int>(in_.size());
      for (size_t i = 0; i < in_.size(); ++i) {
        outstanding_bytes_ += Weight(in_.item(i), in_.data(i));
      }
      draining = draining_;
      ++refs_;
    }
    acceptor_->registry_->in_flight_ += static_cast<int64_t>(in_.size());
    for (size_t i = 0; i < in_.size(); ++i) {
      v1::Request& request = in_.item(i);
      const int64_t weight = Weight(request, in_.data(i));
      if (draining) {
        v1::Reply reply;
        reply.set_id(request.id());
        reply.set_status(grpc::StatusCode::UNAVAILABLE);
        reply.set_message("server is shutting down");
        Complete(std::move(reply), Payload(), weight);
        continue;
      }
      uint64_t id = request.id();
      handler_->Handle(std::move(request), std::move(in_.data(i)),
                       [this, id, weight](v1::Reply&& reply, Payload&& data) {
                         reply.set_id(id);
                         Complete(std::move(reply), std::move(data), weight);
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
      if (read) ++ops_;
    }
    if (read) {
      stream_.Read(&in_, CompletionLoop::Hand(&read_tag_));
    }
    Unref();
  }
  // NOLINTEND(clang-analyzer-cplusplus.NewDelete)

  void OnWriteDone(bool ok) {
    bool write;
    bool finish;
    {
      absl::MutexLock lock(&mu_);
      writer_.WriteDone();
      if (!ok) {
        write_failed_ = true;  // the client is gone; drop what is queued
        queue_.clear();
      }
      write = FillBatchLocked();
      finish = !write && ShouldFinishLocked();
    }
    if (write) {
      stream_.Write(writer_.batch(), CompletionLoop::Hand(&write_tag_));
    }
    if (finish) DoFinish();
  }

  // The deferred write: writes the replies queued since it was deferred.
  void OnFlush() {
    bool write;
    bool finish;
    {
      absl::MutexLock lock(&mu_);
      write = Counted(writer_.OnFlush(CanWriteLocked(), Peek(), Take()));
      finish = !write && ShouldFinishLocked();
    }
    if (write) {
      stream_.Write(writer_.batch(), CompletionLoop::Hand(&write_tag_));
    }
    if (finish) DoFinish();
  }

  // The call is over: finished, or cancelled by the client or a deadline.
  void OnDone() {
    // Leave the registry first: DrainAll then either holds a reference
    // already (and destruction waits for its Unref) or cannot find us.
    bool leave;
    {
      absl::MutexLock lock(&mu_);
      done_ = true;
      leave = admitted_ && registered_;
      if (context_.IsCancelled()) {
        queue_.clear();
        finished_ = true;  // no Finish on a cancelled call
      }
    }
    if (leave) acceptor_->registry_->Remove(this);
  }

  // What a request holds in memory until answered: its data, or the data
  // its reply will carry.
  static int64_t Weight(const v1::Request& request, const Payload& data) {
    return static_cast<int64_t>(data.size()) +
           (request.op() == v1::OP_READ ? request.length() : 0);
  }

  void Complete(v1::Reply&& reply, Payload data, int64_t weight) {
    acceptor_->registry_->in_flight_ -= 1;
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
        if (!finished_ && !write_failed_) {
          queue_.push_back({std::move(reply), std::move(data)});
        }
        if (!reading_ && !reads_done_ && !draining_ && !finished_ &&
            outstanding_ <= options_.max_in_flight / 2 &&
            outstanding_bytes_ <= options_.max_in_flight_bytes / 2) {
          reading_ = read = true;
          ++ops_;
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
      stream_.Read(&in_, CompletionLoop::Hand(&read_tag_));
    }
    if (write) {
      stream_.Write(writer_.batch(), CompletionLoop::Hand(&write_tag_));
    }
    if (finish) DoFinish();
  }

  // Starts the write of the queued replies unless one is in flight or
  // deferred (see BatchWriter). True: the caller must write
  // writer_.batch() after releasing the lock.
  bool FillBatchLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return Counted(writer_.Request(CanWriteLocked(), Peek(), Take()));
  }

  // Replies wait and the call can take them.
  bool CanWriteLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return !queue_.empty() && !finished_;
  }

  // The writer's view of queue_ (called under mu_).
  std::function<std::optional<size_t>()> Peek() {
    return [this]() -> std::optional<size_t> {
      if (queue_.empty()) return std::nullopt;
      return queue_.front().data.size();
    };
  }
  std::function<void(OutgoingReplies&)> Take() {
    return [this](OutgoingReplies& batch) {
      batch.Add(std::move(queue_.front().reply),
                std::move(queue_.front().data));
      queue_.pop_front();
    };
  }

  // Counts the tag a write or a deferred flush hands over; true for a
  // write.
  bool Counted(BatchWriter<v1::Reply>::Next next)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (next != BatchWriter<v1::Reply>::Next::kNothing) ++ops_;
    return next == BatchWriter<v1::Reply>::Next::kWrite;
  }

  // True (once) when the caller must DoFinish().
  bool ShouldFinishLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (finished_ || writer_.writing() || !queue_.empty() || outstanding_ > 0) {
      return false;
    }
    if (!reads_done_ && !draining_ && !write_failed_) return false;
    finished_ = true;
    ++ops_;  // the Finish
    return true;
  }

  void DoFinish() {
    bool draining;
    {
      absl::MutexLock lock(&mu_);
      draining = draining_ && !reads_done_;
    }
    stream_.Finish(draining ? grpc::Status(grpc::StatusCode::UNAVAILABLE,
                                           "server is shutting down")
                            : grpc::Status::OK,
                   CompletionLoop::Hand(&finish_tag_));
  }

  bool CanDestroyLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return done_ && ops_ == 0 && outstanding_ == 0 && refs_ == 0;
  }

  // The registry counts the stream until it is gone (its handler with it),
  // so WaitEmpty() returns only when nothing of a stream is left.
  void Destroy() ABSL_NO_THREAD_SAFETY_ANALYSIS {  // the last one here
    StreamRegistry* registry = registered_ ? acceptor_->registry_ : nullptr;
    delete this;
    if (registry != nullptr) registry->Deleted();
  }

  StreamAcceptor* const acceptor_;
  grpc::ServerContext context_;
  AsyncServerStream stream_;
  Tag new_call_tag_{this, Op::kNewCall};
  Tag read_tag_{this, Op::kRead};
  Tag write_tag_{this, Op::kWrite};
  Tag finish_tag_{this, Op::kFinish};
  Tag done_tag_{this, Op::kDone};
  Tag flush_tag_{this, Op::kFlush};
  std::unique_ptr<StreamHandler> handler_;
  StreamOptions options_;
  IncomingRequests in_;  // owned by the read in flight

  struct Answered {
    v1::Reply reply;
    Payload data;
  };
  absl::Mutex mu_;
  std::deque<Answered> queue_ ABSL_GUARDED_BY(mu_);
  // Under mu_, but for its batch(), the write's in flight.
  BatchWriter<v1::Reply> writer_{&flush_tag_, StreamOptions().max_batch_bytes};
  int ops_ ABSL_GUARDED_BY(mu_) = 0;  // operations handed to gRPC, not back
  int outstanding_ ABSL_GUARDED_BY(mu_) = 0;  // handed to handler, unanswered
  int64_t outstanding_bytes_ ABSL_GUARDED_BY(mu_) = 0;  // their Weight()s
  bool reading_ ABSL_GUARDED_BY(mu_) = false;
  bool reads_done_ ABSL_GUARDED_BY(mu_) = false;
  bool write_failed_ ABSL_GUARDED_BY(mu_) = false;
  bool draining_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  bool admitted_ ABSL_GUARDED_BY(mu_) = false;    // OnNewCall decided
  bool registered_ ABSL_GUARDED_BY(mu_) = false;  // Add()ed to the registry
  int refs_ ABSL_GUARDED_BY(mu_) = 0;  // OnNewCall's, DrainAll's, OnReadDone's
};

void StreamAcceptor::Start(const ServerQueue& queue) {
  cq_ = queue.cq;
  RequestNext();
}

void StreamAcceptor::RequestNext() { (new ServerStream(this))->Request(); }

StreamStart RejectStream(const grpc::Status& status) {
  StreamStart start;
  start.refused = status.ok() ? grpc::Status(grpc::StatusCode::INTERNAL,
                                             "stream refused without a reason")
                              : status;
  return start;
}

StreamStart ServeStream(std::unique_ptr<StreamHandler> handler,
                        const StreamOptions& options) {
  StreamStart start;
  start.handler = std::move(handler);
  start.options = options;
  return start;
}

StreamAcceptor::RequestFn StreamAcceptor::RequestStreamFn(
    grpc::Service* service, const char* method) {
  // gRPC numbers a service's methods in their .proto order.
  const absl::string_view name(method);  // "/package.Service/Method"
  const size_t slash = name.rfind('/');
  const google::protobuf::ServiceDescriptor* descriptor =
      google::protobuf::DescriptorPool::generated_pool()->FindServiceByName(
          std::string(name.substr(1, slash - 1)));
  const google::protobuf::MethodDescriptor* found =
      descriptor == nullptr
          ? nullptr
          : descriptor->FindMethodByName(std::string(name.substr(slash + 1)));
  if (found == nullptr || !found->client_streaming() ||
      !found->server_streaming()) {
    DST_LOG(Error, "no bidirectional stream method %s", method);
    std::abort();
  }
  const int index = found->index();
  // RequestAsyncBidiStreaming is protected in grpc::Service, for the
  // generated subclasses: reached through a pointer to it.
  struct Access : grpc::Service {
    using grpc::Service::RequestAsyncBidiStreaming;
  };
  auto request = &Access::RequestAsyncBidiStreaming;
  return [service, index, request](
             grpc::ServerContext* context, AsyncServerStream* stream,
             grpc::CompletionQueue* call_cq,
             grpc::ServerCompletionQueue* notify_cq, void* tag) {
    (service->*request)(index, context, stream, call_cq, notify_cq, tag);
  };
}

std::string ClientMetadata(const grpc::ServerContextBase* context,
                           const char* key) {
  const auto& metadata = context->client_metadata();
  auto it = metadata.find(key);
  if (it == metadata.end()) return "";
  return std::string(it->second.data(), it->second.size());
}

bool StreamRegistry::Add(ServerStream* stream) {
  absl::MutexLock lock(&mu_);
  live_.insert(stream);
  ++existing_;
  return !draining_;
}

void StreamRegistry::Deleted() {
  absl::MutexLock lock(&mu_);
  --existing_;
}

void StreamRegistry::Remove(ServerStream* stream) {
  absl::MutexLock lock(&mu_);
  live_.erase(stream);
}

void StreamRegistry::DrainAll() {
  std::set<ServerStream*> live;
  {
    absl::MutexLock lock(&mu_);
    draining_ = true;
    live = live_;
    // A stream leaves live_ before it is deleted, so each one here is
    // alive; the reference keeps it so once the lock is released.
    for (ServerStream* stream : live) stream->Ref();
  }
  for (ServerStream* stream : live) {
    stream->Drain();
    stream->Unref();
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
