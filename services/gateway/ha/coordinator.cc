// HA mode's link to etcd: see coordinator.h.
#include "services/gateway/ha/coordinator.h"

#include <algorithm>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

#include "dst/v1/config.pb.h"
#include "services/common/base/log.h"
#include "services/common/base/status.h"
#include "services/gateway/ha/etcd_state_store.h"

namespace dst {

namespace {
// A failed etcd call is retried after this.
constexpr absl::Duration kRetryPause = absl::Milliseconds(100);
// Tries of the epoch's compare-and-swap before the leadership is taken as
// lost (each failure means another writer, so one retry suffices; the
// rest cover transient errors).
constexpr int kEpochTries = 5;
}  // namespace

absl::StatusOr<std::unique_ptr<HaCoordinator>> HaCoordinator::Start(
    HaOptions options, Lost lost) {
  if (options.lease_ttl < absl::Seconds(1)) {
    return absl::InvalidArgumentError("etcd: lease_ttl below 1 s");
  }
  if (options.gateway_id.empty() || options.address.empty()) {
    return absl::InvalidArgumentError(
        "etcd: the gateway needs an id and an address clients reach it at");
  }
  if (options.prefix.empty()) options.prefix = "/dst/";
  if (options.call_timeout == absl::ZeroDuration()) {
    options.call_timeout = options.lease_ttl / 3;
  }
  EtcdClient::Options client;
  client.endpoints = options.endpoints;
  client.call_timeout = options.call_timeout;
  client.tls = options.etcd_tls;
  ASSIGN_OR_RETURN(std::unique_ptr<EtcdClient> etcd,
                   EtcdClient::Create(std::move(client)));
  std::unique_ptr<HaCoordinator> coordinator(
      new HaCoordinator(std::move(options), std::move(lost), std::move(etcd)));
  HaCoordinator* c = coordinator.get();
  c->threads_.emplace_back([c] { c->KeepLease(); });
  return coordinator;
}

HaCoordinator::Metrics::Metrics(prometheus::Registry& registry)
    : leader(prometheus::BuildGauge()
                 .Name("dst_gateway_ha_leader")
                 .Help("1 while this gateway leads the volume (HA mode), 0 "
                       "while it stands by.")
                 .Register(registry)),
      elections(prometheus::BuildCounter()
                    .Name("dst_gateway_ha_elections_won_total")
                    .Help("Times this gateway was elected the volume's "
                          "leader: leadership changes.")
                    .Register(registry)),
      etcd_up(prometheus::BuildGauge()
                  .Name("dst_gateway_ha_etcd_up")
                  .Help("1 when etcd answered this gateway's last lease "
                        "call, 0 when it did not.")
                  .Register(registry)
                  .Add({})),
      lease_age(prometheus::BuildGauge()
                    .Name("dst_gateway_ha_lease_age_seconds")
                    .Help("Time since etcd last renewed this gateway's lease; "
                          "a leader stops answering at 0.9 x the TTL.")
                    .Register(registry)
                    .Add({})),
      renewal_failures(prometheus::BuildCounter()
                           .Name("dst_gateway_ha_lease_failures_total")
                           .Help("Lease grants and renewals etcd did not "
                                 "answer (unreachable, no quorum).")
                           .Register(registry)
                           .Add({})) {}

HaCoordinator::HaCoordinator(HaOptions options, Lost lost,
                             std::unique_ptr<EtcdClient> etcd)
    : options_(std::move(options)),
      lost_(std::move(lost)),
      metrics_(options_.metrics != nullptr ? *options_.metrics : own_metrics_),
      etcd_(std::move(etcd)) {}

HaCoordinator::~HaCoordinator() { Stop(); }

void HaCoordinator::Halt(bool revoke) {
  int64_t lease;
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return;
    stopping_ = true;
    lease = lease_;
  }
  for (std::thread& t : threads_) t.join();
  if (!revoke) return;  // the fence expires at its deadline
  // Revoking the lease deletes its election keys: every leadership ends
  // and the standbys campaign on at once.
  fence_.Expire();
  if (lease != 0) {
    if (absl::Status s = etcd_->RevokeLease(lease); !s.ok()) {
      DST_LOG(Warning, "ha: cannot revoke the lease (it expires): %s",
              s.ToString());
    }
  }
}

bool HaCoordinator::Pause(absl::Duration d) {
  absl::MutexLock lock(&mu_);
  auto stopping = [this]()
                      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_; };
  mu_.AwaitWithTimeout(absl::Condition(&stopping), d);
  return !stopping_;
}

int64_t HaCoordinator::lease() const {
  absl::MutexLock lock(&mu_);
  return lease_;
}

absl::Duration HaCoordinator::LeaseAge() const {
  absl::MutexLock lock(&mu_);
  return absl::Now() - renewed_;
}

std::optional<HaCoordinator::Term> HaCoordinator::TermOf(
    const std::string& volume) const {
  absl::MutexLock lock(&mu_);
  auto it = terms_.find(volume);
  if (it == terms_.end()) return std::nullopt;
  return it->second;
}

std::string HaCoordinator::ElectionKey(const std::string& volume) const {
  return absl::StrCat(options_.prefix, "volumes/", volume, "/leader");
}
std::string HaCoordinator::EpochKey(const std::string& volume) const {
  return absl::StrCat(options_.prefix, "volumes/", volume, "/epoch");
}
std::string HaCoordinator::StateKey(const std::string& volume) const {
  return absl::StrCat(options_.prefix, "volumes/", volume, "/state");
}

void HaCoordinator::KeepLease() {
  const absl::Duration ttl = options_.lease_ttl;
  std::string last_error;  // logged when it changes
  for (;;) {
    const int64_t lease = this->lease();
    const absl::Duration sent = SelfFence::Now();
    absl::Status status;
    if (lease == 0) {
      absl::StatusOr<int64_t> granted = etcd_->GrantLease(ttl);
      if (granted.ok()) {
        // etcd grants at least the TTL asked for.
        fence_.Renewed(sent, ttl);
        absl::MutexLock lock(&mu_);
        lease_ = *granted;
        renewed_ = absl::Now();
        DST_LOG(Info, "ha: lease %x granted (TTL %s)", *granted,
                absl::FormatDuration(ttl));
      }
      status = granted.status();
    } else {
      absl::StatusOr<absl::Duration> renewed = etcd_->KeepAlive(lease);
      if (renewed.ok()) {
        fence_.Renewed(sent, std::min(*renewed, ttl));
        absl::MutexLock lock(&mu_);
        renewed_ = absl::Now();
      }
      status = renewed.status();
    }
    bool leading;
    {
      absl::MutexLock lock(&mu_);
      leading = !terms_.empty();
      metrics_.lease_age.Set(
          renewed_ == absl::InfinitePast()
              ? 0
              : absl::ToDoubleSeconds(absl::Now() - renewed_));
    }
    metrics_.etcd_up.Set(status.ok() || absl::IsNotFound(status) ? 1 : 0);
    if (!status.ok() && !absl::IsNotFound(status)) {
      metrics_.renewal_failures.Increment();
    }
    if (absl::IsNotFound(status)) {
      // The lease is gone in etcd: every leadership on it has ended.
      fence_.Expire();
      if (leading) {
        lost_(absl::StrCat("the etcd lease ended: ", status.message()));
      }
      absl::MutexLock lock(&mu_);
      lease_ = 0;
      terms_.clear();
      continue;
    }
    if (!status.ok()) {
      if (status.ToString() != last_error) {
        last_error = status.ToString();
        DST_LOG(Warning, "ha: %s", last_error);
      }
      if (leading && fence_.Expired()) {
        lost_(absl::StrCat("the etcd lease could have expired: ",
                           status.message()));
        absl::MutexLock lock(&mu_);
        lease_ = 0;
        terms_.clear();
      }
      if (!Pause(kRetryPause)) return;
      continue;
    }
    if (!last_error.empty()) {
      DST_LOG(Info, "ha: etcd answers again");
      last_error.clear();
    }
    if (!Pause(ttl / 3)) return;
  }
}

void HaCoordinator::Campaign(const std::vector<std::string>& volumes,
                             const Elected& elected) {
  for (const std::string& volume : volumes) {
    metrics_.leader.Add({{"volume", volume}}).Set(0);
    threads_.emplace_back(
        [this, volume, elected] { CampaignFor(volume, elected); });
  }
}

void HaCoordinator::CampaignFor(const std::string& volume,
                                const Elected& elected) {
  v1::GatewayLeader me;
  me.set_id(options_.gateway_id);
  me.set_address(options_.address);
  const std::string value = me.SerializeAsString();
  // A campaign waits this long at most, then is withdrawn and made again:
  // the thread sees a stop, or a new lease, in that time.
  const absl::Duration round = std::max(absl::Seconds(2), options_.lease_ttl);
  std::string last_error;
  while (Pause(absl::ZeroDuration())) {
    const int64_t lease = this->lease();
    if (lease == 0 || fence_.Expired()) {
      if (!Pause(kRetryPause)) return;
      continue;
    }
    absl::StatusOr<EtcdClient::Leadership> won =
        etcd_->Campaign(ElectionKey(volume), lease, value, absl::Now() + round);
    if (!won.ok()) {
      if (!absl::IsDeadlineExceeded(won.status()) &&
          won.status().ToString() != last_error) {
        last_error = won.status().ToString();
        DST_LOG(Warning, "ha: volume %s: %s", volume, last_error);
      }
      if (!absl::IsDeadlineExceeded(won.status()) && !Pause(kRetryPause)) {
        return;
      }
      continue;
    }
    {
      absl::MutexLock lock(&mu_);
      if (stopping_ || lease_ != won->lease) continue;  // an old lease's
      terms_[volume] = Term{*won, 0};
    }
    absl::StatusOr<uint64_t> epoch = EpochAbove(volume, 0);
    if (!epoch.ok()) {
      DST_LOG(Warning, "ha: volume %s: elected, but no epoch: %s", volume,
              epoch.status().ToString());
      {
        absl::MutexLock lock(&mu_);
        terms_.erase(volume);
      }
      (void)etcd_->Resign(*won);
      continue;
    }
    DST_LOG(Info, "ha: volume %s: this gateway leads it (epoch %d)", volume,
            *epoch);
    metrics_.leader.Add({{"volume", volume}}).Set(1);
    metrics_.elections.Add({{"volume", volume}}).Increment();
    elected(volume);
    return;
  }
}

absl::StatusOr<uint64_t> HaCoordinator::EpochAbove(const std::string& volume,
                                                   uint64_t held) {
  absl::MutexLock serial(&epoch_mu_);
  std::optional<Term> term = TermOf(volume);
  if (!term) {
    return absl::AbortedError(
        absl::StrCat("this gateway does not lead volume ", volume));
  }
  if (term->epoch > held) return term->epoch;
  const std::string key = EpochKey(volume);
  absl::Status status;
  for (int tries = 0; tries < kEpochTries;) {
    absl::StatusOr<std::optional<EtcdClient::Value>> value = etcd_->Get(key);
    status = value.status();
    if (value.ok()) {
      uint64_t counter = 0;
      if (value->has_value() && !absl::SimpleAtoi((*value)->value, &counter)) {
        return absl::DataLossError(
            absl::StrCat("etcd: ", key, " is not a number"));
      }
      const uint64_t next = std::max({counter, held, term->epoch}) + 1;
      status =
          etcd_->PutIfLeader(term->leadership, key, absl::StrCat(next),
                             value->has_value() ? (*value)->mod_revision : 0);
      if (status.ok()) {
        absl::MutexLock lock(&mu_);
        auto it = terms_.find(volume);
        if (it == terms_.end()) break;
        it->second.epoch = next;
        return next;
      }
    }
    if (EtcdTransient(status) && !fence_.Expired()) {
      absl::SleepFor(kRetryPause);
      continue;  // etcd busy or away: not a try
    }
    ++tries;
  }
  return absl::AbortedError(
      absl::StrCat("volume ", volume,
                   ": no new epoch (leadership lost?): ", status.message()));
}

absl::StatusOr<std::unique_ptr<StateStore>> HaCoordinator::StateStoreFor(
    const std::string& volume) {
  std::optional<Term> term = TermOf(volume);
  if (!term) {
    return absl::AbortedError(
        absl::StrCat("this gateway does not lead volume ", volume));
  }
  return std::unique_ptr<StateStore>(
      new EtcdStateStore(*etcd_, StateKey(volume), term->leadership, fence_));
}

absl::StatusOr<std::optional<HaCoordinator::Leader>> HaCoordinator::LeaderOf(
    const std::string& volume) {
  ASSIGN_OR_RETURN(std::optional<EtcdClient::Leader> leader,
                   etcd_->CurrentLeader(ElectionKey(volume)));
  if (!leader) return std::nullopt;
  v1::GatewayLeader record;
  if (!record.ParseFromString(leader->value)) {
    return absl::DataLossError(absl::StrCat("etcd: the leader of ", volume,
                                            " published something unreadable"));
  }
  return Leader{record.id(), record.address(),
                static_cast<uint64_t>(leader->revision)};
}

}  // namespace dst
