// The lag deadlines of one replica. Every transaction a volume waits on this
// replica for, against a limit (a mirrored write that another replica has
// already taken, a read that a hedge may follow), gets a deadline `limit`
// after the wait starts. One timer, armed on the oldest unanswered
// deadline, serves them all: a replica that answers in time costs about
// one timer per `limit`, not one per transaction, and a laggard's overdue
// transactions expire together, in one wake-up.
//
// Invariant: every deadline not answered by the time it passes expires
// once, in the order the deadlines were started; an answered one never
// expires.
//
// Thread-safe. `expire` callbacks run on the scheduler's thread, outside
// the lock, oldest first; they may start and answer deadlines.
#ifndef DST_SERVICES_GATEWAY_LAG_DEADLINES_H_
#define DST_SERVICES_GATEWAY_LAG_DEADLINES_H_

#include <cstdint>
#include <deque>
#include <functional>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

#include "services/common/base/scheduler.h"

namespace dst {

class LagDeadlines {
 public:
  // Names a started deadline; 0 is none.
  using Ticket = uint64_t;

  // On `timers`, which outlives it (shut down first: a queued timer calls
  // back into this).
  LagDeadlines(Scheduler& timers, absl::Duration limit)
      : timers_(timers), limit_(limit) {}
  LagDeadlines(const LagDeadlines&) = delete;
  LagDeadlines& operator=(const LagDeadlines&) = delete;

  // Starts a deadline `limit` from now: `expire` runs once it has passed,
  // unless Answer(ticket) came first.
  Ticket Start(std::function<void()> expire);
  // The transaction answered: its deadline is dropped. A ticket that
  // expired, was answered already, or is 0 is ignored.
  void Answer(Ticket ticket);
  // Deadlines started and neither answered nor expired.
  size_t waiting() const;

 private:
  struct Entry {
    absl::Time deadline;
    std::function<void()> expire;  // empty once answered
  };
  void OnTimer();
  // Drops answered deadlines from the front.
  void TrimLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  Scheduler& timers_;
  const absl::Duration limit_;
  mutable absl::Mutex mu_;
  // Deadlines by ticket, oldest first: entries_[i] is ticket first_ + i.
  std::deque<Entry> entries_ ABSL_GUARDED_BY(mu_);
  Ticket first_ ABSL_GUARDED_BY(mu_) = 1;
  size_t waiting_ ABSL_GUARDED_BY(mu_) = 0;
  bool armed_ ABSL_GUARDED_BY(mu_) = false;  // a timer is queued
};

}  // namespace dst

#endif  // DST_SERVICES_GATEWAY_LAG_DEADLINES_H_
