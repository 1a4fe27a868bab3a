// Strict YAML -> GatewayConfig: see config.h. The mapping walks the proto
// descriptor, so a key added to config.proto is accepted with no code here;
// semantic checks (addresses, ranges, uniqueness) follow in Validate().
#include "services/gateway/config.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>

#include <yaml-cpp/yaml.h>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/message.h"

#include "services/common/base/address.h"
#include "services/common/base/status.h"
#include "services/common/security/tls.h"

namespace dst {
namespace {

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;

absl::Status PathError(const std::string& path, absl::string_view what) {
  return absl::InvalidArgumentError(
      absl::StrCat(path.empty() ? "(top level)" : path, ": ", what));
}

std::string Describe(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Map:
      return "a mapping";
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Null:
      return "nothing";
    default:
      return absl::StrCat("'", node.Scalar(), "'");
  }
}

absl::Status FillMessage(const YAML::Node& node, const std::string& path,
                         Message* message);

template <typename T>
absl::Status ParseUnsigned(const YAML::Node& node, const std::string& path,
                           T* out) {
  const std::string& text = node.Scalar();
  if (text.empty() || text.find_first_not_of("0123456789") != text.npos ||
      !absl::SimpleAtoi(text, out)) {
    return PathError(
        path, absl::StrCat("expected a whole number, not ", Describe(node)));
  }
  return absl::OkStatus();
}

// Sets one value of `field` (appending when repeated) from `node`.
absl::Status FillValue(const YAML::Node& node, const std::string& path,
                       Message* message, const FieldDescriptor* field) {
  const Reflection* reflection = message->GetReflection();
  const bool repeated = field->is_repeated();
  if (field->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
    Message* child = repeated ? reflection->AddMessage(message, field)
                              : reflection->MutableMessage(message, field);
    return FillMessage(node, path, child);
  }
  if (!node.IsScalar()) {
    return PathError(path,
                     absl::StrCat("expected a value, not ", Describe(node)));
  }
  switch (field->cpp_type()) {
    case FieldDescriptor::CPPTYPE_STRING:
      if (repeated) {
        reflection->AddString(message, field, node.Scalar());
      } else {
        reflection->SetString(message, field, node.Scalar());
      }
      return absl::OkStatus();
    case FieldDescriptor::CPPTYPE_BOOL: {
      const std::string& text = node.Scalar();
      if (text != "true" && text != "false") {
        return PathError(
            path, absl::StrCat("expected true or false, not ", Describe(node)));
      }
      if (repeated) {
        reflection->AddBool(message, field, text == "true");
      } else {
        reflection->SetBool(message, field, text == "true");
      }
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_UINT32: {
      uint32_t value = 0;
      RETURN_IF_ERROR(ParseUnsigned(node, path, &value));
      if (repeated) {
        reflection->AddUInt32(message, field, value);
      } else {
        reflection->SetUInt32(message, field, value);
      }
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_UINT64: {
      uint64_t value = 0;
      RETURN_IF_ERROR(ParseUnsigned(node, path, &value));
      if (repeated) {
        reflection->AddUInt64(message, field, value);
      } else {
        reflection->SetUInt64(message, field, value);
      }
      return absl::OkStatus();
    }
    default:
      // config.proto uses only the types above; a new type needs a case.
      return PathError(path, "this key's type is not supported in files");
  }
}

absl::Status FillMessage(const YAML::Node& node, const std::string& path,
                         Message* message) {
  if (!node.IsMap()) {
    return PathError(path,
                     absl::StrCat("expected a mapping, not ", Describe(node)));
  }
  const google::protobuf::Descriptor* descriptor = message->GetDescriptor();
  std::set<std::string> seen;
  for (const auto& entry : node) {
    if (!entry.first.IsScalar()) {
      return PathError(path, "a key must be a plain name");
    }
    const std::string key = entry.first.Scalar();
    const std::string child = path.empty() ? key : absl::StrCat(path, ".", key);
    const FieldDescriptor* field = descriptor->FindFieldByName(key);
    if (field == nullptr) return PathError(child, "unknown key");
    if (!seen.insert(key).second) return PathError(child, "duplicate key");
    const YAML::Node& value = entry.second;
    if (value.IsNull()) return PathError(child, "has no value");
    if (field->is_repeated()) {
      if (!value.IsSequence()) {
        return PathError(
            child, absl::StrCat("expected a list, not ", Describe(value)));
      }
      for (size_t i = 0; i < value.size(); ++i) {
        RETURN_IF_ERROR(FillValue(value[i], absl::StrCat(child, "[", i, "]"),
                                  message, field));
      }
    } else {
      RETURN_IF_ERROR(FillValue(value, child, message, field));
    }
  }
  return absl::OkStatus();
}

bool ValidVolumeName(const std::string& name) {
  if (name.empty() || name.size() > 64) return false;
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

absl::Status CheckAddress(const std::string& path, const std::string& text) {
  absl::StatusOr<Address> address = ParseAddress(text);
  if (!address.ok()) {
    return PathError(
        path, absl::StrCat("'", text, "': ", address.status().message()));
  }
  return absl::OkStatus();
}

absl::Status ValidateEtcd(v1::GatewayConfig* config) {
  v1::EtcdConfig* etcd = config->mutable_etcd();
  if (etcd->endpoints_size() == 0) {
    return PathError("etcd.endpoints", "at least one endpoint is required");
  }
  for (int i = 0; i < etcd->endpoints_size(); ++i) {
    const std::string path = absl::StrCat("etcd.endpoints[", i, "]");
    RETURN_IF_ERROR(CheckAddress(path, etcd->endpoints(i)));
    if (absl::StartsWith(etcd->endpoints(i), "unix:")) {
      return PathError(path, "must be host:port");
    }
  }
  if (etcd->lease_ttl_ms() == 0) etcd->set_lease_ttl_ms(kDefaultEtcdLeaseTtlMs);
  if (etcd->lease_ttl_ms() < 1000 || etcd->lease_ttl_ms() > 60000 ||
      etcd->lease_ttl_ms() % 1000 != 0) {
    return PathError("etcd.lease_ttl_ms",
                     "must be a whole number of seconds, 1000..60000 (etcd "
                     "grants leases in seconds)");
  }
  if (etcd->prefix().empty()) etcd->set_prefix(kDefaultEtcdPrefix);
  if (etcd->has_tls()) {
    v1::TlsConfig* tls = etcd->mutable_tls();
    absl::StatusOr<TlsMode> mode =
        TlsModeOrDefault(tls->mode(), EtcdTlsOptions(*config), false);
    if (!mode.ok()) {
      return PathError("etcd.tls.mode", std::string(mode.status().message()));
    }
    if (tls->mode().empty())
      tls->set_mode(*mode == TlsMode::kOn ? "on" : "off");
    if (tls->cert().empty() != tls->key().empty()) {
      return PathError("etcd.tls",
                       "cert and key go together: give both or neither");
    }
  }
  if (!etcd->advertise().empty()) {
    RETURN_IF_ERROR(EtcdAdvertise(*config).status());
  }
  return absl::OkStatus();
}

absl::Status Validate(v1::GatewayConfig* config) {
  for (int i = 0; i < config->listen_size(); ++i) {
    RETURN_IF_ERROR(
        CheckAddress(absl::StrCat("listen[", i, "]"), config->listen(i)));
  }
  if (!config->metrics().empty()) {
    RETURN_IF_ERROR(CheckAddress("metrics", config->metrics()));
  }
  if (config->drain_seconds() == 0)
    config->set_drain_seconds(kDefaultDrainSeconds);
  if (config->drain_seconds() > 3600) {
    return PathError("drain_seconds", "must be 1..3600");
  }
  if (config->state_dir().empty()) config->set_state_dir(kDefaultStateDir);
  if (!config->has_max_streams_per_client()) {
    config->set_max_streams_per_client(64);
  }
  if (config->tls().mode().empty()) {
    config->mutable_tls()->set_mode(config->tls().cert().empty() ? "off"
                                                                 : "on");
  }
  if (absl::StatusOr<TlsMode> mode = ParseTlsMode(config->tls().mode());
      !mode.ok()) {
    return PathError("tls.mode", std::string(mode.status().message()));
  }
  if (config->tls().mode() != "off" &&
      (config->tls().cert().empty() || config->tls().key().empty())) {
    return PathError("tls",
                     "mode " + config->tls().mode() + " needs cert and key");
  }
  if (config->has_etcd()) RETURN_IF_ERROR(ValidateEtcd(config));
  if (config->volumes_size() == 0) {
    return PathError("volumes", "at least one volume is required");
  }
  std::set<std::string> names;
  for (int v = 0; v < config->volumes_size(); ++v) {
    v1::VolumeConfig* volume = config->mutable_volumes(v);
    const std::string path = absl::StrCat("volumes[", v, "]");
    if (!ValidVolumeName(volume->name())) {
      return PathError(
          path + ".name",
          volume->name().empty()
              ? "required"
              : absl::StrCat("'", volume->name(),
                             "' must be 1-64 of A-Z a-z 0-9 . _ -"));
    }
    if (!names.insert(volume->name()).second) {
      return PathError(path + ".name",
                       absl::StrCat("'", volume->name(), "' is used twice"));
    }
    if (volume->replicas_size() == 0) {
      return PathError(path + ".replicas", "at least one replica is required");
    }
    std::set<std::string> addresses;
    for (int r = 0; r < volume->replicas_size(); ++r) {
      const std::string replica =
          absl::StrCat(path, ".replicas[", r, "].address");
      if (volume->replicas(r).address().empty()) {
        return PathError(replica, "required");
      }
      RETURN_IF_ERROR(CheckAddress(replica, volume->replicas(r).address()));
      if (!addresses.insert(volume->replicas(r).address()).second) {
        return PathError(replica,
                         absl::StrCat("'", volume->replicas(r).address(),
                                      "' is listed twice"));
      }
    }
    ApplyVolumeDefaults(volume);
    if (volume->max_in_flight() > 4096) {
      return PathError(path + ".max_in_flight", "must be 1..4096");
    }
    if (volume->request_timeout_ms() < 10 ||
        volume->request_timeout_ms() > 600000) {
      return PathError(path + ".request_timeout_ms", "must be 10..600000");
    }
    if (volume->max_resends() > 100) {
      return PathError(path + ".max_resends", "must be 0..100");
    }
    if (volume->suspend_timeout_ms() > 86400000) {
      return PathError(path + ".suspend_timeout_ms", "must be 0..86400000");
    }
    if (volume->lag_limit_ms() < 10 || volume->lag_limit_ms() > 60000) {
      return PathError(path + ".lag_limit_ms", "must be 10..60000");
    }
    const uint32_t region = volume->region_bytes();
    if (region < 65536 || region > (64u << 20) || (region & (region - 1))) {
      return PathError(path + ".region_bytes",
                       "must be a power of two in 65536..67108864");
    }
    if (volume->activity_log_regions() > (1u << 20)) {
      return PathError(path + ".activity_log_regions", "must be 0..1048576");
    }
    for (auto [name, value] :
         {std::pair<const char*, uint32_t>{"keepalive_ms",
                                           volume->keepalive_ms()},
          {"keepalive_timeout_ms", volume->keepalive_timeout_ms()}}) {
      if (value < 1000 || value > 600000) {
        return PathError(absl::StrCat(path, ".", name), "must be 1000..600000");
      }
    }
    if (volume->lease_timeout_ms() > 600000) {
      return PathError(path + ".lease_timeout_ms", "must be 0..600000");
    }
    if (volume->max_in_flight_bytes() < (1u << 20) ||
        volume->max_in_flight_bytes() > (uint64_t{64} << 30)) {
      return PathError(path + ".max_in_flight_bytes",
                       "must be 1048576..68719476736");
    }
    if (volume->checksum() != "crc32c" && volume->checksum() != "sha256" &&
        volume->checksum() != "none") {
      return PathError(path + ".checksum",
                       absl::StrCat("'", volume->checksum(),
                                    "' must be crc32c, sha256 or none"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::string> EtcdAdvertise(const v1::GatewayConfig& config) {
  const bool set = !config.etcd().advertise().empty();
  const std::string advertise =
      set ? config.etcd().advertise()
          : (config.listen_size() > 0 ? config.listen(0)
                                      : std::string(kDefaultGatewayListen));
  absl::StatusOr<Address> address = ParseAddress(advertise);
  if (!address.ok() || address->kind != Address::Kind::kTcp ||
      address->host.empty() || address->host == "0.0.0.0" ||
      address->host == "::" || address->port == 0) {
    return PathError(
        "etcd.advertise",
        absl::StrCat("'", advertise, "'",
                     set ? "" : " (the first listen address)",
                     " is not an address clients can reach this gateway at; "
                     "set etcd.advertise to one"));
  }
  return advertise;
}

void ApplyVolumeDefaults(v1::VolumeConfig* volume) {
  if (volume->max_in_flight() == 0)
    volume->set_max_in_flight(kDefaultMaxInFlight);
  if (volume->request_timeout_ms() == 0) {
    volume->set_request_timeout_ms(kDefaultRequestTimeoutMs);
  }
  if (!volume->has_max_resends()) volume->set_max_resends(kDefaultMaxResends);
  if (!volume->has_suspend_timeout_ms()) {
    volume->set_suspend_timeout_ms(kDefaultSuspendTimeoutMs);
  }
  if (volume->lag_limit_ms() == 0) volume->set_lag_limit_ms(kDefaultLagLimitMs);
  if (volume->region_bytes() == 0) {
    volume->set_region_bytes(kDefaultRegionBytes);
  }
  if (!volume->has_activity_log_regions()) {
    volume->set_activity_log_regions(kDefaultActivityLogRegions);
  }
  if (volume->keepalive_ms() == 0)
    volume->set_keepalive_ms(kDefaultKeepaliveMs);
  if (volume->keepalive_timeout_ms() == 0) {
    volume->set_keepalive_timeout_ms(kDefaultKeepaliveTimeoutMs);
  }
  if (!volume->has_lease_timeout_ms()) {
    volume->set_lease_timeout_ms(kDefaultLeaseTimeoutMs);
  }
  if (volume->checksum().empty()) volume->set_checksum("crc32c");
  if (volume->max_in_flight_bytes() == 0) {
    volume->set_max_in_flight_bytes(uint64_t{256} << 20);
  }
}

absl::StatusOr<v1::GatewayConfig> ParseGatewayConfig(absl::string_view text) {
  YAML::Node root;
  try {
    root = YAML::Load(std::string(text));
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("not valid YAML or JSON: line ", e.mark.line + 1,
                     ", column ", e.mark.column + 1, ": ", e.msg));
  }
  v1::GatewayConfig config;
  try {
    RETURN_IF_ERROR(FillMessage(root, "", &config));
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("config: ", e.what()));
  }
  RETURN_IF_ERROR(Validate(&config));
  return config;
}

absl::StatusOr<v1::GatewayConfig> LoadGatewayConfig(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    std::string why = std::strerror(errno);
    return errno == ENOENT
               ? absl::NotFoundError(absl::StrCat(path, ": ", why))
               : absl::PermissionDeniedError(absl::StrCat(path, ": ", why));
  }
  std::stringstream text;
  text << in.rdbuf();
  absl::StatusOr<v1::GatewayConfig> config = ParseGatewayConfig(text.str());
  if (!config.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": ", config.status().message()));
  }
  return config;
}

namespace {

// A `tls` section's settings; a mode the parser has not checked yet (or
// none) is off.
TlsOptions TlsOptionsOf(const v1::TlsConfig& tls) {
  TlsOptions options;
  absl::StatusOr<TlsMode> mode = ParseTlsMode(tls.mode());
  options.mode = mode.ok() ? *mode : TlsMode::kOff;
  options.cert = tls.cert();
  options.key = tls.key();
  options.ca = tls.ca();
  options.server_name = tls.server_name();
  return options;
}

}  // namespace

TlsOptions EtcdTlsOptions(const v1::GatewayConfig& config) {
  return TlsOptionsOf(config.etcd().tls());
}

TlsOptions GatewayTlsOptions(const v1::GatewayConfig& config) {
  return TlsOptionsOf(config.tls());
}

}  // namespace dst
