// In-process dst clusters for integration tests: exporters over files in a
// temporary directory, with a Storage wrapper that injects faults, and
// gateways over them, all on Unix sockets (no port clashes when tests run
// in parallel).
#ifndef DST_TESTS_INTEGRATION_TEST_CLUSTER_H_
#define DST_TESTS_INTEGRATION_TEST_CLUSTER_H_

#include <atomic>
#include <functional>
#include <memory>
#include <string>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

#include "dst/v1/config.pb.h"
#include "services/common/base/scheduler.h"
#include "services/common/rpc/server.h"
#include "services/exporter/exporter_service.h"
#include "services/exporter/metadata_store.h"
#include "services/exporter/storage.h"
#include "services/gateway/gateway_service.h"

namespace dst {

// A temporary directory removed (with its contents) on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Wraps a Storage; each switch makes that kind of operation fail with EIO.
class FaultyStorage : public Storage {
 public:
  explicit FaultyStorage(std::unique_ptr<Storage> inner)
      : inner_(std::move(inner)) {}
  std::atomic<bool> fail_reads{false};
  std::atomic<bool> fail_writes{false};   // writes, zeroes, trims, flushes
  std::atomic<bool> fail_flushes{false};  // flushes only
  // Fast zeroes: refused at run time (UNIMPLEMENTED), or not advertised.
  std::atomic<bool> refuse_fast_zero{false};
  std::atomic<bool> no_fast_zero{false};
  // Grow fails as a block device too small would.
  std::atomic<bool> refuse_grow{false};
  std::atomic<int> flushes{0};
  // What in_memory() answers. A disk (false) unless a test says otherwise,
  // so that Hold() stalls the exporter's pool, not its gRPC thread.
  std::atomic<bool> acts_in_memory{false};
  // While held, every operation waits (a stalled disk).
  void Hold();
  void Release();
  // Waits until `n` operations are waiting in a hold; false if they are
  // not within `timeout`.
  bool AwaitWaiting(int n, absl::Duration timeout = absl::Seconds(10));

  uint64_t size() const override { return inner_->size(); }
  bool can_trim() const override { return inner_->can_trim(); }
  bool in_memory() const override { return acts_in_memory; }
  absl::Status Read(uint64_t offset, size_t length, char* out) override;
  absl::Status Write(uint64_t offset, const Payload& data, bool fua) override;
  absl::Status WriteZeroes(uint64_t offset, uint64_t length, bool may_trim,
                           bool fua) override;
  bool can_fast_zero() const override {
    return !no_fast_zero && inner_->can_fast_zero();
  }
  absl::Status FastZero(uint64_t offset, uint64_t length, bool may_trim,
                        bool fua) override {
    if (refuse_fast_zero) return absl::UnimplementedError("no fast zero here");
    return inner_->FastZero(offset, length, may_trim, fua);
  }
  absl::Status Trim(uint64_t offset, uint64_t length, bool fua) override;
  absl::Status Flush() override;
  absl::StatusOr<uint64_t> Grow(uint64_t size) override {
    if (refuse_grow) {
      return absl::FailedPreconditionError(
          absl::StrCat("injected: the device is ", inner_->size(),
                       " bytes, fewer than ", size));
    }
    return inner_->Grow(size);
  }
  absl::StatusOr<std::vector<Extent>> Extents(uint64_t offset, uint64_t length,
                                              size_t max_extents) override {
    return inner_->Extents(offset, length, max_extents);
  }

 private:
  void WaitWhileHeld();
  std::unique_ptr<Storage> inner_;
  absl::Mutex mu_;
  bool held_ ABSL_GUARDED_BY(mu_) = false;
  int waiting_ ABSL_GUARDED_BY(mu_) = 0;  // operations stalled by the hold
};

class TestExporter {
 public:
  // Serves `dir`/`name`.img of `size` bytes on unix:`dir`/`name`.sock;
  // `configure` (if any) sets its storage's faults before it starts.
  TestExporter(const std::string& dir, const std::string& name, uint64_t size,
               ExporterOptions options = {},
               const std::function<void(FaultyStorage&)>& configure = nullptr);
  ~TestExporter();
  const std::string& address() const { return address_; }
  const std::string& path() const { return path_; }
  FaultyStorage& storage() { return *storage_; }
  ExporterService& service() { return *service_; }
  // Stops serving (as if the process died); the file remains.
  void Stop();

 private:
  std::string address_, path_;
  std::unique_ptr<FaultyStorage> storage_;
  std::unique_ptr<MetadataStore> metadata_;  // `dir`/`name`.state
  std::unique_ptr<ExporterService> service_;
  RunningServer server_;
};

class TestGateway {
 public:
  // Serves `config`'s volumes on unix:`dir`/`id`.sock, with its mirror
  // state in `dir`/`id`-state.
  TestGateway(const std::string& dir, const v1::GatewayConfig& config,
              const std::string& id = "gateway");
  ~TestGateway();
  const std::string& address() const { return address_; }
  // The admin Status of every volume (empty reply on error).
  v1::StatusReply Status();
  // True once the volume accepts Open, false after `seconds`.
  bool WaitReady(const std::string& volume, int seconds = 10);
  // The status of one volume (default instance on error).
  v1::VolumeStatus VolumeStatus(const std::string& volume);
  // True once `done` holds for the volume's status, false after `seconds`.
  bool WaitFor(const std::string& volume,
               const std::function<bool(const v1::VolumeStatus&)>& done,
               int seconds = 20);
  // The admin RPCs, as dstctl calls them.
  grpc::Status Resync(const v1::ResyncRequest& request);
  grpc::Status Resolve(const std::string& volume, const std::string& source);
  grpc::Status Resize(const std::string& volume, uint64_t size);
  grpc::Status Verify(const v1::VerifyRequest& request, v1::VerifyReply* reply);
  // The server's grpc.health.v1 service.
  HealthService& health() { return *server_.health; }

 private:
  std::string address_;
  std::shared_ptr<prometheus::Registry> registry_ =
      std::make_shared<prometheus::Registry>();
  SharedTimers lag_timers_;  // as the gateway's: outlives the volumes
  std::unique_ptr<GatewayService> service_;
  RunningServer server_;
};

class GatewayClient;
// A client of `volume` on `gateway`, as the nbdkit plugin opens it; clients
// sharing a lease token are one writer (one NBD server). Null (and a test
// failure) when the open fails.
std::unique_ptr<GatewayClient> OpenClient(
    const TestGateway& gateway, const std::string& volume,
    bool read_only = false, const std::string& lease = "writer-1");

// A config with one volume over `addresses`.
v1::GatewayConfig OneVolume(const std::string& name,
                            const std::vector<std::string>& addresses,
                            bool read_only = false);

// Requests as a client builds them.
v1::Request WriteRequest(uint64_t offset, std::string data);
v1::Request ReadRequest(uint64_t offset, uint32_t length);

// Reads the whole file at `path`.
std::string ReadFile(const std::string& path);

}  // namespace dst

#endif  // DST_TESTS_INTEGRATION_TEST_CLUSTER_H_
