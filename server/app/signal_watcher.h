// SignalWatcher: delivers the stop signals (SIGINT, SIGTERM, SIGHUP, SIGQUIT)
// to a callback on a dedicated thread, so no work ever runs in a signal
// handler.
//
// BlockStopSignals() must run at the top of main, before any thread starts:
// every later thread inherits the blocked mask, and the watcher's thread
// reads the signals from a signalfd. The destructor stops and joins the
// thread. Thread-safe; one watcher per process.
#ifndef JOBWIRE_SERVER_APP_SIGNAL_WATCHER_H_
#define JOBWIRE_SERVER_APP_SIGNAL_WATCHER_H_

#include <functional>
#include <thread>

#include "absl/status/statusor.h"

namespace jobwire {

class SignalWatcher {
 public:
  // Called on the watcher thread: `signo` is the signal, `count` is 1 for the
  // first stop signal, 2 for the second, and so on.
  using Callback = std::function<void(int signo, int count)>;

  // Blocks the stop signals in the calling thread (and so in every thread
  // created after it).
  static void BlockStopSignals();

  // Starts the watcher thread. Fails: INTERNAL when signalfd or eventfd fail.
  static absl::StatusOr<std::unique_ptr<SignalWatcher>> Start(
      Callback callback);

  ~SignalWatcher();
  SignalWatcher(const SignalWatcher&) = delete;
  SignalWatcher& operator=(const SignalWatcher&) = delete;

 private:
  SignalWatcher(int signal_fd, int stop_fd, Callback callback);
  void Loop();

  const int signal_fd_;
  const int stop_fd_;  // eventfd: written by the destructor to end Loop()
  const Callback callback_;
  std::thread thread_;
};

}  // namespace jobwire

#endif  // JOBWIRE_SERVER_APP_SIGNAL_WATCHER_H_
