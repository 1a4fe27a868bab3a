// The mirror state file: see state_store.h.
#include "services/gateway/state_store.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include <sys/file.h>

#include "absl/strings/str_cat.h"

#include "services/common/base/atomic_file.h"
#include "services/common/base/log.h"

namespace dst {

absl::StatusOr<std::unique_ptr<StateStore>> OpenFileStateStore(
    const std::string& path) {
  const std::string lock_path = path + ".lock";
  const int fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot create ", lock_path, ": ", std::strerror(errno)));
  }
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int error = errno;
    ::close(fd);
    return absl::FailedPreconditionError(
        error == EWOULDBLOCK
            ? absl::StrCat(path,
                           " is in use by another gateway process (two "
                           "gateways must never share a state_dir)")
            : absl::StrCat("cannot lock ", lock_path, ": ",
                           std::strerror(error)));
  }
  return std::unique_ptr<StateStore>(new FileStateStore(path, fd));
}

GroupCommitStateStore::GroupCommitStateStore() : thread_([this] { Run(); }) {}

GroupCommitStateStore::~GroupCommitStateStore() { StopWriter(); }

void GroupCommitStateStore::StopWriter() {
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  thread_.join();
}

FileStateStore::FileStateStore(std::string path, int lock_fd)
    : path_(std::move(path)), lock_fd_(lock_fd) {}

FileStateStore::~FileStateStore() {
  StopWriter();
  ::close(lock_fd_);  // releases the lock
}

absl::StatusOr<v1::VolumeState> FileStateStore::Load() {
  absl::StatusOr<std::string> contents = ReadWholeFile(path_);
  if (!contents.ok()) return contents.status();
  v1::VolumeState state;
  if (!state.ParseFromString(*contents)) {
    return absl::DataLossError(
        absl::StrCat(path_, ": not a dst volume state file"));
  }
  return state;
}

void GroupCommitStateStore::Write(
    v1::VolumeState state, std::function<void(const absl::Status&)> then) {
  absl::MutexLock lock(&mu_);
  next_ = std::move(state);
  pending_ = true;
  if (then) waiting_.push_back(std::move(then));
}

void GroupCommitStateStore::Run() {
  for (;;) {
    v1::VolumeState state;
    std::vector<std::function<void(const absl::Status&)>> waiting;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return pending_ || stopping_;
      };
      mu_.Await(absl::Condition(&ready));
      if (!pending_) return;  // stopping with nothing left
      state = std::move(next_);
      waiting.swap(waiting_);
      pending_ = false;
    }
    absl::Status status = Persist(state);
    if (!status.ok()) {
      DST_LOG(Error, "gateway: cannot save the mirror state: %s",
              status.ToString());
    }
    for (auto& then : waiting) then(status);
  }
}

absl::Status FileStateStore::Persist(const v1::VolumeState& state) {
  return WriteFileAtomically(path_, state.SerializeAsString());
}

}  // namespace dst
