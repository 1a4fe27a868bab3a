// Serving gRPC methods with the async API on a server's own completion
// queue, drained by one thread (a CompletionLoop), with no gRPC callback or
// sync method anywhere in the server.
//
// Why: gRPC 1.51 polls every descriptor from whichever of its threads is
// polling (epoll1), and a callback method brings two "nexting" threads, a
// sync one a polling thread pool. With several pollers each request's
// events are handed from thread to thread; with the loop as the only
// poller they are handled where they arrive. See
// bench/results/2026-11-25-server-loop.md for the figures.
//
// A service derives from the generated AsyncService (every method async)
// and from AsyncService below; StartServer calls StartServing once the
// server runs, where the service asks for the first call of each method:
// ServeUnary for unary methods, a StreamAcceptor (server_stream.h) for
// the transaction streams.
#ifndef DST_SERVICES_COMMON_RPC_ASYNC_SERVICE_H_
#define DST_SERVICES_COMMON_RPC_ASYNC_SERVICE_H_

#include <functional>
#include <memory>
#include <thread>
#include <utility>

#include <grpcpp/grpcpp.h>

#include "services/common/base/thread_pool.h"
#include "services/common/rpc/completion_loop.h"

namespace dst {

// Where a server's async methods run.
struct ServerQueue {
  // New calls and every operation on them complete here; its loop's thread
  // runs the tags, so nothing there may block.
  grpc::ServerCompletionQueue* cq = nullptr;
  // Unary handlers run here: they may block (disk, locks, waiting for a
  // volume).
  ThreadPool* unary_pool = nullptr;
};

class AsyncService {
 public:
  virtual ~AsyncService() = default;
  // Asks for the first call of every method. Called once, by StartServer,
  // after the server started.
  virtual void StartServing(const ServerQueue& queue) = 0;
};

template <class Request, class Reply>
using UnaryRequestFn =
    std::function<void(grpc::ServerContext* context, Request* request,
                       grpc::ServerAsyncResponseWriter<Reply>* responder,
                       grpc::CompletionQueue* call_cq,
                       grpc::ServerCompletionQueue* notify_cq, void* tag)>;

// Answers one call: fills `reply` and returns the status it ends with.
template <class Request, class Reply>
using UnaryHandlerFn = std::function<grpc::Status(
    grpc::ServerContext* context, const Request& request, Reply* reply)>;

enum class UnaryRunsOn {
  kPool,       // the server's unary pool (most calls: short)
  kOwnThread,  // a thread of its own (calls that take minutes: verify)
};

namespace internal {

// One call of a unary method: requested from the server, answered by the
// handler off the loop, finished, then deleted.
template <class Request, class Reply>
class UnaryCall final : public CompletionLoop::Tag {
 public:
  struct Method {
    ServerQueue queue;
    UnaryRequestFn<Request, Reply> request;
    UnaryHandlerFn<Request, Reply> handle;
    UnaryRunsOn runs_on;
  };

  // Asks the server for the next call of `method`.
  static void Await(std::shared_ptr<const Method> method) {
    auto* call = new UnaryCall(std::move(method));
    const Method& m = *call->method_;
    m.request(&call->context_, &call->request_, &call->responder_, m.queue.cq,
              m.queue.cq, CompletionLoop::Hand(call));
  }

  void Proceed(bool ok) override {
    // Not ok before a call arrived: the server is shutting down. After
    // the answer: the Finish is done (sent, or the client is gone).
    if (!ok || answered_) {
      delete this;
      return;
    }
    answered_ = true;
    Await(method_);  // the next call may come while this one runs
    auto answer = [this] {
      const grpc::Status status = method_->handle(&context_, request_, &reply_);
      if (status.ok()) {
        responder_.Finish(reply_, status, CompletionLoop::Hand(this));
      } else {
        responder_.FinishWithError(status, CompletionLoop::Hand(this));
      }
    };
    if (method_->runs_on == UnaryRunsOn::kOwnThread) {
      std::thread(std::move(answer)).detach();
    } else {
      method_->queue.unary_pool->Schedule(std::move(answer));
    }
  }

 private:
  explicit UnaryCall(std::shared_ptr<const Method> method)
      : method_(std::move(method)) {}
  ~UnaryCall() = default;

  const std::shared_ptr<const Method> method_;
  grpc::ServerContext context_;
  Request request_;
  Reply reply_;
  grpc::ServerAsyncResponseWriter<Reply> responder_{&context_};
  bool answered_ = false;  // only the loop thread reads or writes it
};

}  // namespace internal

// Serves a unary method of `service`: `request` is the generated
// RequestX of the method (from the service's AsyncService base), `handle`
// the member that answers each call.
template <class Base, class Service, class Request, class Reply>
void ServeUnary(const ServerQueue& queue, Service* service,
                void (Base::*request)(grpc::ServerContext*, Request*,
                                      grpc::ServerAsyncResponseWriter<Reply>*,
                                      grpc::CompletionQueue*,
                                      grpc::ServerCompletionQueue*, void*),
                grpc::Status (Service::*handle)(grpc::ServerContext*,
                                                const Request&, Reply*),
                UnaryRunsOn runs_on = UnaryRunsOn::kPool) {
  using Call = internal::UnaryCall<Request, Reply>;
  Call::Await(
      std::make_shared<const typename Call::Method>(typename Call::Method{
          queue,
          [service, request](grpc::ServerContext* context, Request* message,
                             grpc::ServerAsyncResponseWriter<Reply>* responder,
                             grpc::CompletionQueue* call_cq,
                             grpc::ServerCompletionQueue* notify_cq,
                             void* tag) {
            (service->*request)(context, message, responder, call_cq, notify_cq,
                                tag);
          },
          [service, handle](grpc::ServerContext* context,
                            const Request& message, Reply* reply) {
            return (service->*handle)(context, message, reply);
          },
          runs_on}));
}

}  // namespace dst

#endif  // DST_SERVICES_COMMON_RPC_ASYNC_SERVICE_H_
