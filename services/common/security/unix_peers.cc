// Who is behind each accepted Unix connection: see unix_peers.h.
#include "services/common/security/unix_peers.h"

#include <unordered_map>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace dst {
namespace {

// fd -> credentials of the connection accepted on it. An entry is replaced
// when the number is reused by a later accept; a closed connection's entry
// is never asked for again (its calls are gone with it).
class Registry {
 public:
  void Set(int fd, const UnixCredentials& credentials) {
    absl::MutexLock lock(&mu_);
    by_fd_[fd] = credentials;
  }
  std::optional<UnixCredentials> Get(int fd) {
    absl::MutexLock lock(&mu_);
    auto it = by_fd_.find(fd);
    if (it == by_fd_.end()) return std::nullopt;
    return it->second;
  }

 private:
  absl::Mutex mu_;
  std::unordered_map<int, UnixCredentials> by_fd_ ABSL_GUARDED_BY(mu_);
};

Registry& TheRegistry() {
  static Registry* registry = new Registry();
  return *registry;
}

}  // namespace

void RememberUnixPeer(int fd, const UnixCredentials& credentials) {
  TheRegistry().Set(fd, credentials);
}

std::optional<UnixCredentials> UnixPeerOf(int fd) {
  return TheRegistry().Get(fd);
}

}  // namespace dst
