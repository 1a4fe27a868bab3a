// A small client of etcd's v3 gRPC API, for the gateway's high-availability
// mode: leases, elections, and writes guarded by a leadership. The stubs are
// generated at build time from the protos Debian's golang-etcd-server-dev
// ships (nothing vendored).
//
// - Every call tries the endpoints in turn, starting from the last one that
//   answered, until one answers or `call_timeout` has passed; an endpoint
//   that is down (UNAVAILABLE) or times out passes the call to the next.
// - A leadership is etcd's election key: it holds while its key exists with
//   its create revision, and that revision is the leader's epoch. Revisions
//   only grow, so a later leader's epoch is always higher (the fencing
//   token exporters compare).
//
// Thread-safe: calls may come from any thread; each blocks its caller.
#ifndef DST_SERVICES_GATEWAY_HA_ETCD_CLIENT_H_
#define DST_SERVICES_GATEWAY_HA_ETCD_CLIENT_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace dst {

class Tls;

class EtcdClient {
 public:
  struct Options {
    std::vector<std::string> endpoints;  // "host:port"
    absl::Duration call_timeout = absl::Seconds(2);
    std::shared_ptr<Tls> tls;  // null or off: plaintext
  };
  // One election's holder: etcd's LeaderKey.
  struct Leadership {
    std::string name;      // the election
    std::string key;       // its key in etcd (name/lease)
    int64_t revision = 0;  // the key's create revision: the epoch
    int64_t lease = 0;
  };
  // What an election's current leader proclaimed.
  struct Leader {
    std::string key;
    std::string value;
    int64_t revision = 0;  // create revision of its key
    int64_t lease = 0;
  };

  // InvalidArgument without endpoints or with an empty one.
  static absl::StatusOr<std::unique_ptr<EtcdClient>> Create(Options options);

  // A new lease of `ttl` (etcd rounds it up to whole seconds, and to its
  // minimum); returns its id.
  absl::StatusOr<int64_t> GrantLease(absl::Duration ttl);
  // Renews `lease` once; returns the TTL it now has. NotFound once it has
  // expired or was revoked.
  absl::StatusOr<absl::Duration> KeepAlive(int64_t lease);
  absl::Status RevokeLease(int64_t lease);

  // Campaigns in election `name` on `lease`, proclaiming `value`: blocks
  // until elected, or DeadlineExceeded at `deadline` (the campaign is then
  // withdrawn).
  absl::StatusOr<Leadership> Campaign(const std::string& name, int64_t lease,
                                      const std::string& value,
                                      absl::Time deadline);
  // The election's leader, or nullopt while it has none.
  absl::StatusOr<std::optional<Leader>> CurrentLeader(const std::string& name);
  absl::Status Resign(const Leadership& leadership);

  // A key's value and the revision that last wrote it.
  struct Value {
    std::string value;
    int64_t mod_revision = 0;
  };

  // Puts `key` = `value` only while `leadership` holds and, when
  // `mod_revision` is given, only if the key was last written at that
  // revision (0: the key does not exist): a compare-and-swap.
  // FailedPrecondition (and nothing written) otherwise.
  absl::Status PutIfLeader(const Leadership& leadership, const std::string& key,
                           const std::string& value,
                           std::optional<int64_t> mod_revision = std::nullopt);
  // The value of `key`, or nullopt when it has none.
  absl::StatusOr<std::optional<Value>> Get(const std::string& key);

 private:
  explicit EtcdClient(Options options);
  // Runs `call` on each endpoint's channel in turn until one answers with
  // something other than UNAVAILABLE or DEADLINE_EXCEEDED, or `deadline`.
  grpc::Status Call(
      absl::Time deadline,
      const std::function<grpc::Status(const std::shared_ptr<grpc::Channel>&,
                                       grpc::ClientContext*)>& call);

  // One unary call of `Service` (etcdserverpb::KV, ...), within
  // call_timeout.
  template <typename Service, typename Request, typename Response>
  grpc::Status Unary(grpc::Status (Service::Stub::*method)(grpc::ClientContext*,
                                                           const Request&,
                                                           Response*),
                     const Request& request, Response* response);

  const Options options_;
  std::vector<std::shared_ptr<grpc::Channel>> channels_;
  absl::Mutex mu_;
  size_t preferred_ ABSL_GUARDED_BY(mu_) = 0;  // the last that answered
};

}  // namespace dst

#endif  // DST_SERVICES_GATEWAY_HA_ETCD_CLIENT_H_
