// The gateway's configuration file: YAML (or JSON, which YAML contains)
// mapped strictly onto dst.v1.GatewayConfig (proto/dst/v1/config.proto).
// Unknown keys, wrong types, duplicates and impossible values are refused
// with the key's path: "volumes[0].replicas[1].address: ...".
#ifndef DST_SERVICES_GATEWAY_CONFIG_H_
#define DST_SERVICES_GATEWAY_CONFIG_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

#include "dst/v1/config.pb.h"
#include "services/common/security/tls.h"

namespace dst {

inline constexpr uint32_t kDefaultMaxInFlight = 64;
inline constexpr uint32_t kDefaultDrainSeconds = 30;
inline constexpr uint32_t kDefaultRequestTimeoutMs = 10000;
inline constexpr uint32_t kDefaultMaxResends = 3;
inline constexpr uint32_t kDefaultSuspendTimeoutMs = 30000;
inline constexpr char kDefaultGatewayListen[] = "127.0.0.1:7000";
inline constexpr uint32_t kDefaultLagLimitMs = 1000;
inline constexpr uint32_t kDefaultRegionBytes = 1u << 20;
inline constexpr uint32_t kDefaultActivityLogRegions = 1024;
inline constexpr uint32_t kDefaultKeepaliveMs = 2000;
inline constexpr uint32_t kDefaultKeepaliveTimeoutMs = 2000;
inline constexpr uint32_t kDefaultLeaseTimeoutMs = 10000;
inline constexpr char kDefaultStateDir[] = "/var/lib/dst/gateway";
inline constexpr uint32_t kDefaultEtcdLeaseTtlMs = 2000;
inline constexpr char kDefaultEtcdPrefix[] = "/dst/";

// Fills in the documented default of every volume key left unset.
void ApplyVolumeDefaults(v1::VolumeConfig* volume);

// Parses and validates; fills in defaults. InvalidArgument on any error.
absl::StatusOr<v1::GatewayConfig> ParseGatewayConfig(absl::string_view text);

// Reads `path` and parses it; NotFound / PermissionDenied for the file.
absl::StatusOr<v1::GatewayConfig> LoadGatewayConfig(const std::string& path);

// HA mode: the address this gateway publishes to clients while it leads a
// volume: etcd.advertise, else the first listen address (call once the
// command line's --listen is added). InvalidArgument for a wildcard, Unix
// or port-0 address.
absl::StatusOr<std::string> EtcdAdvertise(const v1::GatewayConfig& config);

// The TLS settings of a parsed config's `tls` section (its mode validated
// and defaulted by the parser): for the gateway's listeners and, the same
// files, for its connections to exporters.
TlsOptions GatewayTlsOptions(const v1::GatewayConfig& config);
// The same for the `etcd.tls` section (HA mode's client to etcd; mode off
// when there is none).
TlsOptions EtcdTlsOptions(const v1::GatewayConfig& config);

}  // namespace dst

#endif  // DST_SERVICES_GATEWAY_CONFIG_H_
