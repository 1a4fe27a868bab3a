// What the nbdkit plugin needs of a volume, whichever way it is reached:
// through a gateway service (GatewayBackend, GatewayClient) or run inside
// the plugin (EmbeddedVolume, EmbeddedClient: the embedded mode). The
// plugin holds one VolumeBackend and opens a VolumeClient per NBD
// connection; nothing else of it knows which mode it runs.
#ifndef DST_NBDKIT_PLUGIN_VOLUME_CLIENT_H_
#define DST_NBDKIT_PLUGIN_VOLUME_CLIENT_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

#include "dst/v1/exporter.pb.h"
#include "services/common/transport/payload.h"

namespace dst {

class VolumeClient {
 public:
  virtual ~VolumeClient() = default;
  // The geometry negotiated when the client was opened.
  virtual const v1::Geometry& geometry() const = 0;
  // One transaction with its data, blocking until its reply (errors are
  // replies); a read's data goes to `*reply_data`.
  virtual v1::Reply Call(v1::Request request, Payload data,
                         Payload* reply_data) = 0;
};

// What one NBD connection asks of the volume when it opens it.
struct ClientOpenOptions {
  bool read_only = false;
  std::string client_id = "nbdkit";
  // The write lease's token: clients sharing it count as one writer (one
  // NBD server's connections). Required for read-write.
  std::string lease_token;
  // How long the connection waits for the volume: to open (the embedded
  // volume's replicas to negotiate) and, through a gateway, for a
  // restarted gateway to come back. Default 60 s.
  absl::Duration timeout = absl::Seconds(60);
};

// Where the plugin's volume is. Thread-safe.
class VolumeBackend {
 public:
  virtual ~VolumeBackend() = default;
  // One NBD connection's client. NotFound: no such volume; Unavailable:
  // the volume cannot be reached or is not ready; FailedPrecondition: it
  // is diverged, fenced, or another writer holds the lease.
  virtual absl::StatusOr<std::unique_ptr<VolumeClient>> Open(
      const ClientOpenOptions& options) = 0;
  // Whether a write may lend the caller's buffer instead of a copy: the
  // caller's thread then waits until every send of it lets go. The
  // embedded mode does not: a mirror may acknowledge a write while a
  // lagging replica still holds its data (lag_limit_ms).
  virtual bool LendsWriteBuffers() const = 0;
  // Where the volume is, for messages ("on gateway ADDR").
  virtual std::string Where() const = 0;
  // At unload: makes what the backend keeps durable and releases its
  // files. Once.
  virtual void Shutdown() = 0;
};

}  // namespace dst

#endif  // DST_NBDKIT_PLUGIN_VOLUME_CLIENT_H_
