// A session that outlives its streams: see transaction_session.h.
#include "services/common/transport/transaction_session.h"

#include <random>
#include <utility>

#include "absl/strings/str_cat.h"

#include "services/common/base/log.h"

namespace dst {

TransactionSession::TransactionSession(Connector connector,
                                       const TransactionSessionOptions& options)
    : connector_(std::move(connector)), options_(options) {}

TransactionSession::~TransactionSession() { Close(); }

void TransactionSession::Close() {
  Stop();
  std::shared_ptr<TransactionStream> stream;
  {
    absl::MutexLock lock(&mu_);
    closed_ = true;
    stream = std::move(stream_);
  }
  if (stream != nullptr) {
    stream->Close(absl::Seconds(5));  // answers what it can; orphans the rest
    stream.reset();
  }
  std::vector<QueuedTransaction> left;
  {
    absl::MutexLock lock(&mu_);
    left.assign(std::make_move_iterator(backlog_.begin()),
                std::make_move_iterator(backlog_.end()));
    backlog_.clear();
  }
  Fail(left, absl::StatusCode::kUnavailable, "session closed");
}

void TransactionSession::Start(std::function<void()> on_change) {
  on_change_ = std::move(on_change);
  thread_ = std::thread([this] { Run(); });
}

void TransactionSession::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

void TransactionSession::Submit(v1::Request request, TransactionDone done,
                                Payload data) {
  if (!request.data().empty()) data = TakeData(&request);
  QueuedTransaction transaction{std::move(request), std::move(done), 0,
                                absl::Now(), std::move(data)};
  std::shared_ptr<TransactionStream> stream;
  {
    absl::MutexLock lock(&mu_);
    // Behind the backlog, to keep submission order across a reconnect.
    if (!closed_ && (stream_ == nullptr || !backlog_.empty())) {
      backlog_.push_back(std::move(transaction));
      return;
    }
    stream = stream_;
  }
  if (stream != nullptr && stream->TrySubmit(transaction)) return;
  {
    // The stream just ended: its orphans arrive ahead of this one.
    absl::MutexLock lock(&mu_);
    if (!closed_) {
      backlog_.push_back(std::move(transaction));
      return;
    }
  }
  std::vector<QueuedTransaction> failed;
  failed.push_back(std::move(transaction));
  Fail(failed, absl::StatusCode::kUnavailable, "session closed");
}

v1::Reply TransactionSession::Call(v1::Request request, Payload data,
                                   Payload* reply_data) {
  return WaitForReply(
      [&](TransactionDone done) {
        Submit(std::move(request), std::move(done), std::move(data));
      },
      reply_data);
}

bool TransactionSession::connected() const {
  absl::MutexLock lock(&mu_);
  return stream_ != nullptr && !stream_->broken();
}

std::string TransactionSession::last_error() const {
  absl::MutexLock lock(&mu_);
  return last_error_;
}

size_t TransactionSession::pending() const {
  absl::MutexLock lock(&mu_);
  return backlog_.size() + (stream_ ? stream_->in_flight() : 0);
}

void TransactionSession::TakeOrphans(std::vector<QueuedTransaction> orphans) {
  {
    absl::MutexLock lock(&mu_);
    if (!closed_) {
      // Sent before anything in the backlog: they go first, oldest first.
      for (auto it = orphans.rbegin(); it != orphans.rend(); ++it) {
        backlog_.push_front(std::move(*it));
      }
      return;
    }
  }
  Fail(orphans, absl::StatusCode::kUnavailable, "session closed");
}

void TransactionSession::Fail(std::vector<QueuedTransaction>& failed,
                              absl::StatusCode code, const std::string& why) {
  for (QueuedTransaction& t : failed) {
    t.done(ErrorReply(t.request.id(), absl::Status(code, why)), Payload());
  }
  failed.clear();
}

std::vector<QueuedTransaction> TransactionSession::FlushBacklogLocked() {
  std::vector<QueuedTransaction> over_budget;
  while (!backlog_.empty()) {
    QueuedTransaction& next = backlog_.front();
    if (next.sends > options_.max_resends) {
      over_budget.push_back(std::move(next));
      backlog_.pop_front();
      continue;
    }
    if (next.sends > 0) resends_.fetch_add(1);
    if (!stream_->TrySubmit(next)) {
      break;  // the new stream died already; the run loop retries
    }
    backlog_.pop_front();
  }
  return over_budget;
}

std::vector<QueuedTransaction> TransactionSession::ExpireLocked(
    absl::Time now) {
  std::vector<QueuedTransaction> expired;
  for (auto it = backlog_.begin(); it != backlog_.end();) {
    if (it->sends > options_.max_resends ||
        (stream_ == nullptr &&
         now - it->submitted > options_.suspend_timeout)) {
      expired.push_back(std::move(*it));
      it = backlog_.erase(it);
    } else {
      ++it;
    }
  }
  return expired;
}

void TransactionSession::Run() {
  std::mt19937_64 random(std::random_device{}());
  absl::Duration backoff = options_.min_backoff;
  absl::Time next_attempt = absl::InfinitePast();
  TransactionStreamOptions stream_options = options_.stream;
  stream_options.on_orphans = [this](std::vector<QueuedTransaction> orphans) {
    TakeOrphans(std::move(orphans));
  };
  for (;;) {
    std::shared_ptr<TransactionStream> lost;
    std::shared_ptr<TransactionStream> stuck;
    std::vector<QueuedTransaction> failed;
    {
      absl::MutexLock lock(&mu_);
      auto stop = [this]()
                      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_; };
      mu_.AwaitWithTimeout(absl::Condition(&stop), options_.tick);
      if (stopping_) return;
      if (stream_ != nullptr && !stream_->broken() &&
          absl::Now() - stream_->OldestSent() > options_.request_timeout) {
        stuck = stream_;
      }
    }
    if (stuck != nullptr) {
      // Outside the lock: the stream's end hands its orphans to us.
      timeouts_.fetch_add(1);
      DST_LOG(Warning, "%s: no reply within %s; resending on a new stream",
              options_.name, absl::FormatDuration(options_.request_timeout));
      stuck->Cancel();
      stuck.reset();
    }
    {
      absl::MutexLock lock(&mu_);
      absl::Time now = absl::Now();
      if (stream_ != nullptr && stream_->broken()) {
        last_error_ = stream_->status().ToString();
        lost.swap(stream_);  // stream_ is now empty
      }
      failed = ExpireLocked(now);
    }
    if (lost != nullptr) {
      lost.reset();  // waits for its end, so every orphan is back
      DST_LOG(Warning, "%s: stream lost (%s); reconnecting", options_.name,
              last_error());
      if (on_change_) on_change_();
      next_attempt = absl::Now();  // first retry at once
    }
    Fail(failed, absl::StatusCode::kDeadlineExceeded,
         absl::StrCat(options_.name, ": no reply after ",
                      1 + options_.max_resends,
                      " sends, or no connection within ",
                      absl::FormatDuration(options_.suspend_timeout)));
    bool need_stream;
    {
      absl::MutexLock lock(&mu_);
      need_stream = stream_ == nullptr;
    }
    if (!need_stream || absl::Now() < next_attempt) continue;

    absl::StatusOr<std::unique_ptr<TransactionStream>> stream =
        connector_(stream_options);
    if (!stream.ok()) {
      std::string error = stream.status().ToString();
      {
        absl::MutexLock lock(&mu_);
        if (error != last_error_) {
          DST_LOG(Warning, "%s: %s", options_.name, error);
        }
        last_error_ = error;
      }
      std::uniform_real_distribution<double> jitter(0.5, 1.0);
      next_attempt = absl::Now() + backoff * jitter(random);
      backoff = std::min(backoff * 2, options_.max_backoff);
      continue;
    }
    backoff = options_.min_backoff;
    {
      absl::MutexLock lock(&mu_);
      stream_ = TransactionStream::Share(*std::move(stream));
      if (ever_connected_) reconnects_.fetch_add(1);
      ever_connected_ = true;
      last_error_.clear();
    }
    DST_LOG(Info, "%s: connected", options_.name);
    // The owner hears of the stream before anything is replayed on it: a
    // reply to a replayed transaction may come at once, and the owner
    // (a volume) judges it by whether the stream it came on is up. New
    // transactions queue behind the backlog meanwhile, in order.
    if (on_change_) on_change_();
    {
      absl::MutexLock lock(&mu_);
      failed = FlushBacklogLocked();
    }
    Fail(failed, absl::StatusCode::kDeadlineExceeded,
         absl::StrCat(options_.name, ": no reply after ",
                      1 + options_.max_resends, " sends"));
  }
}

}  // namespace dst
