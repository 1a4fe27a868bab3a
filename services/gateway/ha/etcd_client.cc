// A client of etcd's v3 API: see etcd_client.h.
#include "services/gateway/ha/etcd_client.h"

#include <utility>

#include "absl/strings/str_cat.h"

#include "etcd/etcdserver/api/v3election/v3electionpb/v3election.grpc.pb.h"
#include "etcd/etcdserver/etcdserverpb/rpc.grpc.pb.h"
#include "services/common/base/address.h"
#include "services/common/base/status.h"
#include "services/common/security/tls.h"

namespace dst {

namespace {

using Channel = std::shared_ptr<grpc::Channel>;

absl::Status Failed(const std::string& what, const grpc::Status& status) {
  absl::Status s = FromGrpcStatus(status);
  return absl::Status(s.code(),
                      absl::StrCat("etcd: ", what, ": ", s.message()));
}

}  // namespace

absl::StatusOr<std::unique_ptr<EtcdClient>> EtcdClient::Create(
    Options options) {
  if (options.endpoints.empty()) {
    return absl::InvalidArgumentError("etcd: no endpoints");
  }
  for (const std::string& endpoint : options.endpoints) {
    if (endpoint.empty()) {
      return absl::InvalidArgumentError("etcd: an empty endpoint");
    }
  }
  return std::unique_ptr<EtcdClient>(new EtcdClient(std::move(options)));
}

EtcdClient::EtcdClient(Options options) : options_(std::move(options)) {
  // An etcd member that is back must be found within a lease's time, not
  // after gRPC's default reconnect backoff (1 s doubling up to 120 s).
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  for (const std::string& endpoint : options_.endpoints) {
    grpc::ChannelArguments endpoint_args = args;
    std::shared_ptr<grpc::ChannelCredentials> credentials =
        grpc::InsecureChannelCredentials();
    absl::StatusOr<Address> address = ParseAddress(endpoint);
    if (options_.tls != nullptr && address.ok() &&
        options_.tls->Applies(*address)) {
      credentials = options_.tls->ChannelCredentials(*address, &endpoint_args);
    }
    channels_.push_back(
        grpc::CreateCustomChannel(endpoint, credentials, endpoint_args));
  }
}

grpc::Status EtcdClient::Call(
    absl::Time deadline,
    const std::function<grpc::Status(const Channel&, grpc::ClientContext*)>&
        call) {
  size_t first;
  {
    absl::MutexLock lock(&mu_);
    first = preferred_;
  }
  grpc::Status status(grpc::StatusCode::DEADLINE_EXCEEDED, "no endpoint tried");
  // Each endpoint gets an equal share of what is left, the last all of it.
  for (size_t tried = 0; tried < channels_.size(); ++tried) {
    const size_t i = (first + tried) % channels_.size();
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) break;
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(
        absl::Now() + left / static_cast<int64_t>(channels_.size() - tried)));
    status = call(channels_[i], &context);
    if (status.error_code() != grpc::StatusCode::UNAVAILABLE &&
        status.error_code() != grpc::StatusCode::DEADLINE_EXCEEDED) {
      absl::MutexLock lock(&mu_);
      preferred_ = i;
      return status;
    }
  }
  return status;
}

template <typename Service, typename Request, typename Response>
grpc::Status EtcdClient::Unary(
    grpc::Status (Service::Stub::*method)(grpc::ClientContext*, const Request&,
                                          Response*),
    const Request& request, Response* response) {
  return Call(absl::Now() + options_.call_timeout,
              [&](const Channel& channel, grpc::ClientContext* context) {
                return (Service::NewStub(channel).get()->*method)(
                    context, request, response);
              });
}

absl::StatusOr<int64_t> EtcdClient::GrantLease(absl::Duration ttl) {
  etcdserverpb::LeaseGrantRequest request;
  request.set_ttl(absl::ToInt64Seconds(absl::Ceil(ttl, absl::Seconds(1))));
  etcdserverpb::LeaseGrantResponse response;
  grpc::Status status = Unary<etcdserverpb::Lease>(
      &etcdserverpb::Lease::Stub::LeaseGrant, request, &response);
  if (!status.ok()) return Failed("grant a lease", status);
  if (!response.error().empty()) {
    return absl::UnavailableError(
        absl::StrCat("etcd: grant a lease: ", response.error()));
  }
  return response.id();
}

absl::StatusOr<absl::Duration> EtcdClient::KeepAlive(int64_t lease) {
  etcdserverpb::LeaseKeepAliveResponse response;
  grpc::Status status =
      Call(absl::Now() + options_.call_timeout,
           [&](const Channel& channel, grpc::ClientContext* context) {
             auto stream =
                 etcdserverpb::Lease::NewStub(channel)->LeaseKeepAlive(context);
             etcdserverpb::LeaseKeepAliveRequest request;
             request.set_id(lease);
             if (!stream->Write(request) || !stream->Read(&response)) {
               return stream->Finish();  // why it broke, within the deadline
             }
             stream->WritesDone();
             context->TryCancel();  // one renewal: the stream is done with
             stream->Finish();
             return grpc::Status::OK;
           });
  if (!status.ok()) return Failed("renew a lease", status);
  if (response.ttl() <= 0) {
    return absl::NotFoundError(
        absl::StrCat("etcd: lease ", absl::Hex(lease), " has expired"));
  }
  return absl::Seconds(response.ttl());
}

absl::Status EtcdClient::RevokeLease(int64_t lease) {
  etcdserverpb::LeaseRevokeRequest request;
  request.set_id(lease);
  etcdserverpb::LeaseRevokeResponse response;
  grpc::Status status = Unary<etcdserverpb::Lease>(
      &etcdserverpb::Lease::Stub::LeaseRevoke, request, &response);
  return status.ok() ? absl::OkStatus() : Failed("revoke a lease", status);
}

absl::StatusOr<EtcdClient::Leadership> EtcdClient::Campaign(
    const std::string& name, int64_t lease, const std::string& value,
    absl::Time deadline) {
  v3electionpb::CampaignRequest request;
  request.set_name(name);
  request.set_lease(lease);
  request.set_value(value);
  v3electionpb::CampaignResponse response;
  grpc::Status status =
      Call(deadline, [&](const Channel& channel, grpc::ClientContext* context) {
        return v3electionpb::Election::NewStub(channel)->Campaign(
            context, request, &response);
      });
  if (!status.ok()) return Failed(absl::StrCat("campaign in ", name), status);
  Leadership leadership;
  leadership.name = response.leader().name();
  leadership.key = response.leader().key();
  leadership.revision = response.leader().rev();
  leadership.lease = response.leader().lease();
  return leadership;
}

absl::StatusOr<std::optional<EtcdClient::Leader>> EtcdClient::CurrentLeader(
    const std::string& name) {
  v3electionpb::LeaderRequest request;
  request.set_name(name);
  v3electionpb::LeaderResponse response;
  grpc::Status status = Unary<v3electionpb::Election>(
      &v3electionpb::Election::Stub::Leader, request, &response);
  // etcd answers "election: no leader" as NOT_FOUND (or UNKNOWN before
  // 3.4.4).
  if (status.error_code() == grpc::StatusCode::NOT_FOUND ||
      (status.error_code() == grpc::StatusCode::UNKNOWN &&
       status.error_message().find("no leader") != std::string::npos)) {
    return std::nullopt;
  }
  if (!status.ok()) {
    return Failed(absl::StrCat("the leader of ", name), status);
  }
  Leader leader;
  leader.key = response.kv().key();
  leader.value = response.kv().value();
  leader.revision = response.kv().create_revision();
  leader.lease = response.kv().lease();
  return leader;
}

absl::Status EtcdClient::Resign(const Leadership& leadership) {
  v3electionpb::ResignRequest request;
  v3electionpb::LeaderKey* key = request.mutable_leader();
  key->set_name(leadership.name);
  key->set_key(leadership.key);
  key->set_rev(leadership.revision);
  key->set_lease(leadership.lease);
  v3electionpb::ResignResponse response;
  grpc::Status status = Unary<v3electionpb::Election>(
      &v3electionpb::Election::Stub::Resign, request, &response);
  return status.ok()
             ? absl::OkStatus()
             : Failed(absl::StrCat("resign from ", leadership.name), status);
}

absl::Status EtcdClient::PutIfLeader(const Leadership& leadership,
                                     const std::string& key,
                                     const std::string& value,
                                     std::optional<int64_t> mod_revision) {
  etcdserverpb::TxnRequest request;
  etcdserverpb::Compare* held = request.add_compare();
  held->set_key(leadership.key);
  held->set_target(etcdserverpb::Compare::CREATE);
  held->set_result(etcdserverpb::Compare::EQUAL);
  held->set_create_revision(leadership.revision);
  if (mod_revision) {
    etcdserverpb::Compare* unchanged = request.add_compare();
    unchanged->set_key(key);
    unchanged->set_target(etcdserverpb::Compare::MOD);
    unchanged->set_result(etcdserverpb::Compare::EQUAL);
    unchanged->set_mod_revision(*mod_revision);
  }
  etcdserverpb::PutRequest* put = request.add_success()->mutable_request_put();
  put->set_key(key);
  put->set_value(value);
  etcdserverpb::TxnResponse response;
  grpc::Status status =
      Unary<etcdserverpb::KV>(&etcdserverpb::KV::Stub::Txn, request, &response);
  if (!status.ok()) return Failed(absl::StrCat("put ", key), status);
  if (!response.succeeded()) {
    return absl::FailedPreconditionError(
        absl::StrCat("etcd: put ", key, ": the leadership of ", leadership.name,
                     " at revision ", leadership.revision, " no longer holds",
                     mod_revision ? ", or the key changed" : ""));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::optional<EtcdClient::Value>> EtcdClient::Get(
    const std::string& key) {
  etcdserverpb::RangeRequest request;
  request.set_key(key);
  etcdserverpb::RangeResponse response;
  grpc::Status status = Unary<etcdserverpb::KV>(&etcdserverpb::KV::Stub::Range,
                                                request, &response);
  if (!status.ok()) return Failed(absl::StrCat("get ", key), status);
  if (response.kvs_size() == 0) return std::nullopt;
  return Value{response.kvs(0).value(), response.kvs(0).mod_revision()};
}

}  // namespace dst
