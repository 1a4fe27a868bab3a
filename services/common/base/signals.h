// A service process's signals and end: SIGTERM/SIGINT end it, SIGHUP (or
// a change to a watched file) reloads, and ExitNow skips gRPC's teardown.
#ifndef DST_SERVICES_COMMON_BASE_SIGNALS_H_
#define DST_SERVICES_COMMON_BASE_SIGNALS_H_

#include <functional>
#include <string>
#include <vector>

namespace dst {

// Blocks SIGTERM, SIGINT and SIGHUP in this thread (call first in main,
// before any thread starts) and ignores SIGPIPE.
void BlockTerminationSignals();

// Waits for SIGTERM or SIGINT; returns the signal number. SIGHUP runs
// `on_hangup` (reload) and goes on waiting. So does a change to any of
// `watched` (certificates, keys, the ACL), checked every
// kWatchIntervalSeconds by stat (inode, size, mtime; symlinks followed, so
// a Kubernetes Secret's atomic update counts): renewed files are picked up
// without a signal.
inline constexpr int kWatchIntervalSeconds = 5;
int WaitForTerminationSignal(const std::function<void()>& on_hangup = nullptr,
                             const std::vector<std::string>& watched = {});

// Ends the process with `code` at once. gRPC 1.51's global teardown (run by
// ~Server) can sit up to 10 s on an idle poller timer; a service calls this
// after draining its streams and making its state durable, so nothing is
// lost by skipping destructors.
[[noreturn]] void ExitNow(int code);

}  // namespace dst

#endif  // DST_SERVICES_COMMON_BASE_SIGNALS_H_
