// A fixed set of worker threads running queued tasks in FIFO order. Used to
// keep blocking disk I/O off gRPC's reaction threads.
//
// Thread-safe. The queue is not bounded here: callers bound the work they
// submit (the stream reactors stop reading at their in-flight window), so
// the queue never holds more than the sum of those windows.
#ifndef DST_SERVICES_COMMON_BASE_THREAD_POOL_H_
#define DST_SERVICES_COMMON_BASE_THREAD_POOL_H_

#include <deque>
#include <functional>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace dst {

class ThreadPool {
 public:
  explicit ThreadPool(int threads);
  // Runs every task already queued, then joins the workers.
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  void Schedule(std::function<void()> task);

 private:
  void Work();

  absl::Mutex mu_;
  std::deque<std::function<void()>> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> workers_;
};

}  // namespace dst

#endif  // DST_SERVICES_COMMON_BASE_THREAD_POOL_H_
