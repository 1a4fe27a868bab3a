// gRPC server building and signal handling: see server.h.
#include "services/common/server.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>

#include <sys/stat.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

#include "services/common/acl.h"
#include "services/common/address.h"
#include "services/common/completion_loop.h"
#include "services/common/log.h"
#include "services/common/status.h"
#include "services/common/tls.h"
#include "services/common/unix_send_buffer.h"

namespace dst {

absl::StatusOr<RunningServer> StartServer(const ServerSpec& spec) {
  grpc::ServerBuilder builder;
  std::vector<Address> addresses;
  std::vector<int> ports(spec.listen.size(), 0);
  RunningServer running;
  for (size_t i = 0; i < spec.listen.size(); ++i) {
    absl::StatusOr<Address> address = ParseAddress(spec.listen[i]);
    if (!address.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("listen address '", spec.listen[i],
                       "': ", address.status().message()));
    }
    addresses.push_back(*address);
    if (address->kind == Address::Kind::kUnix &&
        (spec.tls == nullptr || !spec.tls->Applies(*address))) {
      ASSIGN_OR_RETURN(std::unique_ptr<UnixListener> listener,
                       UnixListener::Bind(address->path));
      running.unix_listeners.push_back(std::move(listener));
      continue;
    }
    if (address->kind == Address::Kind::kUnix) {
      ::unlink(address->path.c_str());  // a socket left by a crash
    }
    builder.AddListeningPort(address->GrpcTarget(),
                             spec.tls != nullptr
                                 ? spec.tls->ServerCredentials(*address)
                                 : grpc::InsecureServerCredentials(),
                             &ports[i]);
  }
  running.health = std::make_unique<HealthService>();
  builder.RegisterService(running.health.get());
  std::vector<AsyncService*> services = {running.health.get()};
  for (grpc::Service* service : spec.services) {
    builder.RegisterService(service);
    if (auto* async = dynamic_cast<AsyncService*>(service)) {
      services.push_back(async);
    }
  }
  std::unique_ptr<grpc::ServerCompletionQueue> server_cq =
      builder.AddCompletionQueue();
  ServerQueue queue{server_cq.get(), nullptr};
  std::unique_ptr<grpc::CompletionQueue> cq = std::move(server_cq);
  builder.SetMaxReceiveMessageSize(spec.max_message_bytes);
  builder.SetMaxSendMessageSize(spec.max_message_bytes);
  // Clients ping every keepalive interval (ClientChannelArguments, at
  // least kMinKeepaliveMs); allow that, and pings without data in flight.
  builder.AddChannelArgument(
      GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, kMinKeepaliveMs);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PING_STRIKES, 0);
  running.server = builder.BuildAndStart();
  if (running.server == nullptr) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", absl::StrJoin(spec.listen, ", "),
                     " (address in use or not permitted?)"));
  }
  if (spec.share_loop) running.loop = CompletionLoop::ShareQueue(&cq);
  if (running.loop == nullptr) {
    running.own_loop = std::make_unique<CompletionLoop>(std::move(cq));
    running.loop = running.own_loop.get();
  }
  for (size_t i = 0; i < addresses.size(); ++i) {
    if (addresses[i].kind == Address::Kind::kTcp) {
      if (ports[i] == 0) {
        return absl::UnavailableError(
            absl::StrCat("cannot listen on ", spec.listen[i]));
      }
      addresses[i].port = ports[i];
    }
    running.bound.push_back(addresses[i].GrpcTarget());
  }
  running.unary_pool = std::make_unique<ThreadPool>(kUnaryThreads);
  queue.unary_pool = running.unary_pool.get();
  for (AsyncService* service : services) service->StartServing(queue);
  for (const std::unique_ptr<UnixListener>& listener : running.unix_listeners) {
    listener->Accept(running.server.get());
  }
  return running;
}

RunningServer::~RunningServer() { Shutdown(absl::Now()); }

void RunningServer::Shutdown(absl::Time deadline) {
  StopListening();
  // Returns once every call is over; the loop and the pool run them to
  // their end meanwhile. The requests still waiting for a call come back
  // cancelled on the loop, and they touch the server: it must outlive the
  // loop.
  if (server != nullptr) server->Shutdown(absl::ToChronoTime(deadline));
  unary_pool.reset();
  own_loop.reset();
}

void RunningServer::StopListening() {
  for (const std::unique_ptr<UnixListener>& listener : unix_listeners) {
    listener->Stop();
  }
}

grpc::ChannelArguments ClientChannelArguments(int max_message_bytes,
                                              int keepalive_ms,
                                              int keepalive_timeout_ms) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(max_message_bytes);
  args.SetMaxSendMessageSize(max_message_bytes);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS,
              std::max(keepalive_ms, static_cast<int>(kMinKeepaliveMs)));
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, keepalive_timeout_ms);
  args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  args.SetInt(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
  // Reconnect quickly after an exporter or gateway restart.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 2000);
  WidenUnixSendBuffers(&args);
  return args;
}

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

std::vector<std::string> ReloadableFiles(const Tls* tls, const AclHolder* acl) {
  std::vector<std::string> files;
  if (tls != nullptr && tls->options().mode != TlsMode::kOff) {
    for (const std::string* path :
         {&tls->options().cert, &tls->options().key, &tls->options().ca}) {
      if (!path->empty()) files.push_back(*path);
    }
  }
  if (acl != nullptr && acl->enabled()) files.push_back(acl->path());
  return files;
}

std::function<void()> ReloadOnHangup(std::shared_ptr<Tls> tls, AclHolder* acl,
                                     const std::string& service) {
  return [tls = std::move(tls), acl, service] {
    DST_LOG(Info, "%s: SIGHUP: reloading certificates and the ACL", service);
    if (tls != nullptr) (void)tls->Reload();  // logs its own outcome
    if (acl == nullptr) return;
    if (absl::Status s = acl->Reload(); !s.ok()) {
      DST_LOG(Error, "%s: ACL reload refused, the previous one stays: %s",
              service, s.ToString());
    }
  };
}

void ExitNow(int code) { ::_exit(code); }

}  // namespace dst
