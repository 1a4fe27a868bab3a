// A client of one gateway volume: see gateway_client.h.
#include "nbdkit-plugin/gateway_client.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

#include "services/common/base/address.h"
#include "services/common/base/status.h"
#include "services/common/protocol/request_validation.h"
#include "services/common/rpc/channel_args.h"
#include "services/common/security/tls.h"

namespace dst {

namespace {

// With several gateways, one that does not answer within this passes the
// Open to the next (a dead machine would hold it for the whole
// open_timeout); an Open answers at once when the gateway is up.
constexpr absl::Duration kOpenTryLimit = absl::Seconds(2);

absl::StatusOr<v1::Geometry> OpenVolume(v1::Gateway::Stub& stub,
                                        const GatewayClientOptions& options,
                                        absl::Duration limit,
                                        grpc::ClientContext* context) {
  context->set_deadline(absl::ToChronoTime(absl::Now() + limit));
  v1::OpenRequest request;
  request.set_volume(options.volume);
  request.set_read_only(options.read_only);
  request.set_client_id(options.client_id);
  request.set_lease_token(options.lease_token);
  v1::OpenReply reply;
  RETURN_IF_ERROR(FromGrpcStatus(stub.Open(context, request, &reply)));
  RETURN_IF_ERROR(ValidateGeometry(reply.geometry()));
  return reply.geometry();
}

}  // namespace

absl::StatusOr<std::shared_ptr<grpc::Channel>> GatewayChannel(
    const std::string& address, int max_message_bytes,
    const std::shared_ptr<Tls>& tls) {
  ASSIGN_OR_RETURN(Address parsed, ParseAddress(address));
  grpc::ChannelArguments args = ClientChannelArguments(max_message_bytes);
  std::shared_ptr<grpc::ChannelCredentials> credentials =
      tls != nullptr ? tls->ChannelCredentials(parsed, &args)
                     : grpc::InsecureChannelCredentials();
  return grpc::CreateCustomChannel(parsed.GrpcTarget(), credentials, args);
}

absl::StatusOr<std::shared_ptr<GatewaySet>> GatewaySet::Create(
    const std::string& addresses, int max_message_bytes,
    std::shared_ptr<Tls> tls) {
  std::shared_ptr<GatewaySet> set(
      new GatewaySet(max_message_bytes, std::move(tls)));
  for (absl::string_view address : absl::StrSplit(addresses, ',')) {
    if (address.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("'", addresses, "': an empty gateway address"));
    }
    RETURN_IF_ERROR(set->Find(std::string(address)).status());
  }
  return set;
}

std::shared_ptr<GatewaySet> GatewaySet::Of(
    std::shared_ptr<grpc::Channel> channel) {
  std::shared_ptr<GatewaySet> set(new GatewaySet(kMaxMessageBytes, nullptr));
  absl::MutexLock lock(&set->mu_);
  set->gateways_.push_back({"the gateway", std::move(channel)});
  return set;
}

std::string GatewaySet::addresses() const {
  absl::MutexLock lock(&mu_);
  std::vector<std::string> addresses;
  for (const Gateway& g : gateways_) addresses.push_back(g.address);
  return absl::StrJoin(addresses, ",");
}

absl::StatusOr<size_t> GatewaySet::Find(const std::string& address) {
  {
    absl::MutexLock lock(&mu_);
    for (size_t i = 0; i < gateways_.size(); ++i) {
      if (gateways_[i].address == address) return i;
    }
  }
  ASSIGN_OR_RETURN(std::shared_ptr<grpc::Channel> channel,
                   GatewayChannel(address, max_message_bytes_, tls_));
  absl::MutexLock lock(&mu_);
  gateways_.push_back({address, std::move(channel)});
  return gateways_.size() - 1;
}

absl::StatusOr<GatewaySet::Opened> GatewaySet::Open(
    const GatewayClientOptions& options) {
  size_t i, count;
  {
    absl::MutexLock lock(&mu_);
    i = current_;
    count = gateways_.size();
  }
  absl::Status last;
  // Each gateway once, and each redirection once more.
  for (size_t tries = 0; tries < 2 * count + 1; ++tries) {
    Gateway gateway;
    {
      absl::MutexLock lock(&mu_);
      count = gateways_.size();
      gateway = gateways_[i % count];
    }
    grpc::ClientContext context;
    absl::StatusOr<v1::Geometry> geometry =
        OpenVolume(*v1::Gateway::NewStub(gateway.channel), options,
                   count > 1 ? std::min(options.open_timeout, kOpenTryLimit)
                             : options.open_timeout,
                   &context);
    if (geometry.ok()) {
      absl::MutexLock lock(&mu_);
      current_ = i % count;
      return Opened{*std::move(geometry), gateway.channel, gateway.address};
    }
    last = geometry.status();
    if (!absl::IsUnavailable(last) && !absl::IsDeadlineExceeded(last)) {
      return last;  // an answer: no such volume, refused, ...
    }
    const auto& trailers = context.GetServerTrailingMetadata();
    auto leader = trailers.find("dst-leader");
    if (leader != trailers.end()) {
      absl::StatusOr<size_t> next =
          Find(std::string(leader->second.data(), leader->second.size()));
      if (next.ok() && *next != i % count) {
        i = *next;
        continue;
      }
    }
    ++i;
  }
  return last;
}

absl::StatusOr<std::unique_ptr<GatewayClient>> GatewayClient::Open(
    std::shared_ptr<GatewaySet> gateways, const GatewayClientOptions& options) {
  ASSIGN_OR_RETURN(GatewaySet::Opened opened, gateways->Open(options));
  return std::unique_ptr<GatewayClient>(new GatewayClient(
      std::move(gateways), options, std::move(opened.geometry)));
}

GatewayClient::GatewayClient(std::shared_ptr<GatewaySet> gateways,
                             const GatewayClientOptions& options,
                             v1::Geometry geometry)
    : gateways_(std::move(gateways)),
      options_(options),
      geometry_(std::move(geometry)) {
  TransactionSessionOptions session;
  session.name = absl::StrCat("gateway volume ", options.volume);
  session.suspend_timeout = options.suspend_timeout;
  session.request_timeout = options.request_timeout;
  session.max_resends = 3;
  // Reconnect attempts at most 1 s apart: after a gateway failover the
  // new leader serves within a lease TTL, and the wait for the next
  // attempt adds to the client's stall.
  session.max_backoff = absl::Seconds(1);
  session.stream.max_batch_bytes = MaxBatchBytes(geometry_);
  session_ = std::make_unique<TransactionSession>(
      [this](const TransactionStreamOptions& o) { return Connect(o); },
      session);
  session_->Start();
}

absl::StatusOr<std::unique_ptr<TransactionStream>> GatewayClient::Connect(
    const TransactionStreamOptions& stream_options) {
  // Re-negotiate: a gateway that came back, or the one that leads the
  // volume now, must serve the same volume. It may have grown (dstctl
  // resize): this connection keeps the size it was opened with.
  ASSIGN_OR_RETURN(GatewaySet::Opened opened, gateways_->Open(options_));
  const v1::Geometry& geometry = opened.geometry;
  if (geometry.size() < geometry_.size() ||
      geometry.logical_block_size() != geometry_.logical_block_size() ||
      (geometry.read_only() && !geometry_.read_only())) {
    return absl::FailedPreconditionError(absl::StrCat(
        "volume ", options_.volume, " changed (size ", geometry_.size(), " -> ",
        geometry.size(), ", block size ", geometry_.logical_block_size(),
        " -> ", geometry.logical_block_size(), "); not replaying to it"));
  }
  const std::string volume = options_.volume;
  const std::string access = options_.read_only ? "ro" : "rw";
  const std::string lease = options_.lease_token;
  auto channel = opened.channel;
  return std::make_unique<TransactionStream>(
      [channel, volume, access, lease](grpc::ClientContext* ctx,
                                       grpc::CompletionQueue* cq) {
        ctx->AddMetadata("dst-volume", volume);
        ctx->AddMetadata("dst-access", access);
        if (access == "rw") ctx->AddMetadata("dst-lease", lease);
        return PrepareTransactionStream(channel.get(), kGatewayIoMethod, ctx,
                                        cq);
      },
      stream_options);
}

absl::StatusOr<std::unique_ptr<GatewayBackend>> GatewayBackend::Connect(
    const std::string& addresses, const std::string& volume,
    const std::shared_ptr<Tls>& tls) {
  ASSIGN_OR_RETURN(std::shared_ptr<GatewaySet> gateways,
                   GatewaySet::Create(addresses, kMaxMessageBytes, tls));
  return std::unique_ptr<GatewayBackend>(
      new GatewayBackend(volume, std::move(gateways)));
}

absl::StatusOr<std::unique_ptr<VolumeClient>> GatewayBackend::Open(
    const ClientOpenOptions& options) {
  GatewayClientOptions client_options;
  client_options.volume = volume_;
  client_options.read_only = options.read_only;
  client_options.client_id = options.client_id;
  client_options.lease_token = options.lease_token;
  client_options.suspend_timeout = options.timeout;
  ASSIGN_OR_RETURN(std::unique_ptr<GatewayClient> client,
                   GatewayClient::Open(gateways_, client_options));
  return std::unique_ptr<VolumeClient>(std::move(client));
}

std::string GatewayBackend::Where() const {
  return absl::StrCat("on gateway ", gateways_->addresses());
}

}  // namespace dst
