// dstctl: the operator CLI. Talks to a gateway's admin RPCs.
//   dstctl --gateway=ADDR volumes        one line per volume
//   dstctl --gateway=ADDR status [VOL]   gateway, volumes and replicas
// --json prints the reply as JSON for scripts.
#include <cstdio>
#include <optional>
#include <string>

#include <google/protobuf/util/json_util.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

#include "dst/v1/gateway.grpc.pb.h"
#include "services/common/address.h"
#include "services/common/flags.h"
#include "services/common/server.h"

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
    for (const v1::ReplicaStatus& r : v.replicas()) {
      std::printf("  replica %-24s %-10s in-flight %llu%s%s\n",
                  r.address().c_str(), r.state().c_str(),
                  static_cast<unsigned long long>(r.in_flight()),
                  r.last_error().empty() ? "" : "  last error: ",
                  r.last_error().c_str());
    }
  }
}

int Main(int argc, char** argv) {
  Flags flags(
      "dstctl",
      "Operator CLI for a dst gateway.\n\nCommands:\n"
      "  volumes          list the volumes and their state\n"
      "  status [VOLUME]  gateway status with volumes and replicas",
      {
          {"gateway", "ADDR", "gateway address (default 127.0.0.1:7000)"},
          {"json", "", "print machine-readable JSON"},
          {"timeout", "SECONDS", "deadline of each call (default 5)"},
          {"help", "", "print this help"},
      });
  if (std::optional<int> exit_code =
          flags.ParseCommandLine(argc, argv, /*positional=*/true)) {
    return *exit_code;
  }
  if (flags.positional().empty())
    return Fail(absl::StrCat("no command\n", flags.Usage()));
  const std::string command = flags.positional()[0];
  const std::string gateway = flags.Get("gateway", "127.0.0.1:7000");
  absl::StatusOr<Address> address = ParseAddress(gateway);
  if (!address.ok()) {
    return Fail(
        absl::StrCat("--gateway=", gateway, ": ", address.status().message()));
  }
  int timeout = 5;
  if (flags.Has("timeout") &&
      (!absl::SimpleAtoi(flags.Get("timeout"), &timeout) || timeout < 1)) {
    return Fail("--timeout must be a positive number of seconds");
  }
  auto channel = grpc::CreateCustomChannel(address->GrpcTarget(),
                                           grpc::InsecureChannelCredentials(),
                                           ClientChannelArguments(4 << 20));
  auto stub = v1::Gateway::NewStub(channel);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::seconds(timeout));
  const bool json = flags.Has("json");
  auto unreachable = [&](const grpc::Status& status) {
    if (status.error_code() == grpc::StatusCode::UNAVAILABLE ||
        status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
      return Fail(absl::StrCat("cannot reach the gateway at ", gateway, ": ",
                               status.error_message()),
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
  return Fail(absl::StrCat("unknown command '", command, "'\n", flags.Usage()));
}

}  // namespace
}  // namespace dst

int main(int argc, char** argv) { return dst::Main(argc, argv); }
