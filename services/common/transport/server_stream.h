// The server side of a transaction stream (Exporter.Stream, Gateway.Io):
// one ServerStream per call, its operations completing on the server's
// loop (see async_service.h for why not the callback API).
//
// Requests are read in batches and handed to a StreamHandler; the handler
// completes each one (from any thread) and the replies are coalesced into
// batches and written, one write in flight at a time; a reply completed on
// the loop thread is written once the loop is idle (CompletionLoop::Defer),
// with every other reply completed meanwhile. At `max_in_flight`
// unanswered requests the stream stops reading, so HTTP/2 flow control
// pushes back on the client; it reads again at half that (hysteresis).
// Drain() stops reading and finishes the stream once every request read so
// far is answered.
//
// A service (an AsyncService) owns a StreamAcceptor for its stream method
// and starts it in StartServing. The acceptor asks the service what to do
// with each new call (Admit: serve it with a handler, or refuse it with a
// status).
//
// Thread-safe. A StreamRegistry tracks live streams so a service can drain
// them all at shutdown; it must outlive them (StreamRegistry::WaitEmpty).
#ifndef DST_SERVICES_COMMON_TRANSPORT_SERVER_STREAM_H_
#define DST_SERVICES_COMMON_TRANSPORT_SERVER_STREAM_H_

#include <atomic>
#include <cstddef>
#include <functional>
#include <memory>
#include <set>
#include <string>

#include <grpcpp/grpcpp.h>
#include <grpcpp/impl/codegen/proto_utils.h>
#include <grpcpp/support/async_stream.h>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

#include "dst/v1/exporter.pb.h"
#include "services/common/rpc/async_service.h"
#include "services/common/transport/incoming_batch.h"
#include "services/common/transport/outgoing_batch.h"
#include "services/common/transport/payload.h"

namespace dst {

// Handles the requests of one stream. Owned by the stream.
class StreamHandler {
 public:
  // The reply, and its data (a read's bytes; the reply's own data field
  // empty).
  using Done = std::function<void(v1::Reply&&, Payload&&)>;
  virtual ~StreamHandler() = default;
  // Handles `request` (its data field empty) with its `data`; must call
  // `done` exactly once, from any thread, possibly before returning. Must
  // not block for long (no disk I/O): it runs on the loop thread.
  virtual void Handle(v1::Request&& request, Payload data, Done done) = 0;
};

struct StreamOptions {
  // Requests read and not yet answered before reading pauses. Default 64.
  int max_in_flight = 64;
  // Payload bytes (write data, read lengths) read and not yet answered
  // before reading pauses; the per-client memory bound. Default 256 MiB.
  int64_t max_in_flight_bytes = int64_t{256} << 20;
  // Replies are coalesced into one message up to this many bytes.
  size_t max_batch_bytes = 4u << 20;
};

// What a service decides for a new stream.
struct StreamStart {
  grpc::Status refused;  // not OK: the stream ends at once with it
  std::unique_ptr<StreamHandler> handler;  // otherwise: serves the stream
  StreamOptions options;
};
StreamStart RejectStream(const grpc::Status& status);
StreamStart ServeStream(std::unique_ptr<StreamHandler> handler,
                        const StreamOptions& options);

class ServerStream;

// The live streams of a service, for draining at shutdown.
class StreamRegistry {
 public:
  // Drains every live stream and refuses new ones.
  void DrainAll();
  // True once every stream has ended and is deleted (its handler with it),
  // false at the deadline.
  bool WaitEmpty(absl::Time deadline);
  // Requests read from all streams and not yet answered.
  int64_t in_flight() const { return in_flight_.load(); }

 private:
  friend class ServerStream;
  bool Add(ServerStream* stream);  // false while draining
  void Remove(ServerStream* stream);
  void Deleted();  // a stream Add()ed is deleted

  mutable absl::Mutex mu_;
  std::set<ServerStream*> live_ ABSL_GUARDED_BY(mu_);
  bool draining_ ABSL_GUARDED_BY(mu_) = false;
  int existing_ ABSL_GUARDED_BY(mu_) = 0;  // Add()ed and not yet deleted
  std::atomic<int64_t> in_flight_{0};
};

// Writes ReplyBatch messages (as OutgoingReplies), reads RequestBatch
// messages (as IncomingRequests).
using AsyncServerStream =
    grpc::ServerAsyncReaderWriter<OutgoingReplies, IncomingRequests>;

// Accepts the calls of one stream method: keeps one call requested from
// the server at a time and runs each call that arrives as a ServerStream.
class StreamAcceptor {
 public:
  // Requests the next call: e.g. `service->RequestStream(context, stream,
  // call_cq, notify_cq, tag)`.
  using RequestFn = std::function<void(
      grpc::ServerContext* context, AsyncServerStream* stream,
      grpc::CompletionQueue* call_cq, grpc::ServerCompletionQueue* notify_cq,
      void* tag)>;
  // Decides what to do with a call, from its metadata and peer.
  using AdmitFn = std::function<StreamStart(grpc::ServerContext* context)>;

  StreamAcceptor(RequestFn request, AdmitFn admit, StreamRegistry* registry)
      : request_(std::move(request)),
        admit_(std::move(admit)),
        registry_(registry) {}
  // The acceptor of `service`'s transaction stream `method`
  // (kExporterStreamMethod or kGatewayIoMethod), with dst's stream type
  // instead of the generated RequestX's; `admit` is the member deciding
  // each call.
  template <class Service>
  StreamAcceptor(Service* service, const char* method,
                 StreamStart (Service::*admit)(grpc::ServerContext*),
                 StreamRegistry* registry)
      : StreamAcceptor(
            RequestStreamFn(service, method),
            [service, admit](grpc::ServerContext* context) {
              return (service->*admit)(context);
            },
            registry) {}

  // Starts accepting on the server's queue. Once.
  void Start(const ServerQueue& queue);

 private:
  friend class ServerStream;
  // What the generated RequestX of `method` does, for AsyncServerStream.
  static RequestFn RequestStreamFn(grpc::Service* service, const char* method);
  void RequestNext();

  const RequestFn request_;
  const AdmitFn admit_;
  StreamRegistry* const registry_;
  grpc::ServerCompletionQueue* cq_ = nullptr;
};

// Reads the value of metadata `key` sent by the client ("" if absent).
std::string ClientMetadata(const grpc::ServerContextBase* context,
                           const char* key);

}  // namespace dst

#endif  // DST_SERVICES_COMMON_TRANSPORT_SERVER_STREAM_H_
