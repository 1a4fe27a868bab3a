// Where a mirror keeps its durable state (VolumeState in config.proto: the
// generations, the in-sync set, the dirty bitmaps, the activity log), behind
// an interface so that the crash simulation (tests/crash/) can make a save
// slow, fail, or be cut by a crash.
//
// FileStateStore keeps it in STATE_DIR/VOLUME.state, replaced atomically
// and durably, with group commit (GroupCommitStateStore): callers hand over
// a snapshot and a continuation; the newest snapshot is written and every
// continuation waiting for it runs after. The file is locked
// (VOLUME.state.lock, flock) for as long as the store lives: two gateways
// never share one. In HA mode the state lives in etcd instead
// (ha/etcd_state_store.h).
#ifndef DST_SERVICES_GATEWAY_STATE_STORE_H_
#define DST_SERVICES_GATEWAY_STATE_STORE_H_

#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

#include "dst/v1/config.pb.h"

namespace dst {

// Thread-safe. Continuations run on the store's own thread, in the order
// their snapshots were handed over, and must not block.
class StateStore {
 public:
  virtual ~StateStore() = default;
  // Names the store in messages (the file's path).
  virtual const std::string& name() const = 0;
  // The state last made durable: NotFound when none was ever written,
  // DataLoss when it cannot be read back.
  virtual absl::StatusOr<v1::VolumeState> Load() = 0;
  // Makes `state` durable, or a newer snapshot handed over before the
  // write starts; `then` runs with the outcome once it is known.
  virtual void Write(v1::VolumeState state,
                     std::function<void(const absl::Status&)> then) = 0;
};

// A StateStore that writes on a thread of its own with group commit: a
// Write replaces the snapshot waiting to be written, and once the newest is
// durable every continuation handed over with the snapshots it replaced
// runs. The subclass says how a snapshot is made durable (Persist).
class GroupCommitStateStore : public StateStore {
 public:
  ~GroupCommitStateStore() override;
  void Write(v1::VolumeState state,
             std::function<void(const absl::Status&)> then) override;

 protected:
  GroupCommitStateStore();
  // Makes `state` durable; runs on the writer thread, one at a time.
  virtual absl::Status Persist(const v1::VolumeState& state) = 0;
  // Writes what is pending, then stops the writer thread. The subclass's
  // destructor calls it first, while Persist can still run.
  void StopWriter();

 private:
  void Run();

  mutable absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool pending_ ABSL_GUARDED_BY(mu_) = false;
  v1::VolumeState next_ ABSL_GUARDED_BY(mu_);
  std::vector<std::function<void(const absl::Status&)>> waiting_
      ABSL_GUARDED_BY(mu_);
  std::thread thread_;  // last: it uses the members above
};

// Opens STATE_DIR/VOLUME.state at `path` (the file need not exist) and
// locks it. FailedPrecondition when another process holds the lock or the
// directory cannot be written.
absl::StatusOr<std::unique_ptr<StateStore>> OpenFileStateStore(
    const std::string& path);

class FileStateStore final : public GroupCommitStateStore {
 public:
  // Writes what is pending, then unlocks.
  ~FileStateStore() override;
  FileStateStore(const FileStateStore&) = delete;
  FileStateStore& operator=(const FileStateStore&) = delete;

  const std::string& name() const override { return path_; }
  absl::StatusOr<v1::VolumeState> Load() override;

 private:
  friend absl::StatusOr<std::unique_ptr<StateStore>> OpenFileStateStore(
      const std::string& path);
  FileStateStore(std::string path, int lock_fd);
  absl::Status Persist(const v1::VolumeState& state) override;

  const std::string path_;
  const int lock_fd_;
};

}  // namespace dst

#endif  // DST_SERVICES_GATEWAY_STATE_STORE_H_
