// The server side of a transaction stream (Exporter.Stream, Gateway.Io):
// one self-deleting gRPC callback reactor per stream.
//
// Requests are read in batches and handed to a StreamHandler; the handler
// completes each one (from any thread) and the replies are coalesced into
// batches and written, one write in flight at a time. At `max_in_flight`
// unanswered requests the reactor stops reading, so HTTP/2 flow control
// pushes back on the client; it reads again at half that (hysteresis).
// Drain() stops reading and finishes the stream once every request read so
// far is answered.
//
// Thread-safe. A StreamRegistry tracks live reactors so a service can drain
// them all at shutdown; it must outlive them (StreamRegistry::WaitEmpty).
#ifndef DST_SERVICES_COMMON_STREAM_REACTOR_H_
#define DST_SERVICES_COMMON_STREAM_REACTOR_H_

#include <atomic>
#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <set>

#include <grpcpp/grpcpp.h>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

#include "dst/v1/exporter.pb.h"

namespace dst {

// Handles the requests of one stream. Owned by the stream's reactor.
class StreamHandler {
 public:
  using Done = std::function<void(v1::Reply&&)>;
  virtual ~StreamHandler() = default;
  // Handles `request`; must call `done` exactly once, from any thread,
  // possibly before returning. Must not block for long (no disk I/O): it
  // runs on a gRPC thread.
  virtual void Handle(v1::Request&& request, Done done) = 0;
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

class TransactionStreamReactor;
using ServerStreamReactor =
    grpc::ServerBidiReactor<v1::RequestBatch, v1::ReplyBatch>;

// The live reactors of a service, for draining at shutdown.
class StreamRegistry {
 public:
  // Drains every live stream and refuses new ones (Admit() is false).
  void DrainAll();
  // True once every stream has ended and its reactor (with its handler) is
  // deleted, false at the deadline.
  bool WaitEmpty(absl::Time deadline);
  // Requests read from all streams and not yet answered.
  int64_t in_flight() const { return in_flight_.load(); }

 private:
  friend class TransactionStreamReactor;
  using ServerStreamReactor =
      grpc::ServerBidiReactor<v1::RequestBatch, v1::ReplyBatch>;
  friend ServerStreamReactor* ServeStream(std::unique_ptr<StreamHandler>,
                                          const StreamOptions&,
                                          StreamRegistry*);
  bool Add(TransactionStreamReactor* reactor);
  void Remove(TransactionStreamReactor* reactor);
  void Deleted();  // a reactor Add()ed is deleted

  mutable absl::Mutex mu_;
  std::set<TransactionStreamReactor*> live_ ABSL_GUARDED_BY(mu_);
  bool draining_ ABSL_GUARDED_BY(mu_) = false;
  int existing_ ABSL_GUARDED_BY(mu_) = 0;  // Add()ed and not yet deleted
  std::atomic<int64_t> in_flight_{0};
};

// Returns a reactor for a stream that is refused outright with `status`.
ServerStreamReactor* RejectStream(const grpc::Status& status);

// Returns the reactor serving a stream with `handler`, or a rejecting one if
// the registry is draining.
ServerStreamReactor* ServeStream(std::unique_ptr<StreamHandler> handler,
                                 const StreamOptions& options,
                                 StreamRegistry* registry);

// Reads the value of metadata `key` sent by the client ("" if absent).
std::string ClientMetadata(const grpc::CallbackServerContext* context,
                           const char* key);

}  // namespace dst

#endif  // DST_SERVICES_COMMON_STREAM_REACTOR_H_
