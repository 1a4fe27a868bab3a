// Building and running a dst gRPC server: listeners on TCP and Unix
// sockets, gRPC health checking, message limits, keepalive enforcement,
// the server's completion loop (every method async: see async_service.h),
// and the wait for SIGTERM / SIGINT.
#ifndef DST_SERVICES_COMMON_SERVER_H_
#define DST_SERVICES_COMMON_SERVER_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

#include "services/common/async_service.h"
#include "services/common/completion_loop.h"
#include "services/common/health_service.h"
#include "services/common/limits.h"
#include "services/common/thread_pool.h"
#include "services/common/unix_listener.h"

namespace dst {

class Tls;

struct ServerSpec {
  std::vector<std::string> listen;  // addresses (see address.h)
  std::shared_ptr<Tls> tls;         // credentials per listener; null: off
  // Not owned; outlive the server. dst's are AsyncServices, every method
  // async; any other (a test's fake) is served by gRPC's own threads.
  std::vector<grpc::Service*> services;
  // Largest message accepted, in bytes. Default kMaxMessageBytes.
  int max_message_bytes = kMaxMessageBytes;
  // The server's loop also becomes the process's CompletionLoop::Shared(),
  // for its client streams (the gateway's to its exporters): one gRPC
  // thread in all. Then the loop outlives the server, to the process's
  // end, and the server must not be destroyed before it (requests it
  // cancels at shutdown come back on the loop later): the process ends by
  // ExitNow. Ignored when Shared() was used before. Default false.
  bool share_loop = false;
};

// Threads answering unary calls (admin, negotiation, health); streams run
// on the loop, long calls (verify) on threads of their own.
inline constexpr int kUnaryThreads = 2;

struct RunningServer {
  RunningServer() = default;
  RunningServer(RunningServer&&) = default;
  RunningServer& operator=(RunningServer&&) = default;
  // Shutdown(now) unless done already.
  ~RunningServer();

  // grpc.health.v1: "" is SERVING from the start.
  std::unique_ptr<HealthService> health;
  std::unique_ptr<grpc::Server> server;
  std::vector<std::string> bound;  // the listen addresses, ports resolved
  // Plaintext Unix listeners, accepted by dst to learn peer uids (see
  // unix_listener.h); stopped before the server shuts down.
  std::vector<std::unique_ptr<UnixListener>> unix_listeners;
  // The server's queue and its thread: every call of every method.
  CompletionLoop* loop = nullptr;
  std::unique_ptr<CompletionLoop> own_loop;  // unless share_loop
  // Where unary handlers run (kUnaryThreads).
  std::unique_ptr<ThreadPool> unary_pool;

  // Stops accepting on the Unix listeners (gRPC's own stop with Shutdown).
  void StopListening();
  // Stops listening, shuts the server down (calls still running at
  // `deadline` are cancelled), then its pool and loop; the server may be
  // destroyed afterwards. Idempotent.
  void Shutdown(absl::Time deadline);
};

// Starts the server; InvalidArgument for a bad address, Unavailable when an
// address cannot be bound. Stale Unix socket files are replaced. A Unix
// address without TLS is accepted by a UnixListener, so ACLs can match the
// peer's uid; with TLS it is gRPC's.
absl::StatusOr<RunningServer> StartServer(const ServerSpec& spec);

// Channel arguments every dst client uses (message size, keepalive).
// Servers accept keepalive pings this often; clients ping no more often.
inline constexpr int kMinKeepaliveMs = 1000;
grpc::ChannelArguments ClientChannelArguments(int max_message_bytes,
                                              int keepalive_ms = 10000,
                                              int keepalive_timeout_ms = 5000);

// Blocks SIGTERM, SIGINT and SIGHUP in this thread (call first in main,
// before any thread starts) and ignores SIGPIPE.
void BlockTerminationSignals();
// Waits for SIGTERM or SIGINT; returns the signal number.
class AclHolder;
// The SIGHUP action of a service: re-reads its certificates and its ACL
// (either may be null), logging what was refused.
std::function<void()> ReloadOnHangup(std::shared_ptr<Tls> tls, AclHolder* acl,
                                     const std::string& service);

// SIGHUP runs `on_hangup` (reload) and goes on waiting. So does a change to
// any of `watched` (certificates, keys, the ACL), checked every
// kWatchInterval by stat (inode, size, mtime; symlinks followed, so a
// Kubernetes Secret's atomic update counts): renewed files are picked up
// without a signal.
inline constexpr int kWatchIntervalSeconds = 5;
int WaitForTerminationSignal(const std::function<void()>& on_hangup = nullptr,
                             const std::vector<std::string>& watched = {});
// The files ReloadOnHangup re-reads: `tls`'s certificate, key and CA and
// `acl`'s file (either may be null).
std::vector<std::string> ReloadableFiles(const Tls* tls, const AclHolder* acl);

// Ends the process with `code` at once. gRPC 1.51's global teardown (run by
// ~Server) can sit up to 10 s on an idle poller timer; a service calls this
// after draining its streams and making its state durable, so nothing is
// lost by skipping destructors.
[[noreturn]] void ExitNow(int code);

}  // namespace dst

#endif  // DST_SERVICES_COMMON_SERVER_H_
