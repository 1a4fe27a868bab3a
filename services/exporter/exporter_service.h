// The Exporter gRPC service: negotiation, the transaction stream and ping,
// over one Storage. Disk I/O runs on a bounded pool of I/O threads, never on
// the server's loop (unless --io-threads=0); each stream stops reading at
// its in-flight window.
//
// Thread-safe. The Storage must outlive the service; Shutdown() before
// destroying it.
#ifndef DST_SERVICES_EXPORTER_EXPORTER_SERVICE_H_
#define DST_SERVICES_EXPORTER_EXPORTER_SERVICE_H_

#include <atomic>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"

#include "dst/v1/exporter.grpc.pb.h"
#include "services/common/base/thread_pool.h"
#include "services/common/observability/metrics.h"
#include "services/common/security/acl.h"
#include "services/common/security/client_limiter.h"
#include "services/common/transport/server_stream.h"
#include "services/exporter/metadata_store.h"
#include "services/exporter/storage.h"
#include "services/exporter/write_fence.h"

namespace dst {

// The largest request ExporterOptions::inline_io runs on the gRPC thread:
// a larger one goes to the pool, so that one copy does not hold up every
// other stream on the loop for long.
inline constexpr uint64_t kInlineIoMaxBytes = uint64_t{1} << 20;
// The most extents one OP_BLOCK_STATUS reply carries (a shorter answer then:
// the client asks again from where it ends). Bounds the lseek calls a query
// makes and the reply's size (16 bytes an extent at most).
inline constexpr size_t kMaxExtentsPerReply = 1024;

struct ExporterOptions {
  // Offsets and lengths must be multiples of this. Default 512.
  uint32_t block_size = 512;
  // Largest READ/WRITE in bytes. Default 4 MiB.
  uint32_t max_transfer = 4u << 20;
  // Refuse writes, trims and zeroes from every client. Default false.
  bool read_only = false;
  // Stable identity reported in negotiation. Default: the backing path.
  std::string identity;
  // Threads doing disk I/O. Default 4. 0: each request executes on the gRPC
  // thread that read it, without a hand-off (for storage whose calls do not
  // block long: tmpfs, fast NVMe).
  int io_threads = 4;
  // On storage that lives in memory (Storage::in_memory: tmpfs, ramfs),
  // READ, WRITE and FLUSH requests of at most kInlineIoMaxBytes execute on
  // the gRPC thread that read them: the hand-off to the pool would cost
  // more than the copy. Default true.
  bool inline_io = true;
  // Streams one client (certificate identity, else address) may have open.
  // Default 32; 0: no limit.
  int max_streams_per_client = 32;
  // Per-stream window (reply batches follow max_transfer).
  StreamOptions stream;
  // The persistent epoch and generations (Claim, fencing). Not owned; must
  // outlive the service. Default none: Claim is UNIMPLEMENTED and writes
  // are not fenced.
  MetadataStore* metadata = nullptr;
  // Who may read or write, checked on every request (see acl.h). Not
  // owned. Default none: everyone may (the exporter logs a warning).
  AclHolder* acl = nullptr;
  // The instance id in negotiation (NegotiateReply.instance): changes when
  // what was written and not flushed may have been lost. Default 0: derived
  // from the kernel's boot id (the page cache survives an exporter restart,
  // not a host's); random if that cannot be read.
  uint64_t instance = 0;
  // Fault injection for tests: sees (and may damage) every reply of an
  // executed request, and its data, before it is sent. Default none.
  std::function<void(v1::Reply*, Payload*)> reply_filter;
  // Where dst_exporter_* metrics go. Default: a private registry.
  std::shared_ptr<prometheus::Registry> metrics;
};

// Every method is async, on the server's loop (async_service.h): Stream
// through a StreamAcceptor, the unary methods on the server's unary pool.
class ExporterService final : public v1::Exporter::AsyncService,
                              public AsyncService {
 public:
  ExporterService(Storage* storage, const ExporterOptions& options);
  ~ExporterService() override;

  // InvalidArgument when the options do not fit the storage.
  absl::Status Init();
  // The export's geometry now (its size grows with Grow).
  v1::Geometry geometry() const;
  MetadataStore* metadata() const { return options_.metadata; }
  // Requests read from clients and not yet answered.
  int64_t in_flight() const { return streams_.in_flight(); }

  // Stops reading every stream; returns once all are answered and ended or
  // at the deadline (false).
  bool Drain(absl::Time deadline);

  void StartServing(const ServerQueue& queue) override;
  grpc::Status Negotiate(grpc::ServerContext* context,
                         const v1::NegotiateRequest& request,
                         v1::NegotiateReply* reply);
  // Decides what to do with a new Stream call (metadata, ACL, limits).
  StreamStart Admit(grpc::ServerContext* context);
  grpc::Status Ping(grpc::ServerContext* context,
                    const v1::PingRequest& request, v1::PingReply* reply);
  grpc::Status Claim(grpc::ServerContext* context,
                     const v1::ClaimRequest& request, v1::ClaimReply* reply);
  grpc::Status Grow(grpc::ServerContext* context,
                    const v1::GrowRequest& request, v1::GrowReply* reply);

  uint64_t instance() const { return options_.instance; }

  // What a stream was granted when it opened.
  struct StreamGrant {
    bool read_only = false;
    uint64_t epoch = 0;   // its "dst-epoch" (0: none)
    uint64_t ticket = 0;  // WriteFence's
    Peer peer;
  };
  // The grant of a stream that passed Admit's checks. Public, as the next
  // three, for the crash simulation, which drives streams without a server.
  StreamGrant Grant(bool read_only, uint64_t epoch, Peer peer);
  // Checks a request as its stream reads it: validation, the ACL and
  // fencing (early: Run decides).
  absl::Status Check(const StreamGrant& grant, const v1::Request& request,
                     size_t data_size);
  // Runs a checked request (blocking): a modifying one only if its stream
  // may still write now (WriteFence).
  v1::Reply Run(const StreamGrant& grant, const v1::Request& request,
                const Payload& data, Payload* reply_data);
  // Claim's work: the epoch, and the drain of the older epoch's writes.
  absl::StatusOr<v1::ReplicaMetadata> ClaimEpoch(
      const v1::ClaimRequest& request);
  // Grow's work: the epoch checked, the storage grown. The size now.
  absl::StatusOr<uint64_t> GrowExport(const v1::GrowRequest& request);
  // Executes a request on the storage (blocking), unfenced. Public for
  // tests. `data` is the request's; a read's bytes go to `*reply_data`.
  v1::Reply Execute(const v1::Request& request, const Payload& data,
                    Payload* reply_data);

 private:
  class Handler;

  Storage* const storage_;
  ExporterOptions options_;  // stream batch size set by Init()
  v1::Geometry geometry_;    // as Init() found it; the size is ExportSize()
  // The storage's size in whole blocks (it grows: Grow).
  uint64_t ExportSize() const;
  StreamRegistry streams_;
  StreamAcceptor acceptor_;
  std::unique_ptr<ThreadPool> pool_;
  std::unique_ptr<WriteFence> fence_;
  std::unique_ptr<OpMetrics> op_metrics_;
  prometheus::Counter* checksum_mismatches_ = nullptr;
  prometheus::Counter* fenced_requests_ = nullptr;
  prometheus::Gauge* pool_queued_ = nullptr;
  prometheus::Counter* inline_requests_ = nullptr;
  prometheus::Counter* acl_refusals_ = nullptr;
  std::unique_ptr<ClientLimiter> limiter_;
  // True when `request` executes on the gRPC thread, not on the pool.
  bool RunsInline(const v1::Request& request) const;
  // The peer's access now (ACL; everything without one).
  Access AccessOf(const Peer& peer) const;
  absl::Status RefusedPeer(const Peer& peer, Access have,
                           const std::string& wanted);
};

}  // namespace dst

#endif  // DST_SERVICES_EXPORTER_EXPORTER_SERVICE_H_
