// Per-client stream limits: a service counts the streams each client has
// open (a client is its certificate identity, else its address, else
// "local") and refuses one more past the limit with RESOURCE_EXHAUSTED, so
// one client cannot take every stream slot and the memory behind them.
//
// Thread-safe.
#ifndef DST_SERVICES_COMMON_SECURITY_CLIENT_LIMITER_H_
#define DST_SERVICES_COMMON_SECURITY_CLIENT_LIMITER_H_

#include <map>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"

#include "services/common/security/acl.h"

namespace dst {

class ClientLimiter {
 public:
  // 0: no limit.
  explicit ClientLimiter(int max_streams) : max_streams_(max_streams) {}

  // Held while the stream lives.
  class Slot {
   public:
    Slot(ClientLimiter* limiter, std::string key)
        : limiter_(limiter), key_(std::move(key)) {}
    ~Slot() { limiter_->Release(key_); }
    Slot(const Slot&) = delete;
    Slot& operator=(const Slot&) = delete;

   private:
    ClientLimiter* const limiter_;
    const std::string key_;
  };

  static std::string KeyOf(const Peer& peer) {
    if (!peer.identities.empty()) return "identity " + peer.identities[0];
    if (peer.local) return "local";
    const std::string& text = peer.text;
    return "address " + text.substr(0, text.rfind(':'));
  }

  absl::StatusOr<std::unique_ptr<Slot>> Acquire(const Peer& peer) {
    const std::string key = KeyOf(peer);
    absl::MutexLock lock(&mu_);
    int& count = streams_[key];
    if (max_streams_ > 0 && count >= max_streams_) {
      if (count == 0) streams_.erase(key);
      return absl::ResourceExhaustedError(
          absl::StrCat("client ", key, " already has ", max_streams_,
                       " streams open (the per-client limit)"));
    }
    ++count;
    return std::make_unique<Slot>(this, key);
  }

  int open(const std::string& key) const {
    absl::MutexLock lock(&mu_);
    auto it = streams_.find(key);
    return it == streams_.end() ? 0 : it->second;
  }

 private:
  void Release(const std::string& key) {
    absl::MutexLock lock(&mu_);
    auto it = streams_.find(key);
    if (it != streams_.end() && --it->second <= 0) streams_.erase(it);
  }

  const int max_streams_;
  mutable absl::Mutex mu_;
  std::map<std::string, int> streams_ ABSL_GUARDED_BY(mu_);
};

}  // namespace dst

#endif  // DST_SERVICES_COMMON_SECURITY_CLIENT_LIMITER_H_
