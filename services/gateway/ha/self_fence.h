// Self-fencing: the instant after which a gateway in HA mode must not
// answer a client any more, because its etcd lease (and so each leadership
// it holds on that lease) could have expired and another gateway could
// lead its volumes.
//
// The timing argument. A renewal is sent at local time S and etcd answers
// with the lease's TTL; etcd renews the lease when the request reaches it,
// at or after S, and revokes it no sooner than TTL after that (a change of
// etcd leader only extends leases). So the lease holds until at least
// S + TTL in etcd's time. Local time may run slow next to etcd's: with a
// relative clock-rate error below `rate_margin` (default 10%; real clocks
// err by parts per million, a VM's by far less than 10%), the lease holds
// until at least S + TTL × (1 - rate_margin) in local time. That instant is
// the deadline: a reply is sent only before it, so nothing is answered
// after another gateway could have been elected. A new leader is elected
// only once the lease has gone, and it claims the exporters before its
// first write, so writes this gateway sent and did not answer are refused
// where they run (the exporters' execution-time fence) or land before the
// new leader starts; the client resends them to the new leader.
//
// Renewals only move the deadline forward, and only by renewals sent
// later (an answer to an older renewal never shortens a newer one).
//
// The clock is CLOCK_MONOTONIC (steady_clock): it does not jump with the
// wall clock. Thread-safe: Expired() is one atomic load and a clock read,
// for every reply.
#ifndef DST_SERVICES_GATEWAY_HA_SELF_FENCE_H_
#define DST_SERVICES_GATEWAY_HA_SELF_FENCE_H_

#include <atomic>
#include <chrono>
#include <cstdint>

#include "absl/time/time.h"

namespace dst {

class SelfFence {
 public:
  explicit SelfFence(double rate_margin = 0.1) : rate_margin_(rate_margin) {}
  SelfFence(const SelfFence&) = delete;
  SelfFence& operator=(const SelfFence&) = delete;

  // Steady-clock time, for `sent` below.
  static absl::Duration Now() {
    return absl::FromChrono(
        std::chrono::steady_clock::now().time_since_epoch());
  }

  // A renewal (or the grant) sent at `sent` was answered with `ttl`.
  void Renewed(absl::Duration sent, absl::Duration ttl) {
    const int64_t until =
        absl::ToInt64Nanoseconds(sent + ttl * (1.0 - rate_margin_));
    int64_t current = until_ns_.load(std::memory_order_relaxed);
    while (until > current && !until_ns_.compare_exchange_weak(
                                  current, until, std::memory_order_release)) {
    }
  }
  // Never answer again (the lease is known to be gone): the deadline is
  // now, unless it has passed already.
  void Expire() {
    const int64_t now = absl::ToInt64Nanoseconds(Now());
    int64_t current = until_ns_.load(std::memory_order_relaxed);
    while (now < current && !until_ns_.compare_exchange_weak(
                                current, now, std::memory_order_release)) {
    }
  }

  // True when `now` is past the deadline (or none was ever set).
  bool ExpiredAt(absl::Duration now) const {
    return absl::ToInt64Nanoseconds(now) >=
           until_ns_.load(std::memory_order_acquire);
  }
  bool Expired() const { return ExpiredAt(Now()); }
  // How long until the deadline (negative: past it).
  absl::Duration Left() const {
    return absl::Nanoseconds(until_ns_.load(std::memory_order_acquire)) - Now();
  }

 private:
  const double rate_margin_;
  std::atomic<int64_t> until_ns_{0};
};

}  // namespace dst

#endif  // DST_SERVICES_GATEWAY_HA_SELF_FENCE_H_
