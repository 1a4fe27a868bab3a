// The embedded mode: the nbdkit plugin runs dst's gateway engine itself
// (plugin parameter config=FILE instead of gateway=ADDR), so a request goes
// nbdkit -> exporters with one gRPC hop and one process fewer. The
// configuration file is the gateway's (same keys and checks); the volume
// named by volume= is built from it, with its mirror state in state_dir,
// exactly as dst-gateway would run it. What a gateway serves over gRPC
// (other NBD servers, dstctl) is not there: one nbdkit process owns the
// volume, and its fencing epoch keeps any other writer off the exporters.
#ifndef DST_NBDKIT_PLUGIN_EMBEDDED_VOLUME_H_
#define DST_NBDKIT_PLUGIN_EMBEDDED_VOLUME_H_

#include <memory>
#include <string>
#include <utility>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "prometheus/registry.h"

#include "nbdkit-plugin/volume_client.h"
#include "services/common/observability/metrics.h"
#include "services/gateway/volume.h"

namespace dst {

class EmbeddedVolume : public VolumeBackend {
 public:
  // Loads and checks the configuration, builds volume `name` and starts
  // it (replicas connect in the background). `id` names this process as
  // the owner of the fencing epoch on the exporters.
  static absl::StatusOr<std::unique_ptr<EmbeddedVolume>> Start(
      const std::string& config_path, const std::string& name,
      const std::string& id);
  ~EmbeddedVolume() override;

  Volume& volume() { return *volume_; }
  absl::StatusOr<std::unique_ptr<VolumeClient>> Open(
      const ClientOpenOptions& options) override;
  bool LendsWriteBuffers() const override { return false; }
  std::string Where() const override;
  // At unload: writes the mirror state and removes the staged TLS files.
  void Shutdown() override;

 private:
  explicit EmbeddedVolume(std::string config_path)
      : config_path_(std::move(config_path)) {}
  const std::string config_path_;
  std::shared_ptr<Tls> tls_;
  std::shared_ptr<prometheus::Registry> registry_;
  std::unique_ptr<MetricsServer> metrics_;  // the config's `metrics`, if any
  std::unique_ptr<Volume> volume_;
};

// One NBD connection's client of an embedded volume.
class EmbeddedClient : public VolumeClient {
 public:
  // Waits up to `options.timeout` for the replicas needed to decide who is
  // up to date: UNAVAILABLE at the timeout; FAILED_PRECONDITION when the
  // volume is diverged, fenced, or another writer holds the lease.
  static absl::StatusOr<std::unique_ptr<EmbeddedClient>> Open(
      Volume* volume, const ClientOpenOptions& options);
  ~EmbeddedClient() override;

  const v1::Geometry& geometry() const override { return geometry_; }
  v1::Reply Call(v1::Request request, Payload data,
                 Payload* reply_data) override;
  // The same with the data inside the messages (copied; for tests).
  v1::Reply Call(v1::Request request) {
    return Call(std::move(request), Payload(), nullptr);
  }

 private:
  EmbeddedClient(Volume* volume, bool read_only, v1::Geometry geometry)
      : volume_(volume),
        read_only_(read_only),
        geometry_(std::move(geometry)) {}
  Volume* const volume_;
  const bool read_only_;
  const v1::Geometry geometry_;
};

}  // namespace dst

#endif  // DST_NBDKIT_PLUGIN_EMBEDDED_VOLUME_H_
