// Termination signals and the hangup reload: see signals.h.
#include "services/common/base/signals.h"

#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <string>

#include <sys/stat.h>

#include "absl/strings/str_cat.h"

#include "services/common/base/log.h"

namespace dst {

namespace {

sigset_t TerminationSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  return set;
}

}  // namespace

void BlockTerminationSignals() {
  sigset_t set = TerminationSignals();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  signal(SIGPIPE, SIG_IGN);
}

namespace {

// What stat says of each file; a change in any means "reload".
std::string Fingerprint(const std::vector<std::string>& paths) {
  std::string out;
  for (const std::string& path : paths) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) {
      absl::StrAppend(&out, path, ":missing;");
      continue;
    }
    absl::StrAppend(&out, path, ":", st.st_dev, ".", st.st_ino, ".", st.st_size,
                    ".", st.st_mtim.tv_sec, ".", st.st_mtim.tv_nsec, ";");
  }
  return out;
}

}  // namespace

int WaitForTerminationSignal(const std::function<void()>& on_hangup,
                             const std::vector<std::string>& watched) {
  sigset_t set = TerminationSignals();
  std::string last = Fingerprint(watched);
  for (;;) {
    const timespec interval{kWatchIntervalSeconds, 0};
    const int signal_number = sigtimedwait(&set, nullptr, &interval);
    if (signal_number < 0) {
      if (errno != EAGAIN || watched.empty() || !on_hangup) continue;
      std::string now = Fingerprint(watched);
      if (now == last) continue;
      last = std::move(now);
      DST_LOG(Info, "certificate or ACL files changed: reloading");
      on_hangup();
      continue;
    }
    if (signal_number == SIGHUP) {
      last = Fingerprint(watched);
      if (on_hangup) on_hangup();
      continue;
    }
    return signal_number;
  }
}

void ExitNow(int code) { ::_exit(code); }

}  // namespace dst
