// What the nbdkit plugin needs of a volume, whichever way it is reached:
// through a gateway service (GatewayClient) or run inside the plugin
// (EmbeddedClient, the embedded mode).
#ifndef DST_NBDKIT_PLUGIN_VOLUME_CLIENT_H_
#define DST_NBDKIT_PLUGIN_VOLUME_CLIENT_H_

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

}  // namespace dst

#endif  // DST_NBDKIT_PLUGIN_VOLUME_CLIENT_H_
