// In-process dst clusters for integration tests: see test_cluster.h.
#include "tests/integration/test_cluster.h"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>

#include "nbdkit-plugin/gateway_client.h"
#include "services/common/base/limits.h"
#include "services/common/protocol/request_validation.h"
#include "services/gateway/config.h"
#include "services/gateway/volume_builder.h"

namespace dst {

TempDir::TempDir() {
  char tmpl[] = "/tmp/dst-test-XXXXXX";
  if (mkdtemp(tmpl) == nullptr) std::abort();
  path_ = tmpl;
}

TempDir::~TempDir() { std::filesystem::remove_all(path_); }

namespace {
absl::Status Injected(const char* what) {
  return absl::InternalError(std::string("injected ") + what + " failure");
}
}  // namespace

void FaultyStorage::Hold() {
  absl::MutexLock lock(&mu_);
  held_ = true;
}

void FaultyStorage::Release() {
  absl::MutexLock lock(&mu_);
  held_ = false;
}

bool FaultyStorage::AwaitWaiting(int n, absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  auto enough = [this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return waiting_ >= n;
  };
  return mu_.AwaitWithTimeout(absl::Condition(&enough), timeout);
}

void FaultyStorage::WaitWhileHeld() {
  absl::MutexLock lock(&mu_);
  if (!held_) return;
  ++waiting_;
  mu_.Await(absl::Condition(
      +[](bool* held) { return !*held; }, &held_));
  --waiting_;
}

absl::Status FaultyStorage::Read(uint64_t offset, size_t length, char* out) {
  WaitWhileHeld();
  if (fail_reads) return Injected("read");
  return inner_->Read(offset, length, out);
}
absl::Status FaultyStorage::Write(uint64_t offset, const Payload& data,
                                  bool fua) {
  WaitWhileHeld();
  if (fail_writes) return Injected("write");
  return inner_->Write(offset, data, fua);
}
absl::Status FaultyStorage::WriteZeroes(uint64_t offset, uint64_t length,
                                        bool may_trim, bool fua) {
  WaitWhileHeld();
  if (fail_writes) return Injected("zero");
  return inner_->WriteZeroes(offset, length, may_trim, fua);
}
absl::Status FaultyStorage::Trim(uint64_t offset, uint64_t length, bool fua) {
  WaitWhileHeld();
  if (fail_writes) return Injected("trim");
  return inner_->Trim(offset, length, fua);
}
absl::Status FaultyStorage::Flush() {
  WaitWhileHeld();
  ++flushes;
  if (fail_writes || fail_flushes) return Injected("flush");
  return inner_->Flush();
}

TestExporter::TestExporter(
    const std::string& dir, const std::string& name, uint64_t size,
    ExporterOptions options,
    const std::function<void(FaultyStorage&)>& configure) {
  path_ = dir + "/" + name + ".img";
  address_ = "unix:" + dir + "/" + name + ".sock";
  FileStorageOptions storage_options;
  storage_options.path = path_;
  storage_options.size = size;
  storage_options.read_only =
      options.read_only && std::filesystem::exists(path_);
  auto inner = OpenFileStorage(storage_options);
  if (!inner.ok()) {
    ADD_FAILURE() << inner.status();
    std::abort();
  }
  storage_ = std::make_unique<FaultyStorage>(std::move(*inner));
  if (configure) configure(*storage_);
  if (options.identity.empty()) options.identity = name;
  auto metadata = MetadataStore::Open(dir + "/" + name + ".state");
  if (!metadata.ok()) {
    ADD_FAILURE() << metadata.status();
    std::abort();
  }
  metadata_ = std::move(*metadata);
  options.metadata = metadata_.get();
  service_ = std::make_unique<ExporterService>(storage_.get(), options);
  absl::Status init = service_->Init();
  if (!init.ok()) {
    ADD_FAILURE() << init;
    std::abort();
  }
  ServerSpec spec;
  spec.listen = {address_};
  spec.services = {service_.get()};
  spec.max_message_bytes = MaxMessageBytes(service_->geometry());  // as main.cc
  auto server = StartServer(spec);
  if (!server.ok()) {
    ADD_FAILURE() << server.status();
    std::abort();
  }
  server_ = std::move(*server);
}

TestExporter::~TestExporter() { Stop(); }

void TestExporter::Stop() {
  if (server_.server == nullptr) return;
  service_->Drain(absl::Now() + absl::Seconds(5));
  server_.Shutdown(absl::Now());
  server_.server->Wait();
  server_.server.reset();
}

TestGateway::TestGateway(const std::string& dir,
                         const v1::GatewayConfig& config,
                         const std::string& id) {
  address_ = "unix:" + dir + "/" + id + ".sock";
  VolumeOptions options;
  options.gateway_id = id;
  options.schedulers = GatewaySchedulers(lag_timers_);
  options.state_dir = dir + "/" + id + "-state";
  std::filesystem::create_directories(options.state_dir);
  std::vector<std::unique_ptr<Volume>> volumes;
  for (const v1::VolumeConfig& volume : config.volumes()) {
    volumes.push_back(
        MakeVolume(volume, options, kMaxMessageBytes, *registry_));
    absl::Status init = volumes.back()->Init();
    if (!init.ok()) {
      ADD_FAILURE() << init;
      std::abort();
    }
  }
  service_ = std::make_unique<GatewayService>(std::move(volumes));
  ServerSpec spec;
  spec.listen = {address_};
  spec.services = {service_.get()};
  auto server = StartServer(spec);
  if (!server.ok()) {
    ADD_FAILURE() << server.status();
    std::abort();
  }
  server_ = std::move(*server);
  service_->Start();
}

TestGateway::~TestGateway() {
  service_->Drain(absl::Now() + absl::Seconds(5));
  server_.Shutdown(absl::Now());
  server_.server->Wait();
  server_.server.reset();
  service_.reset();
}

v1::StatusReply TestGateway::Status() {
  v1::StatusReply reply;
  auto channel = GatewayChannel(address_);
  if (!channel.ok()) return reply;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::seconds(5));
  v1::Gateway::NewStub(*channel)->Status(&context, v1::StatusRequest(), &reply);
  return reply;
}

v1::VolumeStatus TestGateway::VolumeStatus(const std::string& volume) {
  const v1::StatusReply reply = Status();
  for (const v1::VolumeStatus& status : reply.volumes()) {
    if (status.name() == volume) return status;
  }
  return v1::VolumeStatus();
}

bool TestGateway::WaitFor(
    const std::string& volume,
    const std::function<bool(const v1::VolumeStatus&)>& done, int seconds) {
  absl::Time deadline = absl::Now() + absl::Seconds(seconds);
  while (absl::Now() < deadline) {
    if (done(VolumeStatus(volume))) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

namespace {
std::unique_ptr<v1::Gateway::Stub> AdminStub(const std::string& address,
                                             grpc::ClientContext* context) {
  context->set_deadline(std::chrono::system_clock::now() +
                        std::chrono::seconds(30));
  return v1::Gateway::NewStub(*GatewayChannel(address));
}
}  // namespace

grpc::Status TestGateway::Resync(const v1::ResyncRequest& request) {
  grpc::ClientContext context;
  v1::VolumeStatus reply;
  return AdminStub(address_, &context)->Resync(&context, request, &reply);
}

grpc::Status TestGateway::Resolve(const std::string& volume,
                                  const std::string& source) {
  grpc::ClientContext context;
  v1::ResolveRequest request;
  request.set_volume(volume);
  request.set_source(source);
  v1::VolumeStatus reply;
  return AdminStub(address_, &context)->Resolve(&context, request, &reply);
}

grpc::Status TestGateway::Resize(const std::string& volume, uint64_t size) {
  grpc::ClientContext context;
  v1::ResizeRequest request;
  request.set_volume(volume);
  request.set_size(size);
  v1::VolumeStatus reply;
  return AdminStub(address_, &context)->Resize(&context, request, &reply);
}

grpc::Status TestGateway::Verify(const v1::VerifyRequest& request,
                                 v1::VerifyReply* reply) {
  grpc::ClientContext context;
  return AdminStub(address_, &context)->Verify(&context, request, reply);
}

bool TestGateway::WaitReady(const std::string& volume, int seconds) {
  auto channel = GatewayChannel(address_);
  if (!channel.ok()) return false;
  auto stub = v1::Gateway::NewStub(*channel);
  absl::Time deadline = absl::Now() + absl::Seconds(seconds);
  while (absl::Now() < deadline) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::seconds(2));
    v1::StatusRequest request;
    request.set_volume(volume);
    v1::StatusReply reply;
    if (stub->Status(&context, request, &reply).ok() &&
        reply.volumes_size() == 1 && reply.volumes(0).state() == "ready") {
      return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

std::unique_ptr<GatewayClient> OpenClient(const TestGateway& gateway,
                                          const std::string& volume,
                                          bool read_only,
                                          const std::string& lease) {
  auto channel = GatewayChannel(gateway.address());
  EXPECT_TRUE(channel.ok());
  GatewayClientOptions options;
  options.volume = volume;
  options.read_only = read_only;
  options.lease_token = lease;
  options.suspend_timeout = absl::Seconds(20);
  auto client = GatewayClient::Open(*channel, options);
  EXPECT_TRUE(client.ok()) << client.status();
  return client.ok() ? std::move(*client) : nullptr;
}

v1::GatewayConfig OneVolume(const std::string& name,
                            const std::vector<std::string>& addresses,
                            bool read_only) {
  v1::GatewayConfig config;
  v1::VolumeConfig* volume = config.add_volumes();
  volume->set_name(name);
  volume->set_read_only(read_only);
  ApplyVolumeDefaults(volume);
  for (const std::string& address : addresses) {
    volume->add_replicas()->set_address(address);
  }
  return config;
}

v1::Request WriteRequest(uint64_t offset, std::string data) {
  v1::Request r;
  r.set_op(v1::OP_WRITE);
  r.set_offset(offset);
  r.set_length(static_cast<uint32_t>(data.size()));
  r.set_data(std::move(data));
  return r;
}

v1::Request ReadRequest(uint64_t offset, uint32_t length) {
  v1::Request r;
  r.set_op(v1::OP_READ);
  r.set_offset(offset);
  r.set_length(length);
  return r;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream out;
  out << in.rdbuf();
  return out.str();
}

}  // namespace dst
