// The gateway config: the minimal file of docs/configuration.md accepted
// as it stands, and every kind of mistake refused with its key path.
#include "services/gateway/config.h"

#include <gtest/gtest.h>

namespace dst {
namespace {

constexpr char kMinimal[] = R"(
listen: ["127.0.0.1:7000", "unix:/tmp/dst/gateway.sock"]
volumes:
  - name: vol0
    replicas:                       # one entry: a plain volume; two or more: a mirror
      - address: "127.0.0.1:7001"
      - address: "127.0.0.1:7002"
)";

std::string Error(const std::string& text) {
  auto config = ParseGatewayConfig(text);
  EXPECT_FALSE(config.ok()) << text;
  return std::string(config.status().message());
}

TEST(ConfigTest, AcceptsTheMinimalDesignFile) {
  auto config = ParseGatewayConfig(kMinimal);
  ASSERT_TRUE(config.ok()) << config.status();
  ASSERT_EQ(config->listen_size(), 2);
  EXPECT_EQ(config->listen(1), "unix:/tmp/dst/gateway.sock");
  ASSERT_EQ(config->volumes_size(), 1);
  EXPECT_EQ(config->volumes(0).name(), "vol0");
  ASSERT_EQ(config->volumes(0).replicas_size(), 2);
  EXPECT_EQ(config->volumes(0).replicas(1).address(), "127.0.0.1:7002");
  EXPECT_EQ(config->volumes(0).max_in_flight(), kDefaultMaxInFlight)
      << "default filled";
  EXPECT_EQ(config->drain_seconds(), kDefaultDrainSeconds);
  EXPECT_EQ(config->state_dir(), kDefaultStateDir);
  const v1::VolumeConfig& volume = config->volumes(0);
  EXPECT_EQ(volume.lag_limit_ms(), kDefaultLagLimitMs);
  EXPECT_LE(volume.lag_limit_ms(), 2000u) << "the issue's bound";
  EXPECT_EQ(volume.region_bytes(), kDefaultRegionBytes);
  EXPECT_EQ(volume.keepalive_ms(), kDefaultKeepaliveMs);
  EXPECT_EQ(volume.keepalive_timeout_ms(), kDefaultKeepaliveTimeoutMs);
  EXPECT_EQ(volume.lease_timeout_ms(), kDefaultLeaseTimeoutMs);
  EXPECT_EQ(volume.resync_rate_bytes(), 0u);
  EXPECT_EQ(volume.checksum(), "crc32c");
  EXPECT_EQ(volume.max_in_flight_bytes(), uint64_t{256} << 20);
  EXPECT_EQ(volume.activity_log_regions(), kDefaultActivityLogRegions);
  EXPECT_EQ(config->max_streams_per_client(), 64u);
  EXPECT_EQ(config->tls().mode(), "off");
}

TEST(ConfigTest, TlsAndLimitsAreChecked) {
  const std::string volumes =
      "volumes: [{name: v, replicas: [{address: 'h:1'}]";
  EXPECT_EQ(Error("tls: {mode: maybe}\n" + volumes + "}]"),
            "tls.mode: 'maybe' must be off, on or require");
  EXPECT_EQ(Error("tls: {mode: require}\n" + volumes + "}]"),
            "tls: mode require needs cert and key");
  EXPECT_EQ(Error(volumes + ", checksum: md5}]"),
            "volumes[0].checksum: 'md5' must be crc32c, sha256 or none");
  EXPECT_EQ(Error(volumes + ", max_in_flight_bytes: 10}]"),
            "volumes[0].max_in_flight_bytes: must be 1048576..68719476736");
  auto config = ParseGatewayConfig(
      "tls: {cert: c.pem, key: k.pem}\nmax_streams_per_client: 0\n" + volumes +
      "}]");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->tls().mode(), "on") << "a certificate turns TLS on";
  EXPECT_EQ(config->max_streams_per_client(), 0u) << "0: no limit";
}

TEST(ConfigTest, MirrorKeysAreRangeChecked) {
  const std::string head = "volumes: [{name: v, replicas: [{address: 'h:1'}], ";
  EXPECT_EQ(Error(head + "lag_limit_ms: 5}]"),
            "volumes[0].lag_limit_ms: must be 10..60000");
  EXPECT_EQ(Error(head + "region_bytes: 100000}]"),
            "volumes[0].region_bytes: must be a power of two in "
            "65536..67108864");
  EXPECT_EQ(Error(head + "keepalive_ms: 500}]"),
            "volumes[0].keepalive_ms: must be 1000..600000");
  EXPECT_EQ(Error(head + "keepalive_timeout_ms: 700000}]"),
            "volumes[0].keepalive_timeout_ms: must be 1000..600000");
  EXPECT_EQ(Error(head + "lease_timeout_ms: 700000}]"),
            "volumes[0].lease_timeout_ms: must be 0..600000");
  EXPECT_EQ(Error(head + "activity_log_regions: 1048577}]"),
            "volumes[0].activity_log_regions: must be 0..1048576");
  auto config = ParseGatewayConfig(
      "state_dir: /srv/dst\n" + head +
      "lag_limit_ms: 250, region_bytes: 4194304, resync_rate_bytes: "
      "104857600, lease_timeout_ms: 0, activity_log_regions: 0}]");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->state_dir(), "/srv/dst");
  EXPECT_EQ(config->volumes(0).lag_limit_ms(), 250u);
  EXPECT_EQ(config->volumes(0).region_bytes(), 4u << 20);
  EXPECT_EQ(config->volumes(0).resync_rate_bytes(), 100u << 20);
  EXPECT_EQ(config->volumes(0).lease_timeout_ms(), 0u);
  EXPECT_EQ(config->volumes(0).activity_log_regions(), 0u)
      << "0 is a setting, not the default";
}

TEST(ConfigTest, TheEtcdSectionIsCheckedAndDefaulted) {
  const std::string volumes =
      "\nvolumes: [{name: v, replicas: [{address: 'h:1'}]}]";
  EXPECT_EQ(Error("etcd: {lease_ttl_ms: 2000}" + volumes),
            "etcd.endpoints: at least one endpoint is required");
  EXPECT_EQ(Error("etcd: {endpoints: ['unix:/e.sock']}" + volumes),
            "etcd.endpoints[0]: must be host:port");
  EXPECT_EQ(
      Error("etcd: {endpoints: ['e:2379'], lease_ttl_ms: 1500}" + volumes),
      "etcd.lease_ttl_ms: must be a whole number of seconds, "
      "1000..60000 (etcd grants leases in seconds)");
  EXPECT_EQ(
      Error("etcd: {endpoints: ['e:2379'], lease_ttl_ms: 61000}" + volumes),
      "etcd.lease_ttl_ms: must be a whole number of seconds, "
      "1000..60000 (etcd grants leases in seconds)");
  EXPECT_EQ(Error("etcd: {endpoints: ['e:2379'], advertise: '0.0.0.0:7000'}" +
                  volumes),
            "etcd.advertise: '0.0.0.0:7000' is not an address clients can "
            "reach this gateway at; set etcd.advertise to one");

  auto config =
      ParseGatewayConfig("etcd: {endpoints: ['e1:2379', 'e2:2379']}" + volumes);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->etcd().lease_ttl_ms(), kDefaultEtcdLeaseTtlMs);
  EXPECT_EQ(config->etcd().prefix(), kDefaultEtcdPrefix);
  EXPECT_EQ(config->etcd().endpoints_size(), 2);
  // advertise defaults to the first listen address, once --listen is in.
  EXPECT_EQ(EtcdAdvertise(*config).value(), kDefaultGatewayListen);
  config->add_listen("10.0.0.5:7000");
  EXPECT_EQ(EtcdAdvertise(*config).value(), "10.0.0.5:7000");
  config->set_listen(0, "[::]:7000");
  EXPECT_EQ(EtcdAdvertise(*config).status().message(),
            "etcd.advertise: '[::]:7000' (the first listen address) is not an "
            "address clients can reach this gateway at; set etcd.advertise to "
            "one");
  config->mutable_etcd()->set_advertise("gw-1.dst:7000");
  EXPECT_EQ(EtcdAdvertise(*config).value(), "gw-1.dst:7000");

  auto plain = ParseGatewayConfig(volumes);
  ASSERT_TRUE(plain.ok());
  EXPECT_FALSE(plain->has_etcd()) << "no etcd: a gateway alone, as before";
  EXPECT_EQ(EtcdTlsOptions(*plain).mode, TlsMode::kOff);
}

TEST(ConfigTest, TheEtcdTlsSectionIsCheckedAndDefaulted) {
  const std::string volumes =
      "\nvolumes: [{name: v, replicas: [{address: 'h:1'}]}]";
  EXPECT_EQ(
      Error("etcd: {endpoints: ['e:2379'], tls: {mode: sometimes}}" + volumes),
      "etcd.tls.mode: 'sometimes' must be off, on or require");
  EXPECT_EQ(
      Error("etcd: {endpoints: ['e:2379'], tls: {cert: /c.pem}}" + volumes),
      "etcd.tls: cert and key go together: give both or neither");

  auto ca_only = ParseGatewayConfig(
      "etcd: {endpoints: ['e:2379'], tls: {ca: /ca.pem}}" + volumes);
  ASSERT_TRUE(ca_only.ok()) << ca_only.status();
  EXPECT_EQ(ca_only->etcd().tls().mode(), "on") << "a CA alone means TLS";
  const TlsOptions options = EtcdTlsOptions(*ca_only);
  EXPECT_EQ(options.mode, TlsMode::kOn);
  EXPECT_EQ(options.ca, "/ca.pem");
  EXPECT_EQ(GatewayTlsOptions(*ca_only).mode, TlsMode::kOff)
      << "TLS to etcd is not TLS to clients and exporters";

  auto off =
      ParseGatewayConfig("etcd: {endpoints: ['e:2379'], tls: {}}" + volumes);
  ASSERT_TRUE(off.ok()) << off.status();
  EXPECT_EQ(off->etcd().tls().mode(), "off");
}

TEST(ConfigTest, AcceptsJson) {
  auto config = ParseGatewayConfig(
      R"({"volumes": [{"name": "v", "replicas": [{"address": "unix:/e.sock"}],
          "read_only": true, "max_in_flight": 8}]})");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_TRUE(config->volumes(0).read_only());
  EXPECT_EQ(config->volumes(0).max_in_flight(), 8u);
}

TEST(ConfigTest, UnknownKeyNamesItsPath) {
  EXPECT_EQ(Error("volumes: [{name: v, replicas: [{adress: 'h:1'}]}]"),
            "volumes[0].replicas[0].adress: unknown key");
  EXPECT_EQ(Error("volume: []"), "volume: unknown key");
}

TEST(ConfigTest, WrongTypesNameTheirPath) {
  EXPECT_EQ(Error("listen: 'a:1'\nvolumes: []"),
            "listen: expected a list, not 'a:1'");
  EXPECT_EQ(
      Error(
          "volumes: [{name: v, replicas: [{address: 'h:1'}], read_only: yes}]"),
      "volumes[0].read_only: expected true or false, not 'yes'");
  EXPECT_EQ(Error("volumes: [{name: v, replicas: [{address: 'h:1'}], "
                  "max_in_flight: -3}]"),
            "volumes[0].max_in_flight: expected a whole number, not '-3'");
  EXPECT_EQ(Error("volumes: [{name: [x], replicas: [{address: 'h:1'}]}]"),
            "volumes[0].name: expected a value, not a list");
  EXPECT_EQ(Error("- a\n- b"), "(top level): expected a mapping, not a list");
}

TEST(ConfigTest, ImpossibleValuesNameTheirPath) {
  EXPECT_EQ(Error("volumes: []"), "volumes: at least one volume is required");
  EXPECT_EQ(Error("volumes: [{name: v, replicas: []}]"),
            "volumes[0].replicas: at least one replica is required");
  EXPECT_EQ(
      Error("volumes: [{name: 'bad name', replicas: [{address: 'h:1'}]}]"),
      "volumes[0].name: 'bad name' must be 1-64 of A-Z a-z 0-9 . _ -");
  EXPECT_EQ(Error("volumes: [{name: v, replicas: [{address: 'h:1'}]},"
                  " {name: v, replicas: [{address: 'h:2'}]}]"),
            "volumes[1].name: 'v' is used twice");
  EXPECT_EQ(Error("volumes: [{name: v, replicas: [{address: 'nocolon'}]}]"),
            "volumes[0].replicas[0].address: 'nocolon': expected host:port, "
            "[v6]:port or unix:/path");
  EXPECT_EQ(Error("volumes: [{name: v, replicas: [{address: 'h:1'}, {address: "
                  "'h:1'}]}]"),
            "volumes[0].replicas[1].address: 'h:1' is listed twice");
  EXPECT_EQ(
      Error("listen: ['h:99999']\nvolumes: [{name: v, replicas: [{address: "
            "'h:1'}]}]"),
      "listen[0]: 'h:99999': port must be a number 0..65535, not '99999'");
  EXPECT_EQ(Error("volumes: [{name: v, replicas: [{address: 'h:1'}], "
                  "max_in_flight: 5000}]"),
            "volumes[0].max_in_flight: must be 1..4096");
  EXPECT_EQ(Error("volumes: [{name: v, replicas: [{}]}]"),
            "volumes[0].replicas[0].address: required");
}

TEST(ConfigTest, DuplicateAndEmptyKeysRefused) {
  EXPECT_EQ(
      Error("volumes: [{name: v, name: w, replicas: [{address: 'h:1'}]}]"),
      "volumes[0].name: duplicate key");
  EXPECT_EQ(Error("volumes:\n"), "volumes: has no value");
}

TEST(ConfigTest, SyntaxErrorsSayWhere) {
  std::string error = Error("volumes: [\n  {name: v");
  EXPECT_NE(error.find("not valid YAML or JSON: line"), std::string::npos)
      << error;
}

TEST(ConfigTest, MissingFileIsNotFound) {
  EXPECT_EQ(LoadGatewayConfig("/nonexistent/dst.yaml").status().code(),
            absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace dst
