// Process-wide data-path settings: see process_tuning.h.
#include "services/common/base/process_tuning.h"

#include <malloc.h>

#include "absl/synchronization/mutex.h"

namespace dst {

void TuneProcessForDataPath() {
  mallopt(M_MMAP_THRESHOLD, 64 << 20);
  mallopt(M_TRIM_THRESHOLD, 256 << 20);
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
}

}  // namespace dst
