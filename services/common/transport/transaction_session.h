// A session that outlives its streams: the transaction discipline of the
// original DST driver. Requests are submitted to the session; it carries
// them on the current TransactionStream and, when that stream breaks,
// keeps the unanswered ones (oldest first) and replays them, in order, on
// the next stream, which a background thread builds with the Connector
// (re-negotiating) after an exponential backoff with jitter.
//
// A transaction unanswered `request_timeout` after it was sent makes the
// session give up on the stream (cancel it) and resend everything in
// flight on a new one; a transaction sent 1 + `max_resends` times without
// an answer fails with DEADLINE_EXCEEDED. Requests wait for a connection at
// most `suspend_timeout`, then fail with UNAVAILABLE.
//
// Thread-safe. Completion callbacks run on gRPC threads or the session's
// thread and must not block.
#ifndef DST_SERVICES_COMMON_TRANSPORT_TRANSACTION_SESSION_H_
#define DST_SERVICES_COMMON_TRANSPORT_TRANSACTION_SESSION_H_

#include <atomic>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

#include "dst/v1/exporter.pb.h"
#include "services/common/transport/transaction_stream.h"

namespace dst {

struct TransactionSessionOptions {
  std::string name;  // for logs, e.g. the peer's address
  // A sent transaction unanswered this long is resent on a new stream.
  // Default 10 s.
  absl::Duration request_timeout = absl::Seconds(10);
  // Resends after the first send before a transaction fails. Default 3.
  int max_resends = 3;
  // How long a request waits for a connection. Default 30 s.
  absl::Duration suspend_timeout = absl::Seconds(30);
  absl::Duration min_backoff = absl::Milliseconds(100);  // reconnect backoff
  absl::Duration max_backoff = absl::Seconds(5);
  // How often timeouts are checked. Default 50 ms.
  absl::Duration tick = absl::Milliseconds(50);
  TransactionStreamOptions stream;  // on_orphans is the session's own
};

class TransactionSession {
 public:
  // Builds a connected stream with the given options (negotiating first);
  // an error is retried after the backoff.
  using Connector =
      std::function<absl::StatusOr<std::unique_ptr<TransactionStream>>(
          const TransactionStreamOptions&)>;

  TransactionSession(Connector connector,
                     const TransactionSessionOptions& options);
  // Close().
  ~TransactionSession();
  TransactionSession(const TransactionSession&) = delete;
  TransactionSession& operator=(const TransactionSession&) = delete;

  // Starts the connecting thread. `on_change` runs on it after each
  // connect and each stream loss.
  void Start(std::function<void()> on_change = nullptr);
  // Stops and joins the thread; `on_change` is not called afterwards.
  void Stop();
  // Stop(), then closes the stream (it answers what it can within 5 s)
  // and fails whatever is still pending with UNAVAILABLE, calling each
  // `done` before it returns. A later Submit fails at once. The owner of
  // the `done` callbacks calls it while they can still run.
  void Close();

  // As TransactionStream::Submit and Call.
  void Submit(v1::Request request, TransactionDone done, Payload data = {});
  v1::Reply Call(v1::Request request, Payload data = {},
                 Payload* reply_data = nullptr);

  bool connected() const;
  // Why the last connection attempt or stream failed ("" if none).
  std::string last_error() const;
  size_t pending() const;  // waiting for a stream, plus in flight on it

  // Counters since start.
  uint64_t resends() const { return resends_.load(); }
  uint64_t timeouts() const { return timeouts_.load(); }
  uint64_t reconnects() const { return reconnects_.load(); }

 private:
  void Run();
  void TakeOrphans(std::vector<QueuedTransaction> orphans);
  // Moves the backlog onto `stream_` in order. Returns those that must fail.
  std::vector<QueuedTransaction> FlushBacklogLocked()
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Fails transactions over their resend budget or suspend time.
  std::vector<QueuedTransaction> ExpireLocked(absl::Time now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  static void Fail(std::vector<QueuedTransaction>& failed,
                   absl::StatusCode code, const std::string& why);

  const Connector connector_;
  const TransactionSessionOptions options_;
  std::function<void()> on_change_;
  std::thread thread_;
  std::atomic<uint64_t> resends_{0};
  std::atomic<uint64_t> timeouts_{0};
  std::atomic<uint64_t> reconnects_{0};

  mutable absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  std::shared_ptr<TransactionStream> stream_ ABSL_GUARDED_BY(mu_);
  // Oldest first; replayed before anything submitted later.
  std::deque<QueuedTransaction> backlog_ ABSL_GUARDED_BY(mu_);
  std::string last_error_ ABSL_GUARDED_BY(mu_);
  bool ever_connected_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace dst

#endif  // DST_SERVICES_COMMON_TRANSPORT_TRANSACTION_SESSION_H_
