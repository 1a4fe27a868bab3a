// Building and running a dst gRPC server: see server.h.
#include "services/common/rpc/server.h"

#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

#include "services/common/base/address.h"
#include "services/common/base/log.h"
#include "services/common/base/status.h"
#include "services/common/rpc/channel_args.h"
#include "services/common/rpc/completion_loop.h"
#include "services/common/security/tls.h"

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

}  // namespace dst
