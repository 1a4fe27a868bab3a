// A real etcd (Debian's etcd-server) for tests: one member, or a cluster
// of several, on loopback ports picked free, the data in a temporary
// directory, and short Raft timings so that a 1 s lease is allowed and
// elections are quick. Stop() and StopMember() are kill -9, as a crash.
#ifndef DST_TESTS_INTEGRATION_ETCD_SERVER_H_
#define DST_TESTS_INTEGRATION_ETCD_SERVER_H_

#include <string>
#include <vector>

#include <sys/types.h>

#include "absl/status/status.h"

namespace dst {

class EtcdServer {
 public:
  EtcdServer();
  ~EtcdServer();
  EtcdServer(const EtcdServer&) = delete;
  EtcdServer& operator=(const EtcdServer&) = delete;

  // Starts etcd, `members` of them in one cluster, and waits until every
  // member answers healthy; an error says why not (etcd missing: install
  // etcd-server).
  absl::Status Start(int members = 1);
  void Stop();  // every member
  void StopMember(int member);
  // Member 0's client endpoint, host:port; all of them.
  const std::string& endpoint() const { return endpoints_.at(0); }
  const std::vector<std::string>& endpoints() const { return endpoints_; }

 private:
  std::string dir_;
  std::vector<std::string> endpoints_;
  std::vector<pid_t> pids_;
};

}  // namespace dst

#endif  // DST_TESTS_INTEGRATION_ETCD_SERVER_H_
