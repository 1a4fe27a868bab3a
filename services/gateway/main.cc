// dst-gateway: turns exporters into volumes and serves them to NBD servers.
// Wiring only: flags -> config -> volumes -> service -> server -> drain.
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <optional>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

#include "services/common/base/address.h"
#include "services/common/base/flags.h"
#include "services/common/base/limits.h"
#include "services/common/base/log.h"
#include "services/common/base/process_tuning.h"
#include "services/common/base/signals.h"
#include "services/common/observability/metrics.h"
#include "services/common/rpc/server.h"
#include "services/common/security/acl.h"
#include "services/common/security/reload.h"
#include "services/common/security/tls.h"
#include "services/gateway/config.h"
#include "services/gateway/gateway_service.h"
#include "services/gateway/ha/leader_volumes.h"
#include "services/gateway/volume.h"
#include "services/gateway/volume_builder.h"

namespace dst {
namespace {

// The exit status of a gateway deposed in HA mode (EX_TEMPFAIL: restart
// it).
constexpr int kDeposedExitCode = 75;

int Fail(const std::string& message) {
  std::fprintf(stderr, "dst-gateway: %s\n", message.c_str());
  return 2;
}

int Main(int argc, char** argv) {
  Flags flags(
      "dst-gateway",
      "Serves volumes made of dst exporters to NBD servers (nbdkit dst).",
      {
          {"config", "FILE", "YAML or JSON configuration (required)"},
          {"listen", "ADDR",
           "host:port, [v6]:port or unix:/path; adds to "
           "the config's listen (default 127.0.0.1:7000)",
           true},
          {"metrics", "HOST:PORT",
           "serve Prometheus metrics at http://HOST:PORT/metrics; "
           "overrides the config's metrics (default off)"},
          {"check-config", "", "validate the configuration and exit"},
          {"state-dir", "DIR",
           "mirror state directory (overrides the config's state_dir; "
           "default /var/lib/dst/gateway)"},
          {"advertise", "HOST:PORT",
           "HA mode: the address clients reach this gateway at, given to "
           "them by the other gateways (overrides the config's "
           "etcd.advertise; default the first listen address)"},
          {"id", "NAME",
           "this gateway's name: the fencing owner on exporters, in their "
           "logs, and in HA mode its name as a leader (default: hostname; "
           "unique among gateways)"},
          {"log-level", "LEVEL",
           "debug, info, warning or error (default info)"},
          {"help", "", "print this help"},
      });
  if (std::optional<int> exit_code =
          flags.ParseCommandLine(argc, argv, /*positional=*/false)) {
    return *exit_code;
  }
  if (!flags.Has("config")) return Fail("--config=FILE is required");
  absl::StatusOr<v1::GatewayConfig> config =
      LoadGatewayConfig(flags.Get("config"));
  if (!config.ok()) return Fail(std::string(config.status().message()));
  if (flags.Has("metrics")) {
    if (absl::StatusOr<Address> a = ParseAddress(flags.Get("metrics"));
        !a.ok()) {
      return Fail(absl::StrCat("--metrics=", flags.Get("metrics"), ": ",
                               a.status().message()));
    }
  }
  for (const std::string& listen : flags.GetAll("listen")) {
    if (absl::StatusOr<Address> a = ParseAddress(listen); !a.ok()) {
      return Fail(
          absl::StrCat("--listen=", listen, ": ", a.status().message()));
    }
    config->add_listen(listen);
  }
  if (config->listen_size() == 0) config->add_listen(kDefaultGatewayListen);
  if (flags.Has("advertise")) {
    if (!config->has_etcd()) {
      return Fail("--advertise is for HA mode: the config has no etcd section");
    }
    config->mutable_etcd()->set_advertise(flags.Get("advertise"));
  }
  std::string advertise;  // HA mode: where clients reach this gateway
  if (config->has_etcd()) {
    absl::StatusOr<std::string> a = EtcdAdvertise(*config);
    if (!a.ok()) {
      return Fail(absl::StrCat(a.status().message(), flags.Has("advertise")
                                                         ? " (from --advertise)"
                                                         : ""));
    }
    advertise = *std::move(a);
  }
  if (flags.Has("check-config")) {
    std::printf("%s: OK (%d volume(s))\n", flags.Get("config").c_str(),
                config->volumes_size());
    return 0;
  }
  char host[256] = "gateway";
  gethostname(host, sizeof(host) - 1);
  std::string id = flags.Get("id", host);

  if (flags.Has("metrics")) config->set_metrics(flags.Get("metrics"));
  auto registry = std::make_shared<prometheus::Registry>();
  std::unique_ptr<MetricsServer> metrics;
  if (!config->metrics().empty()) {
    auto started = MetricsServer::Start(config->metrics(), registry);
    if (!started.ok()) return Fail(std::string(started.status().message()));
    metrics = std::move(*started);
  }
  if (flags.Has("state-dir")) config->set_state_dir(flags.Get("state-dir"));
  absl::StatusOr<std::shared_ptr<Tls>> tls =
      Tls::Load(GatewayTlsOptions(*config), /*server=*/true);
  if (!tls.ok()) return Fail(absl::StrCat("tls: ", tls.status().message()));
  AclHolder acl(config->acl_file());
  if (absl::Status s = acl.Reload(); !s.ok()) {
    return Fail(absl::StrCat("acl_file: ", s.message()));
  }
  SharedTimers lag_timers;  // every volume's lag timers, on one thread
  VolumeOptions volume_options;
  volume_options.schedulers = GatewaySchedulers(lag_timers);
  volume_options.tls = *tls;
  volume_options.gateway_id = id;
  volume_options.state_dir = config->state_dir();
  std::vector<std::unique_ptr<Volume>> volumes;
  for (const v1::VolumeConfig& volume : config->volumes()) {
    if (config->has_etcd()) break;  // HA: built once elected
    absl::StatusOr<std::unique_ptr<Volume>> built =
        BuildVolume(volume, volume_options, kMaxMessageBytes, *registry);
    if (!built.ok()) return Fail(std::string(built.status().message()));
    volumes.push_back(*std::move(built));
  }
  GatewayService service(std::move(volumes), acl.enabled() ? &acl : nullptr,
                         registry.get(),
                         static_cast<int>(config->max_streams_per_client()));
  std::unique_ptr<LeaderVolumes> leaders;
  std::shared_ptr<Tls> etcd_tls;  // HA mode's TLS to etcd
  if (config->has_etcd()) {
    absl::StatusOr<std::shared_ptr<Tls>> loaded =
        Tls::Load(EtcdTlsOptions(*config), /*server=*/false);
    if (!loaded.ok()) {
      return Fail(absl::StrCat("etcd.tls: ", loaded.status().message()));
    }
    etcd_tls = *std::move(loaded);
    absl::StatusOr<std::unique_ptr<LeaderVolumes>> started =
        LeaderVolumes::Start(
            *config, advertise, etcd_tls, volume_options, kMaxMessageBytes,
            service, *registry, [](const std::string& why) {
              // Another gateway may lead now: not one more reply. The
              // supervisor restarts this one as a standby.
              DST_LOG(Error, "gateway: deposed (%s); exiting", why);
              ExitNow(kDeposedExitCode);
            });
    if (!started.ok()) return Fail(std::string(started.status().message()));
    leaders = *std::move(started);
    DST_LOG(Info, "gateway: HA mode as '%s' (clients reach it at %s), etcd %s",
            id, advertise, absl::StrJoin(config->etcd().endpoints(), ","));
  }

  ServerSpec spec;
  spec.listen.assign(config->listen().begin(), config->listen().end());
  spec.services = {&service};
  spec.tls = *tls;
  (*tls)->CountRefusalsIn(*registry, "dst_gateway");
  spec.max_message_bytes = kMaxMessageBytes;
  spec.share_loop = true;  // the streams to the exporters run on it too
  absl::StatusOr<RunningServer> server = StartServer(spec);
  if (!server.ok()) return Fail(server.status().ToString());
  service.Start();
  // Health: "" (liveness) is SERVING until the drain; dst.v1.Gateway
  // (readiness) only while every volume serves I/O (ready or degraded). A
  // gateway waiting for its exporters is alive but not ready: restarting it
  // would not bring them back.
  HealthService* health = server->health.get();
  std::atomic<bool> draining{false};
  std::thread([&service, health, &draining] {
    bool last = true;
    for (bool first = true; !draining.load(); first = false) {
      const bool ready = service.Ready();
      if (first || ready != last) {
        health->SetServingStatus("dst.v1.Gateway", ready);
        last = ready;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
  }).detach();
  DST_LOG(Info, "gateway: %d volume(s), listening on %s%s",
          config->volumes_size(), absl::StrJoin(server->bound, ", "),
          metrics ? absl::StrCat("; metrics on http://", config->metrics(),
                                 "/metrics")
                  : "");

  int signal_number = WaitForTerminationSignal(
      ReloadOnHangup(*tls, &acl, "gateway", etcd_tls),
      ReloadableFiles(tls->get(), &acl, etcd_tls.get()));
  DST_LOG(Info, "gateway: signal %d, draining in-flight work", signal_number);
  draining = true;
  health->SetServingStatus(false);
  health->SetServingStatus("dst.v1.Gateway", false);
  bool drained =
      service.Drain(absl::Now() + absl::Seconds(config->drain_seconds()));
  server->Shutdown(absl::Now() + absl::Seconds(1));
  service.SaveState();
  if (leaders) leaders->Stop();  // a standby takes over at once
  DST_LOG(Info, "gateway: stopped%s", drained ? "" : " (drain timed out)");
  (*tls)->RemoveStagedFiles();
  if (etcd_tls != nullptr) etcd_tls->RemoveStagedFiles();
  ExitNow(0);
}

}  // namespace
}  // namespace dst

int main(int argc, char** argv) {
  dst::BlockTerminationSignals();
  dst::TuneProcessForDataPath();
  return dst::Main(argc, argv);
}
