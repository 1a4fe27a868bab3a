// Building and running a dst gRPC server: listeners on TCP and Unix
// sockets, gRPC health checking, message limits, keepalive enforcement,
// the server's completion loop (every method async: see async_service.h).
// A service's main also uses base/signals.h (its end) and
// security/reload.h (SIGHUP).
#ifndef DST_SERVICES_COMMON_RPC_SERVER_H_
#define DST_SERVICES_COMMON_RPC_SERVER_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

#include "services/common/base/limits.h"
#include "services/common/base/thread_pool.h"
#include "services/common/rpc/async_service.h"
#include "services/common/rpc/completion_loop.h"
#include "services/common/rpc/health_service.h"
#include "services/common/rpc/unix_listener.h"

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

}  // namespace dst

#endif  // DST_SERVICES_COMMON_RPC_SERVER_H_
