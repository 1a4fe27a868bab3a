// Group-committed writes of a volume's state file: see state_writer.h.
#include "services/gateway/state_writer.h"

#include <utility>

#include "services/common/atomic_file.h"
#include "services/common/log.h"

namespace dst {

StateWriter::StateWriter(std::string path)
    : path_(std::move(path)), thread_([this] { Run(); }) {}

StateWriter::~StateWriter() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  thread_.join();
}

void StateWriter::Write(v1::VolumeState state,
                        std::function<void(const absl::Status&)> then) {
  absl::MutexLock lock(&mu_);
  next_ = std::move(state);
  pending_ = true;
  if (then) waiting_.push_back(std::move(then));
}

uint64_t StateWriter::writes() const {
  absl::MutexLock lock(&mu_);
  return writes_;
}

void StateWriter::Run() {
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
    absl::Status status = WriteFileAtomically(path_, state.SerializeAsString());
    if (!status.ok()) {
      DST_LOG(Error, "gateway: cannot save the mirror state: %s",
              status.ToString());
    }
    {
      absl::MutexLock lock(&mu_);
      ++writes_;
    }
    for (auto& then : waiting) then(status);
  }
}

}  // namespace dst
