// A plain or (strictly) mirrored volume: see volume.h.
#include "services/gateway/volume.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"

#include "services/common/log.h"
#include "services/common/request_validation.h"
#include "services/common/transaction_stream.h"

namespace dst {

Volume::Volume(const v1::VolumeConfig& config,
               std::vector<std::unique_ptr<Replica>> replicas,
               prometheus::Registry& registry)
    : config_(config),
      replicas_(std::move(replicas)),
      op_metrics_(registry, "dst_gateway", {{"volume", config.name()}}),
      in_flight_gauge_(
          prometheus::BuildGauge()
              .Name("dst_gateway_transactions_in_flight")
              .Help("Client requests accepted and not yet answered.")
              .Register(registry)
              .Add({{"volume", config.name()}})) {
  auto& connected =
      prometheus::BuildGauge()
          .Name("dst_gateway_replica_connected")
          .Help("1 while the gateway has a working stream to the replica.")
          .Register(registry);
  for (const auto& replica : replicas_) {
    replica_connected_.push_back(&connected.Add(
        {{"volume", config.name()}, {"replica", replica->address()}}));
  }
}

Volume::~Volume() {
  for (const auto& replica : replicas_) replica->Stop();
}

void Volume::Start() {
  for (size_t i = 0; i < replicas_.size(); ++i) {
    replicas_[i]->Start([this, i] {
      replica_connected_[i]->Set(replicas_[i]->connected() ? 1 : 0);
      UpdateGeometry();
    });
  }
}

void Volume::UpdateGeometry() {
  absl::MutexLock lock(&mu_);
  if (ready_) return;
  v1::Geometry merged;
  for (const auto& replica : replicas_) {
    if (!replica->connected()) return;
    v1::Geometry g = replica->geometry();
    if (merged.size() == 0) {
      merged = g;
      continue;
    }
    // Every replica must hold the whole volume: the smallest sets the size.
    merged.set_size(std::min(merged.size(), g.size()));
    merged.set_logical_block_size(
        std::max(merged.logical_block_size(), g.logical_block_size()));
    merged.set_physical_block_size(
        std::max(merged.physical_block_size(), g.physical_block_size()));
    merged.set_max_transfer(std::min(merged.max_transfer(), g.max_transfer()));
    merged.set_features(merged.features() & g.features());
    merged.set_read_only(merged.read_only() || g.read_only());
  }
  merged.set_size(merged.size() - merged.size() % merged.logical_block_size());
  merged.set_identity(config_.name());
  merged.set_read_only(merged.read_only() || config_.read_only());
  merged.set_generation(0);
  geometry_ = merged;
  ready_ = true;
  DST_LOG(Info, "gateway: volume %s ready: %d bytes, %d replica(s)%s",
          config_.name(), merged.size(), replicas_.size(),
          merged.read_only() ? ", read-only" : "");
}

absl::StatusOr<v1::Geometry> Volume::Open(bool read_only) const {
  absl::MutexLock lock(&mu_);
  if (!ready_) {
    return absl::UnavailableError(
        absl::StrCat("volume ", config_.name(),
                     " is not ready: its replicas have not all "
                     "connected yet"));
  }
  v1::Geometry geometry = geometry_;
  if (read_only) geometry.set_read_only(true);
  return geometry;
}

void Volume::Submit(v1::Request request, bool read_only, TransactionDone done) {
  total_.fetch_add(1, std::memory_order_relaxed);
  in_flight_.fetch_add(1, std::memory_order_relaxed);
  in_flight_gauge_.Increment();
  TransactionDone counted = [this, done = std::move(done), op = request.op(),
                             written = request.data().size(),
                             start = absl::Now()](v1::Reply&& reply) {
    const bool ok = reply.status() == 0;
    if (!ok) failed_.fetch_add(1, std::memory_order_relaxed);
    in_flight_.fetch_sub(1, std::memory_order_relaxed);
    in_flight_gauge_.Decrement();
    op_metrics_.Record(op, ok, written + reply.data().size(),
                       absl::Now() - start);
    done(std::move(reply));
  };
  absl::StatusOr<v1::Geometry> geometry = Open(read_only);
  absl::Status status = geometry.status();
  if (status.ok())
    status = ValidateRequest(request, *geometry, geometry->read_only());
  if (!status.ok()) {
    counted(ErrorReply(request.id(), status));
    return;
  }
  if (request.op() == v1::OP_PING) {
    counted(v1::Reply());
    return;
  }
  if (request.op() == v1::OP_READ) {
    // Spread reads over the connected replicas, then fail over in order; a
    // disconnected replica is tried last (it would hold the read until it
    // came back or the suspend time ran out).
    size_t first = next_read_.fetch_add(1, std::memory_order_relaxed);
    std::vector<Replica*> order;
    order.reserve(replicas_.size());
    for (bool connected : {true, false}) {
      for (size_t i = 0; i < replicas_.size(); ++i) {
        Replica* replica = replicas_[(first + i) % replicas_.size()].get();
        if (replica->connected() == connected) order.push_back(replica);
      }
    }
    SubmitRead(std::make_shared<v1::Request>(std::move(request)),
               std::move(order), 0, std::move(counted));
    return;
  }
  if (!IsModifying(request.op())) {  // FLUSH
    SubmitToAll(request, std::move(counted));
    return;
  }
  const uint64_t offset = request.offset();
  const uint64_t length = request.length();
  auto shared = std::make_shared<v1::Request>(std::move(request));
  modifications_.Acquire(
      offset, length,
      [this, shared, offset, length, counted = std::move(counted)]() mutable {
        SubmitToAll(*shared, [this, offset, length,
                              counted = std::move(counted)](v1::Reply&& reply) {
          modifications_.Release(offset, length);
          counted(std::move(reply));
        });
      });
}

void Volume::SubmitRead(std::shared_ptr<v1::Request> request,
                        std::vector<Replica*> order, size_t next,
                        TransactionDone done) {
  Replica* target = order[next];
  target->Submit(*request, [this, request, order = std::move(order), next,
                            target,
                            done = std::move(done)](v1::Reply&& reply) mutable {
    if (reply.status() == 0 || next + 1 >= order.size()) {
      done(std::move(reply));
      return;
    }
    DST_LOG(
        Warning,
        "gateway: volume %s: read from replica %s failed (%s); trying the next",
        config_.name(), target->address(), reply.message());
    SubmitRead(std::move(request), std::move(order), next + 1, std::move(done));
  });
}

void Volume::SubmitToAll(const v1::Request& request, TransactionDone done) {
  struct Fanout {
    absl::Mutex mu;
    size_t left;
    v1::Reply first_error;
    bool failed = false;
    TransactionDone done;
  };
  auto fanout = std::make_shared<Fanout>();
  fanout->left = replicas_.size();
  fanout->done = std::move(done);
  for (const auto& target : replicas_) {
    Replica* replica = target.get();
    replica->Submit(request, [fanout, replica](v1::Reply&& reply) {
      bool last;
      {
        absl::MutexLock lock(&fanout->mu);
        if (reply.status() != 0 && !fanout->failed) {
          fanout->failed = true;
          fanout->first_error = reply;
          fanout->first_error.set_message(absl::StrCat(
              "replica ", replica->address(), ": ", reply.message()));
        }
        last = --fanout->left == 0;
      }
      if (!last) return;
      fanout->done(fanout->failed ? std::move(fanout->first_error)
                                  : v1::Reply());
    });
  }
}

v1::VolumeStatus Volume::Status() const {
  v1::VolumeStatus status;
  status.set_name(config_.name());
  {
    absl::MutexLock lock(&mu_);
    *status.mutable_geometry() = geometry_;
    status.set_state(ready_ ? "ready" : "unavailable");
  }
  for (const auto& replica : replicas_)
    *status.add_replicas() = replica->Status();
  status.set_transactions_total(total_.load());
  status.set_transactions_failed(failed_.load());
  status.set_in_flight(in_flight_.load());
  return status;
}

std::unique_ptr<Volume> MakeVolume(const v1::VolumeConfig& config,
                                   const std::string& gateway_id,
                                   int max_message_bytes,
                                   prometheus::Registry& registry) {
  std::vector<std::unique_ptr<Replica>> replicas;
  for (const v1::ReplicaConfig& replica : config.replicas()) {
    ReplicaOptions options;
    options.address = replica.address();
    options.client_id = absl::StrCat(gateway_id, "/", config.name());
    options.read_only = config.read_only();
    options.max_message_bytes = max_message_bytes;
    options.session.request_timeout =
        absl::Milliseconds(config.request_timeout_ms());
    options.session.max_resends = static_cast<int>(config.max_resends());
    options.session.suspend_timeout =
        absl::Milliseconds(config.suspend_timeout_ms());
    replicas.push_back(std::make_unique<Replica>(options));
  }
  return std::make_unique<Volume>(config, std::move(replicas), registry);
}

}  // namespace dst
