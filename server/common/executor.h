// Executor: a fixed pool of threads for blocking work (SQLite reads, file I/O)
// that must never run on a gRPC callback thread.
//
// Schedule() enqueues a closure and returns at once; closures run in FIFO order
// on one of the pool's threads. Shutdown() (also run by the destructor) stops
// taking work, runs everything already queued, and joins the threads.
// Thread-safe. Closures must not throw.
#ifndef JOBWIRE_SERVER_COMMON_EXECUTOR_H_
#define JOBWIRE_SERVER_COMMON_EXECUTOR_H_

#include <deque>
#include <functional>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace jobwire {

class Executor {
 public:
  // Starts `threads` (>= 1) worker threads.
  explicit Executor(int threads);
  ~Executor();
  Executor(const Executor&) = delete;
  Executor& operator=(const Executor&) = delete;

  // Runs `fn` on a pool thread. Returns false (and drops `fn`) after Shutdown.
  bool Schedule(std::function<void()> fn);

  // Stops accepting work, drains the queue and joins the threads. Idempotent.
  void Shutdown();

 private:
  void Loop();

  absl::Mutex mu_;
  std::deque<std::function<void()>> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
};

}  // namespace jobwire

#endif  // JOBWIRE_SERVER_COMMON_EXECUTOR_H_
