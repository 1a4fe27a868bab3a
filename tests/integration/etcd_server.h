// A real etcd server (Debian's etcd-server) for tests: one member on
// loopback ports picked free, its data in a temporary directory, and short
// Raft timings so that a 1 s lease is allowed and elections are quick.
// Stop() is kill -9, as a crash.
#ifndef DST_TESTS_INTEGRATION_ETCD_SERVER_H_
#define DST_TESTS_INTEGRATION_ETCD_SERVER_H_

#include <string>

#include <sys/types.h>

#include "absl/status/status.h"

namespace dst {

class EtcdServer {
 public:
  EtcdServer();
  ~EtcdServer();
  EtcdServer(const EtcdServer&) = delete;
  EtcdServer& operator=(const EtcdServer&) = delete;

  // Starts etcd and waits until it answers; an error says why not (etcd
  // missing: install etcd-server).
  absl::Status Start();
  void Stop();
  const std::string& endpoint() const { return endpoint_; }  // host:port

 private:
  std::string dir_;
  std::string endpoint_;
  pid_t pid_ = -1;
};

}  // namespace dst

#endif  // DST_TESTS_INTEGRATION_ETCD_SERVER_H_
