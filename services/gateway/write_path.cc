// The write path of a volume: see write_path.h.
#include "services/gateway/write_path.h"

#include <utility>

#include "absl/strings/str_cat.h"

#include "services/common/protocol/request_validation.h"
#include "services/common/transport/transaction_stream.h"

namespace dst {

namespace {

MirrorState::Outcome OutcomeOf(int state) {
  return state == 1   ? MirrorState::Outcome::kOk
         : state == 2 ? MirrorState::Outcome::kFailed
                      : MirrorState::Outcome::kLagging;
}

}  // namespace

// A modification or flush sent to several replicas.
struct WritePath::Fanout {
  enum State { kPending = 0, kOk = 1, kFailed = 2 };
  struct Target {
    size_t slot;
    bool required;  // in sync when sent: the acknowledgement depends on it
    State state = kPending;
    LagDeadlines::Ticket lag = 0;  // its lag deadline, once one is started
  };
  v1::Request request;  // its data field empty
  Payload data;         // a write's, shared by every target
  bool flush = false;
  uint64_t first_region = 0;  // regions a modification touches
  uint64_t last_region = 0;
  std::vector<MirrorState::Target> plan;  // as MirrorState planned it
  MirrorState::FlushPlan flush_plan;      // flushes
  absl::Mutex mu;
  std::vector<Target> targets;
  size_t pending = 0;
  bool required_ok = false;
  bool finished = false;
  bool fenced = false;
  v1::Reply first_error;
  TransactionDone done;
};

void WritePath::Submit(v1::Request request, Payload data,
                       TransactionDone done) {
  auto fanout = std::make_shared<Fanout>();
  fanout->request = std::move(request);
  fanout->data = std::move(data);
  fanout->flush = !IsModifying(fanout->request.op());
  const uint64_t offset = fanout->request.offset();
  const uint64_t length = fanout->request.length();
  const uint64_t region = core_.config.region_bytes();
  fanout->first_region = offset / region;
  fanout->last_region =
      length == 0 ? fanout->first_region : (offset + length - 1) / region;
  if (fanout->flush) {
    fanout->done = std::move(done);
    Send(fanout);
    return;
  }
  fanout->done = [this, offset, length, done = std::move(done)](
                     v1::Reply&& reply, Payload&& reply_data) {
    core_.modifications.Release(offset, length);
    done(std::move(reply), std::move(reply_data));
  };
  core_.modifications.Acquire(offset, length, [this, fanout] { Send(fanout); });
}

void WritePath::Send(const std::shared_ptr<Fanout>& fanout) {
  const uint64_t id = fanout->request.id();
  absl::Status refused;
  {
    absl::MutexLock lock(&core_.mu);
    if (!core_.fenced.empty()) {
      refused =
          absl::AbortedError(absl::StrCat("volume is fenced: ", core_.fenced));
    } else if (!PlanLocked(fanout, &refused)) {
      return;  // sent once what it relies on is durable
    }
  }
  if (!refused.ok()) {
    fanout->done(ErrorReply(id, refused), Payload());
    return;
  }
  // Every target shares the data: a mirrored write is not copied here.
  const Payload data = std::move(fanout->data);
  for (size_t t = 0; t < fanout->targets.size(); ++t) {
    ReplicaHandle* replica =
        core_.slots[fanout->targets[t].slot]->replica.get();
    replica->Submit(
        fanout->request,
        [this, fanout, t](v1::Reply&& reply, Payload&&) {
          OnReply(fanout, t, std::move(reply));
        },
        data);
  }
}

bool WritePath::PlanLocked(const std::shared_ptr<Fanout>& fanout,
                           absl::Status* refused) {
  const std::vector<bool>& connected = core_.connected;
  if (fanout->flush) {
    fanout->flush_plan = core_.state.PlanFlush(connected);
    fanout->plan = fanout->flush_plan.targets;
  } else {
    MirrorState::WritePlan plan = core_.state.PlanWrite(
        fanout->first_region, fanout->last_region, connected);
    fanout->plan = std::move(plan.targets);
    // A modification goes out only once what it relies on is durable: the
    // activity log of its regions, the dirty bits of the replicas it skips.
    // Then it is planned again, with the state then current.
    const uint64_t id = fanout->request.id();
    if (!core_.DurableOrWaitLocked(
            plan.needed_version, [this, fanout, id](const absl::Status& s) {
              if (s.ok()) {
                Send(fanout);
              } else {
                fanout->done(ErrorReply(id, s), Payload());
              }
            })) {
      return false;
    }
  }
  bool any_required = false;
  for (const MirrorState::Target& t : fanout->plan) any_required |= t.required;
  if (!any_required) {
    if (fanout->flush) {  // gives back what the flush was to cover
      core_.state.EndFlush(
          fanout->flush_plan,
          std::vector<MirrorState::Outcome>(fanout->plan.size(),
                                            MirrorState::Outcome::kFailed),
          /*acknowledged=*/false);
    }
    *refused = absl::UnavailableError("no in-sync replica");
    return true;
  }
  if (!fanout->flush) {
    core_.state.BeginWrite(fanout->first_region, fanout->last_region);
  }
  absl::MutexLock fanout_lock(&fanout->mu);
  fanout->targets.clear();
  for (const MirrorState::Target& t : fanout->plan) {
    fanout->targets.push_back(Fanout::Target{t.replica, t.required});
  }
  fanout->pending = fanout->targets.size();
  return true;
}

void WritePath::OnReply(const std::shared_ptr<Fanout>& fanout, size_t target,
                        v1::Reply&& reply) {
  bool finish = false;
  if (core_.mirror() && !fanout->flush && reply.status() == 0) {
    // Once finished, a late taker has the region dirty (EndWrite).
    absl::MutexLock lock(&core_.mu);
    absl::MutexLock fanout_lock(&fanout->mu);
    if (!fanout->finished) {
      core_.state.Took(fanout->targets[target].slot, fanout->first_region,
                       fanout->last_region);
    }
  }
  {
    absl::MutexLock lock(&fanout->mu);
    Fanout::Target& t = fanout->targets[target];
    --fanout->pending;
    core_.slots[t.slot]->lag->Answer(t.lag);
    bool started_lag = false;
    if (reply.status() == 0) {
      t.state = Fanout::kOk;
      if (t.required && !fanout->required_ok) {
        fanout->required_ok = true;
        started_lag = true;
      }
    } else {
      t.state = Fanout::kFailed;
      if (reply.status() == static_cast<int>(absl::StatusCode::kAborted)) {
        fanout->fenced = true;
      }
      if (fanout->first_error.status() == 0) {
        fanout->first_error = reply;
        fanout->first_error.set_message(
            absl::StrCat("replica ", core_.slots[t.slot]->replica->address(),
                         ": ", reply.message()));
      }
    }
    bool required_left = false;
    for (const auto& other : fanout->targets) {
      if (other.required && other.state == Fanout::kPending) {
        required_left = true;
      }
    }
    if (fanout->finished) return;
    if (fanout->pending == 0 || (!required_left && !fanout->required_ok)) {
      finish = true;
    } else if (started_lag) {
      // A replica it required took it: the others have the lag limit.
      StartLagLocked(fanout);
    }
  }
  if (finish) Finish(fanout);
}

void WritePath::StartLagLocked(const std::shared_ptr<Fanout>& fanout) {
  for (Fanout::Target& t : fanout->targets) {
    if (t.state != Fanout::kPending) continue;
    LagDeadlines& lag = *core_.slots[t.slot]->lag;
    lag.Answer(t.lag);  // one deadline per target at a time
    // A weak reference: a deadline must not keep a write's payload alive.
    t.lag = lag.Start([this, weak = std::weak_ptr<Fanout>(fanout)] {
      if (std::shared_ptr<Fanout> fanout = weak.lock()) Finish(fanout);
    });
  }
}

void WritePath::Finish(const std::shared_ptr<Fanout>& fanout) {
  std::vector<std::function<void()>> ready;
  {
    absl::MutexLock lock(&core_.mu);
    FinishLocked(fanout, &ready);
  }
  for (auto& fn : ready) fn();
}

void WritePath::FinishLocked(const std::shared_ptr<Fanout>& fanout,
                             std::vector<std::function<void()>>* ready) {
  const uint64_t id = fanout->request.id();
  std::vector<MirrorState::Outcome> outcomes;
  bool fenced;
  v1::Reply first_error;
  {
    absl::MutexLock fanout_lock(&fanout->mu);
    if (fanout->finished) return;
    for (const Fanout::Target& t : fanout->targets) {
      outcomes.push_back(OutcomeOf(t.state));
    }
    fenced = fanout->fenced;
    first_error = fanout->first_error;
    // The lag limit passed, but the replicas that took it have left the
    // set since: the others are not left behind; wait for them instead.
    if (!fenced && fanout->pending > 0 &&
        !core_.state.HeldInSync(fanout->plan, outcomes, core_.connected)) {
      StartLagLocked(fanout);
      return;
    }
    fanout->finished = true;
    for (const Fanout::Target& t : fanout->targets) {
      core_.slots[t.slot]->lag->Answer(t.lag);
    }
  }
  const bool acknowledged =
      !fenced &&
      core_.state.HeldInSync(fanout->plan, outcomes, core_.connected);
  auto reply = std::make_shared<v1::Reply>();
  if (!acknowledged) {
    // Fenced: another gateway writes now. Else nothing in sync took it.
    *reply = first_error;
    if (reply->status() == 0) {
      *reply =
          ErrorReply(id, absl::UnavailableError("no in-sync replica took it"));
    }
  }
  reply->set_id(id);
  if (fenced) core_.FenceLocked(first_error.message());
  const uint64_t needed =
      fanout->flush
          ? core_.state.EndFlush(fanout->flush_plan, outcomes, acknowledged)
          : core_.state.EndWrite(fanout->first_region, fanout->last_region,
                                 fanout->plan, outcomes, acknowledged,
                                 core_.connected);
  // The reply goes once what it relies on is durable (the replicas that
  // missed it recorded as out of sync), from the store's thread; if it
  // already is, once the lock is released.
  auto answer = [fanout, reply](const absl::Status& s) {
    fanout->done(s.ok() ? v1::Reply(*reply) : ErrorReply(reply->id(), s),
                 Payload());
  };
  if (fenced || core_.DurableOrWaitLocked(needed, answer)) {
    ready->push_back([answer] { answer(absl::OkStatus()); });
  }
}

}  // namespace dst
