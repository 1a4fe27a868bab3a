// Writes a volume's mirror state file (VolumeState in config.proto) on a
// thread of its own, with group commit: callers hand over a snapshot and a
// continuation; the newest snapshot is written (atomically, durably) and
// every continuation waiting for it runs after. A write the gateway must not
// acknowledge before its dirty bits are on disk waits for its continuation.
//
// Thread-safe.
#ifndef DST_SERVICES_GATEWAY_STATE_WRITER_H_
#define DST_SERVICES_GATEWAY_STATE_WRITER_H_

#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"

#include "dst/v1/config.pb.h"

namespace dst {

class StateWriter {
 public:
  explicit StateWriter(std::string path);
  // Writes what is pending, then stops.
  ~StateWriter();
  StateWriter(const StateWriter&) = delete;
  StateWriter& operator=(const StateWriter&) = delete;

  const std::string& path() const { return path_; }

  // Writes `state` (or a newer snapshot handed over before the write
  // starts); `then` runs on the writer's thread with the outcome.
  void Write(v1::VolumeState state,
             std::function<void(const absl::Status&)> then = nullptr);

  uint64_t writes() const;  // files written since start

 private:
  void Run();

  const std::string path_;
  mutable absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool pending_ ABSL_GUARDED_BY(mu_) = false;
  v1::VolumeState next_ ABSL_GUARDED_BY(mu_);
  std::vector<std::function<void(const absl::Status&)>> waiting_
      ABSL_GUARDED_BY(mu_);
  uint64_t writes_ ABSL_GUARDED_BY(mu_) = 0;
  std::thread thread_;  // last: it uses the members above
};

}  // namespace dst

#endif  // DST_SERVICES_GATEWAY_STATE_WRITER_H_
