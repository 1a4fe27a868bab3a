// dstctl: the operator CLI. Talks to a gateway's admin RPCs.
//   dstctl --gateway=ADDR[,ADDR...] ...        several: HA mode (the leader)
//   dstctl --gateway=ADDR volumes              one line per volume
//   dstctl --gateway=ADDR status [VOL]         gateway, volumes and replicas
//   dstctl --gateway=ADDR replicas VOL         mirror state with progress
//   dstctl --gateway=ADDR resync VOL start|stop [--rate=BYTES] [--full=ADDR]
//                                              [--wait]
//   dstctl --gateway=ADDR verify VOL           compare replicas by checksum
//   dstctl --gateway=ADDR resize VOL SIZE     grow online (never shrinks)
//   dstctl --gateway=ADDR resolve VOL --source=ADDR
//   dstctl health [ADDR] [--service=NAME]     gRPC health of any dst service
// --json prints the reply as JSON for scripts.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <future>
#include <map>
#include <optional>
#include <string>
#include <thread>

#include <google/protobuf/util/json_util.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/support/byte_buffer.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"

#include "dst/v1/gateway.grpc.pb.h"
#include "services/common/base/address.h"
#include "services/common/base/flags.h"
#include "services/common/rpc/channel_args.h"
#include "services/common/security/tls.h"

namespace dst {
namespace {

int Fail(const std::string& message, int code = 2) {
  std::fprintf(stderr, "dstctl: %s\n", message.c_str());
  return code;
}

std::string HumanBytes(uint64_t bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double value = static_cast<double>(bytes);
  int unit = 0;
  while (value >= 1024 && unit < 4) {
    value /= 1024;
    ++unit;
  }
  return unit == 0 ? absl::StrCat(bytes, " B")
                   : absl::StrFormat("%.1f %s", value, units[unit]);
}

// "[#########...........]  45%" of the bytes copied so far.
std::string ProgressBar(uint64_t done, uint64_t total) {
  constexpr int kWidth = 20;
  const double fraction = total == 0
                              ? 1.0
                              : std::min(1.0, static_cast<double>(done) /
                                                  static_cast<double>(total));
  const int filled = static_cast<int>(fraction * kWidth);
  return absl::StrFormat("[%s%s] %3d%%", std::string(filled, '#'),
                         std::string(kWidth - filled, '.'),
                         static_cast<int>(fraction * 100));
}

void PrintReplicas(const v1::VolumeStatus& v) {
  std::printf(
      "volume %s: %s, generation %016llx, epoch %llu%s%s\n", v.name().c_str(),
      v.state().c_str(), static_cast<unsigned long long>(v.generation()),
      static_cast<unsigned long long>(v.epoch()),
      v.lease_holder().empty() ? "" : ", writer: ", v.lease_holder().c_str());
  if (!v.message().empty()) std::printf("  %s\n", v.message().c_str());
  if (v.resync_paused() || v.resync_rate_bytes() != 0) {
    std::printf("  resync %s%s\n", v.resync_paused() ? "stopped" : "running",
                v.resync_rate_bytes() == 0
                    ? ""
                    : absl::StrCat(", limited to ",
                                   HumanBytes(v.resync_rate_bytes()), "/s")
                          .c_str());
  }
  std::printf("  %-28s %-10s %-11s %10s  %s\n", "REPLICA", "LINK", "SYNC",
              "DIRTY", "RESYNC");
  for (const v1::ReplicaStatus& r : v.replicas()) {
    std::string progress;
    if (r.sync() != "in_sync" && r.resync_total_bytes() > 0) {
      const uint64_t left = r.dirty_bytes();
      const uint64_t total = std::max(r.resync_total_bytes(), left);
      progress =
          absl::StrCat(ProgressBar(total - left, total), " ",
                       HumanBytes(total - left), " of ", HumanBytes(total));
    } else if (r.last_resync_bytes() > 0 && r.last_resync_seconds() > 0) {
      progress = absl::StrFormat(
          "last %s in %.2f s (%s/s)", HumanBytes(r.last_resync_bytes()),
          r.last_resync_seconds(),
          HumanBytes(
              static_cast<uint64_t>(static_cast<double>(r.last_resync_bytes()) /
                                    r.last_resync_seconds())));
    } else if (r.resync_copied_bytes() > 0) {
      progress = absl::StrCat("copied ", HumanBytes(r.resync_copied_bytes()));
    }
    std::printf("  %-28s %-10s %-11s %10s  %s\n", r.address().c_str(),
                r.state().c_str(), r.sync().c_str(),
                HumanBytes(r.dirty_bytes()).c_str(), progress.c_str());
    if (!r.last_error().empty() && r.state() != "connected") {
      std::printf("    last error: %s\n", r.last_error().c_str());
    }
    if (r.sync() != "in_sync" && !r.sync_reason().empty()) {
      std::printf("    out of sync: %s\n", r.sync_reason().c_str());
    }
  }
}

bool AllInSync(const v1::VolumeStatus& v) {
  for (const v1::ReplicaStatus& r : v.replicas()) {
    if (r.sync() != "in_sync") return false;
  }
  return true;
}

int PrintJson(const google::protobuf::Message& message) {
  std::string json;
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  options.preserve_proto_field_names = true;
  (void)google::protobuf::util::MessageToJsonString(message, &json, options);
  std::fputs(json.c_str(), stdout);
  return 0;
}

void PrintVolumes(
    const google::protobuf::RepeatedPtrField<v1::VolumeStatus>& volumes,
    bool replicas) {
  std::printf("%-16s %-12s %12s %8s %12s %8s\n", "VOLUME", "STATE", "SIZE",
              "REPLICAS", "TRANSACTIONS", "FAILED");
  for (const v1::VolumeStatus& v : volumes) {
    std::printf("%-16s %-12s %12s %8d %12llu %8llu\n", v.name().c_str(),
                v.state().c_str(), HumanBytes(v.geometry().size()).c_str(),
                v.replicas_size(),
                static_cast<unsigned long long>(v.transactions_total()),
                static_cast<unsigned long long>(v.transactions_failed()));
    if (!replicas) continue;
    if (!v.message().empty()) std::printf("  %s\n", v.message().c_str());
    if (!v.leader().empty()) {
      std::printf("  leader: %s (%s), epoch %llu, lease renewed %llu ms ago\n",
                  v.leader().c_str(), v.leader_address().c_str(),
                  static_cast<unsigned long long>(v.epoch()),
                  static_cast<unsigned long long>(v.lease_age_ms()));
    }
    for (const v1::ReplicaStatus& r : v.replicas()) {
      std::printf(
          "  replica %-24s %-10s %-11s dirty %-10s in-flight %llu%s%s\n",
          r.address().c_str(), r.state().c_str(), r.sync().c_str(),
          HumanBytes(r.dirty_bytes()).c_str(),
          static_cast<unsigned long long>(r.in_flight()),
          r.last_error().empty() ? "" : "  last error: ",
          r.last_error().c_str());
    }
  }
}

// grpc.health.v1.Health/Check. The two messages are one field each, so they
// are encoded by hand rather than generated: HealthCheckRequest is
// {1: service (string)}, HealthCheckResponse {1: status (enum)}.
// Returns "SERVING", "NOT_SERVING", "UNKNOWN" or "SERVICE_UNKNOWN".
absl::StatusOr<std::string> CheckHealth(
    const std::shared_ptr<grpc::Channel>& channel, const std::string& service,
    int timeout_seconds) {
  if (service.size() > 127)
    return absl::InvalidArgumentError("--service is too long");
  std::string request;
  if (!service.empty()) {
    request.push_back(0x0a);  // field 1, length-delimited
    request.push_back(static_cast<char>(service.size()));
    request += service;
  }
  grpc::Slice slice(request);
  grpc::ByteBuffer request_buffer(&slice, 1);
  grpc::ByteBuffer reply_buffer;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::seconds(timeout_seconds));
  grpc::GenericStub stub(channel);
  std::promise<grpc::Status> done;
  stub.UnaryCall(
      &context, "/grpc.health.v1.Health/Check", grpc::StubOptions(),
      &request_buffer, &reply_buffer,
      [&done](const grpc::Status& status) { done.set_value(status); });
  grpc::Status status = done.get_future().get();
  if (!status.ok()) {
    if (status.error_code() == grpc::StatusCode::NOT_FOUND) {
      return std::string("SERVICE_UNKNOWN");
    }
    return absl::UnavailableError(status.error_message());
  }
  std::vector<grpc::Slice> slices;
  if (!reply_buffer.Dump(&slices).ok()) {
    return absl::InternalError("unreadable health reply");
  }
  std::string reply;
  for (const grpc::Slice& s : slices) {
    reply.append(reinterpret_cast<const char*>(s.begin()), s.size());
  }
  int value = 0;  // an absent field is the enum's zero, UNKNOWN
  if (reply.size() == 2 && reply[0] == 0x08) {
    value = static_cast<unsigned char>(reply[1]);
  } else if (!reply.empty()) {
    return absl::InternalError("unexpected health reply");
  }
  switch (value) {
    case 1:
      return std::string("SERVING");
    case 2:
      return std::string("NOT_SERVING");
    case 3:
      return std::string("SERVICE_UNKNOWN");
    default:
      return std::string("UNKNOWN");
  }
}

using ChannelTo =
    std::function<std::shared_ptr<grpc::Channel>(const std::string&)>;

grpc::Status StatusAt(const std::shared_ptr<grpc::Channel>& channel,
                      const std::string& volume, int timeout,
                      v1::StatusReply* reply) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::seconds(timeout));
  v1::StatusRequest request;
  request.set_volume(volume);
  return v1::Gateway::NewStub(channel)->Status(&context, request, reply);
}

// HA mode: the gateway of `gateways` (or one they name) that leads
// `volume`.
absl::StatusOr<std::string> LeaderOf(const std::string& volume,
                                     std::vector<std::string> gateways,
                                     const ChannelTo& channel_to, int timeout) {
  std::string why = "no gateway answered";
  for (size_t i = 0; i < gateways.size() && i < 8; ++i) {
    v1::StatusReply reply;
    grpc::Status status =
        StatusAt(channel_to(gateways[i]), volume, timeout, &reply);
    if (!status.ok()) {
      why = absl::StrCat(gateways[i], ": ", status.error_message());
      continue;
    }
    const v1::VolumeStatus& v = reply.volumes(0);
    if (v.state() != "standby") return gateways[i];
    why = absl::StrCat(gateways[i], ": ", v.message());
    if (!v.leader_address().empty() &&
        std::find(gateways.begin(), gateways.end(), v.leader_address()) ==
            gateways.end() &&
        ParseAddress(v.leader_address()).ok()) {
      gateways.push_back(v.leader_address());
    }
  }
  return absl::UnavailableError(
      absl::StrCat("no gateway leads volume ", volume, " (", why, ")"));
}

// `volumes` or `status` across several gateways: each volume as the
// gateway leading it reports it (as a standby does, when none leads it).
int AllGateways(const std::vector<std::string>& gateways,
                const ChannelTo& channel_to, bool status, bool json,
                int timeout) {
  v1::StatusReply merged;
  std::map<std::string, int> index;  // volume -> position in merged
  int reached = 0;
  for (const std::string& gateway : gateways) {
    v1::StatusReply reply;
    grpc::Status s = StatusAt(channel_to(gateway), "", timeout, &reply);
    if (!s.ok()) {
      std::fprintf(stderr, "dstctl: cannot reach the gateway at %s: %s\n",
                   gateway.c_str(), s.error_message().c_str());
      continue;
    }
    ++reached;
    if (status && !json) {
      std::printf("gateway %s: version %s, up %llu s\n", gateway.c_str(),
                  reply.version().c_str(),
                  static_cast<unsigned long long>(reply.uptime_seconds()));
    }
    for (const v1::VolumeStatus& v : reply.volumes()) {
      auto [it, added] = index.emplace(v.name(), merged.volumes_size());
      if (added) {
        *merged.add_volumes() = v;
      } else if (merged.volumes(it->second).state() == "standby") {
        *merged.mutable_volumes(it->second) = v;
      }
    }
  }
  if (reached == 0) return Fail("no gateway could be reached", 1);
  if (json) return PrintJson(merged);
  PrintVolumes(merged.volumes(), status);
  return 0;
}

int Main(int argc, char** argv) {
  Flags flags(
      "dstctl",
      "Operator CLI for a dst gateway.\n\nCommands:\n"
      "  volumes                 list the volumes and their state\n"
      "  status [VOLUME]         gateway status with volumes and replicas\n"
      "  replicas VOLUME         mirror state: sync, dirty bytes, resync "
      "progress\n"
      "  resync VOLUME start     start (or resume) resync; --rate, --full, "
      "--wait\n"
      "  resync VOLUME stop      pause resync (writes still mark regions "
      "dirty)\n"
      "  verify VOLUME           compare the in-sync replicas by SHA-256, "
      "region\n"
      "                          by region; exit 3 when they differ\n"
      "  resize VOLUME SIZE      grow the volume to SIZE bytes (K/M/G/T "
      "suffixes)\n"
      "                          while I/O goes on; shrinking is refused\n"
      "  resolve VOLUME --source=ADDR\n"
      "                          keep ADDR's data (split brain, or a wait "
      "for a\n"
      "                          stale replica); the others are fully "
      "resynced\n"
      "  health [ADDR]           gRPC health of a gateway or an exporter "
      "(ADDR,\n"
      "                          default --gateway; --service=NAME): exit 0 "
      "when\n"
      "                          SERVING, 1 otherwise (container "
      "healthchecks)",
      {
          {"gateway", "ADDR[,ADDR...]",
           "gateway address (default 127.0.0.1:7000); several in HA mode: "
           "each command goes to the gateway leading its volume"},
          {"json", "", "print machine-readable JSON"},
          {"timeout", "SECONDS",
           "deadline of each call (default 5; verify: 3600)"},
          {"rate", "BYTES",
           "resync: throttle in bytes/s, K/M/G suffixes (0: unthrottled)"},
          {"full", "ADDR", "resync start: copy all of replica ADDR"},
          {"wait", "",
           "resync start: show progress until every replica is "
           "in sync"},
          {"source", "ADDR", "resolve: the replica whose data is kept"},
          {"service", "NAME",
           "health: the service to ask about (default: the whole server)"},
          {"tls", "MODE",
           "off, on (TLS on TCP) or require (default: on with --tls-ca or "
           "--tls-cert)"},
          {"tls-cert", "FILE", "client certificate (mutual TLS)"},
          {"tls-key", "FILE", "private key of --tls-cert"},
          {"tls-ca", "FILE", "CA that signed the gateway's certificate"},
          {"tls-server-name", "NAME",
           "name in the gateway's certificate (default: the host; localhost "
           "for unix:)"},
          {"help", "", "print this help"},
      });
  if (std::optional<int> exit_code =
          flags.ParseCommandLine(argc, argv, /*positional=*/true)) {
    return *exit_code;
  }
  if (flags.positional().empty())
    return Fail(absl::StrCat("no command\n", flags.Usage()));
  const std::string command = flags.positional()[0];
  const bool health_of_arg =
      command == "health" && flags.positional().size() == 2;
  // --gateway may list several gateways (HA mode): each command goes to
  // the one leading its volume; volumes and status ask them all.
  std::vector<std::string> gateways =
      absl::StrSplit(health_of_arg ? flags.positional()[1]
                                   : flags.Get("gateway", "127.0.0.1:7000"),
                     ',');
  for (const std::string& g : gateways) {
    if (absl::StatusOr<Address> a = ParseAddress(g); !a.ok()) {
      return Fail(absl::StrCat("--gateway=", g, ": ", a.status().message()));
    }
  }
  if (command == "health" && gateways.size() > 1) {
    return Fail("health checks one address");
  }
  int timeout = command == "verify" ? 3600 : 5;
  if (flags.Has("timeout") &&
      (!absl::SimpleAtoi(flags.Get("timeout"), &timeout) || timeout < 1)) {
    return Fail("--timeout must be a positive number of seconds");
  }
  TlsOptions tls_options;
  tls_options.cert = flags.Get("tls-cert");
  tls_options.key = flags.Get("tls-key");
  tls_options.ca = flags.Get("tls-ca");
  tls_options.server_name = flags.Get("tls-server-name");
  absl::StatusOr<TlsMode> mode =
      TlsModeOrDefault(flags.Get("tls"), tls_options, /*server=*/false);
  if (!mode.ok()) {
    return Fail(absl::StrCat("--tls: ", mode.status().message()));
  }
  tls_options.mode = *mode;
  absl::StatusOr<std::shared_ptr<Tls>> tls =
      Tls::Load(tls_options, /*server=*/false);
  if (!tls.ok()) return Fail(std::string(tls.status().message()));
  auto channel_to = [&tls](const std::string& gateway) {
    const Address address = *ParseAddress(gateway);
    grpc::ChannelArguments channel_args = ClientChannelArguments(4 << 20);
    auto credentials = (*tls)->ChannelCredentials(address, &channel_args);
    return grpc::CreateCustomChannel(address.GrpcTarget(), credentials,
                                     channel_args);
  };
  const std::vector<std::string>& args = flags.positional();
  if (gateways.size() > 1 && (command == "volumes" || command == "status") &&
      args.size() == 1) {
    return AllGateways(gateways, channel_to, command == "status",
                       flags.Has("json"), timeout);
  }
  std::string gateway = gateways[0];
  if (gateways.size() > 1) {
    if (args.size() < 2) return Fail(absl::StrCat(command, ": no volume"));
    absl::StatusOr<std::string> leader =
        LeaderOf(args[1], gateways, channel_to, timeout);
    if (!leader.ok()) return Fail(std::string(leader.status().message()), 1);
    gateway = *leader;
  }
  auto channel = channel_to(gateway);
  auto stub = v1::Gateway::NewStub(channel);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::seconds(timeout));
  auto fresh = [timeout](grpc::ClientContext* c) {
    c->set_deadline(std::chrono::system_clock::now() +
                    std::chrono::seconds(timeout));
  };
  const bool json = flags.Has("json");
  auto unreachable = [&](const grpc::Status& status) {
    if (status.error_code() == grpc::StatusCode::UNAVAILABLE ||
        status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
      const bool tls_hint =
          status.error_message().find("Socket closed") != std::string::npos ||
          status.error_message().find("handshake") != std::string::npos;
      return Fail(absl::StrCat("cannot reach the gateway at ", gateway, ": ",
                               status.error_message(),
                               tls_hint ? " (does it require TLS? see "
                                          "--tls-ca and --tls-cert)"
                                        : ""),
                  1);
    }
    return Fail(absl::StrCat(command, ": ", status.error_message()), 1);
  };
  if (command == "volumes") {
    if (flags.positional().size() > 1) return Fail("volumes takes no argument");
    v1::ListVolumesReply reply;
    grpc::Status status =
        stub->ListVolumes(&context, v1::ListVolumesRequest(), &reply);
    if (!status.ok()) return unreachable(status);
    if (json) return PrintJson(reply);
    PrintVolumes(reply.volumes(), false);
    return 0;
  }
  if (command == "status") {
    if (flags.positional().size() > 2)
      return Fail("status takes at most one volume");
    v1::StatusRequest request;
    if (flags.positional().size() == 2)
      request.set_volume(flags.positional()[1]);
    v1::StatusReply reply;
    grpc::Status status = stub->Status(&context, request, &reply);
    if (!status.ok()) return unreachable(status);
    if (json) return PrintJson(reply);
    std::printf("gateway %s: version %s, up %llu s\n", gateway.c_str(),
                reply.version().c_str(),
                static_cast<unsigned long long>(reply.uptime_seconds()));
    PrintVolumes(reply.volumes(), true);
    return 0;
  }
  if (command == "health") {
    if (args.size() > 2) return Fail("usage: health [ADDR] [--service=NAME]");
    absl::StatusOr<std::string> health =
        CheckHealth(channel, flags.Get("service"), timeout);
    if (!health.ok()) {
      return Fail(absl::StrCat("cannot reach ", gateway, ": ",
                               health.status().message()),
                  1);
    }
    std::printf("%s\n", health->c_str());
    return *health == "SERVING" ? 0 : 1;
  }
  if (command == "replicas") {
    if (args.size() != 2) return Fail("usage: replicas VOLUME");
    v1::StatusRequest request;
    request.set_volume(args[1]);
    v1::StatusReply reply;
    grpc::Status status = stub->Status(&context, request, &reply);
    if (!status.ok()) return unreachable(status);
    if (json) return PrintJson(reply.volumes(0));
    PrintReplicas(reply.volumes(0));
    return 0;
  }
  if (command == "resync") {
    if (args.size() != 3 || (args[2] != "start" && args[2] != "stop")) {
      return Fail(
          "usage: resync VOLUME start|stop [--rate=BYTES] "
          "[--full=ADDR] [--wait]");
    }
    v1::ResyncRequest request;
    request.set_volume(args[1]);
    request.set_stop(args[2] == "stop");
    if (flags.Has("rate")) {
      uint64_t rate = 0;
      if (absl::Status s = ParseBytes("rate", flags.Get("rate"), &rate);
          !s.ok()) {
        return Fail(std::string(s.message()));
      }
      request.set_rate_bytes(rate);
    }
    if (flags.Has("full")) {
      if (request.stop()) return Fail("--full goes with resync start");
      request.set_full(true);
      request.set_replica(flags.Get("full"));
    }
    v1::VolumeStatus reply;
    grpc::Status status = stub->Resync(&context, request, &reply);
    if (!status.ok()) return unreachable(status);
    if (json && !flags.Has("wait")) return PrintJson(reply);
    if (!flags.Has("wait") || request.stop()) {
      PrintReplicas(reply);
      return 0;
    }
    // Redraw the progress until every replica is in sync.
    const bool tty = isatty(STDOUT_FILENO);
    for (;;) {
      grpc::ClientContext poll;
      fresh(&poll);
      v1::StatusRequest status_request;
      status_request.set_volume(args[1]);
      v1::StatusReply current;
      status = stub->Status(&poll, status_request, &current);
      if (!status.ok()) return unreachable(status);
      const v1::VolumeStatus& v = current.volumes(0);
      if (tty) std::printf("\033[H\033[J");
      PrintReplicas(v);
      std::fflush(stdout);
      if (AllInSync(v)) return 0;
      if (v.state() == "diverged" || v.state() == "fenced") return 1;
      std::this_thread::sleep_for(std::chrono::milliseconds(tty ? 500 : 2000));
    }
  }
  if (command == "verify") {
    if (args.size() != 2) return Fail("usage: verify VOLUME");
    v1::VerifyRequest request;
    request.set_volume(args[1]);
    v1::VerifyReply reply;
    grpc::Status status = stub->Verify(&context, request, &reply);
    if (!status.ok()) return unreachable(status);
    if (json) {
      PrintJson(reply);
      return reply.differing_size() == 0 ? 0 : 3;
    }
    std::printf("compared %s on %d in-sync replica(s)",
                HumanBytes(reply.compared_bytes()).c_str(),
                reply.replicas_size());
    if (reply.replicas_size() < 2) {
      std::printf(": fewer than two, nothing to compare\n");
      return 0;
    }
    if (reply.differing_size() == 0) {
      std::printf(": identical\n");
      return 0;
    }
    std::printf(": %d region(s) differ\n", reply.differing_size());
    for (const v1::Range& range : reply.differing()) {
      std::printf("  offset %llu length %llu\n",
                  static_cast<unsigned long long>(range.offset()),
                  static_cast<unsigned long long>(range.length()));
    }
    std::printf(
        "repair: dstctl resync %s start --full=ADDR (the replica to "
        "overwrite)\n",
        args[1].c_str());
    return 3;
  }
  if (command == "resize") {
    if (args.size() != 3) return Fail("usage: resize VOLUME SIZE");
    v1::ResizeRequest request;
    request.set_volume(args[1]);
    uint64_t size = 0;
    if (absl::Status s = ParseBytes("size", args[2], &size); !s.ok()) {
      return Fail(std::string(s.message()));
    }
    if (size == 0) return Fail("size must be positive");
    request.set_size(size);
    v1::VolumeStatus reply;
    grpc::Status status = stub->Resize(&context, request, &reply);
    if (!status.ok()) return unreachable(status);
    if (json) return PrintJson(reply);
    std::printf("volume %s is %s (%llu bytes)\n", args[1].c_str(),
                HumanBytes(reply.geometry().size()).c_str(),
                static_cast<unsigned long long>(reply.geometry().size()));
    PrintReplicas(reply);
    return 0;
  }
  if (command == "resolve") {
    if (args.size() != 2 || !flags.Has("source")) {
      return Fail("usage: resolve VOLUME --source=ADDR");
    }
    v1::ResolveRequest request;
    request.set_volume(args[1]);
    request.set_source(flags.Get("source"));
    v1::VolumeStatus reply;
    grpc::Status status = stub->Resolve(&context, request, &reply);
    if (!status.ok()) return unreachable(status);
    if (json) return PrintJson(reply);
    std::printf(
        "kept the data of %s; the other replicas are resynced from "
        "it\n",
        request.source().c_str());
    PrintReplicas(reply);
    return 0;
  }
  return Fail(absl::StrCat("unknown command '", command, "'\n", flags.Usage()));
}

}  // namespace
}  // namespace dst

int main(int argc, char** argv) { return dst::Main(argc, argv); }
