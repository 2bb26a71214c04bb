// JobwiredProcess: the real jobwired binary as a child process, for tests and
// benchmarks that need what a user or a supervisor sees (listeners, signals,
// crashes, restarts); ChildProcess for any other binary (`jobwire worker`).
//
// The child runs in `dir` (relative --listen and --db paths resolve there);
// its stdout and stderr go to a log file in `dir`, one per process, so the
// `listening on ADDR` lines can be read back. The destructor kills (SIGKILL)
// and reaps a child that is still running.
//
// Not thread-safe: one thread drives a process. The jobwired binary is the
// one of the same build (JOBWIRED_PATH, set by tests/CMakeLists.txt) unless
// the caller names another or $JOBWIRED_BIN is set (benchmarks comparing two
// builds); an explicit `binary` wins over the environment.
#ifndef JOBWIRE_TESTS_JOBWIRED_PROCESS_H_
#define JOBWIRE_TESTS_JOBWIRED_PROCESS_H_

#include <grpcpp/grpcpp.h>
#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/base/config.h"
#include "absl/time/time.h"

namespace jobwire::test {

// A test's own time budget `d` (a deadline, a wait) in this build: 5x under
// ThreadSanitizer, which slows jobwired and the test 5-15x; `d` elsewhere.
inline absl::Duration Budget(absl::Duration d) {
#ifdef ABSL_HAVE_THREAD_SANITIZER
  return d * 5;
#else
  return d;
#endif
}

// The whole content of `path`; empty when it cannot be read.
std::string ReadWholeFile(const std::string& path);

// A fresh directory /tmp/PREFIX-XXXXXX (absolute path); aborts on failure.
std::string MakeTempDir(const std::string& prefix);
// rm -rf `dir`.
void RemoveDir(const std::string& dir);

// Certificates made by `openssl` in `dir` (aborts when it fails), each as
// PREFIXNAME.pem and PREFIXNAME.key: CAs ca and ca2; server (by ca, for
// localhost and 127.0.0.1), client (by ca), client2 (by ca2), expired (by
// ca, ended yesterday).
void MakeTestCertificates(const std::string& dir,
                          const std::string& prefix = "");

// An insecure channel to `target` that reconnects within ~100-500 ms after
// the server comes back (gRPC's default backoff grows to minutes), so tests
// that restart jobwired do not wait on the channel.
std::shared_ptr<grpc::Channel> ReconnectingChannel(const std::string& target);

// Any child process: `binary` with `args`, run in `dir` (when not empty),
// stdout and stderr to `log_path`. The destructor continues (SIGCONT, in case
// a test stopped it), kills (SIGKILL) and reaps a child that still runs.
class ChildProcess {
 public:
  ChildProcess(std::string binary, std::vector<std::string> args,
               std::string log_path, const std::string& dir = "");
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  void Signal(int signo);

  // True once the process has exited, waiting up to `timeout` (polling).
  bool Exited(absl::Duration timeout);

  // The exit status (128 + signal for a killed process); -1 while running.
  int exit_code() const { return exit_code_; }
  pid_t pid() const { return pid_; }
  std::string log() const { return ReadWholeFile(log_path_); }
  const std::string& log_path() const { return log_path_; }

 private:
  std::string log_path_;
  pid_t pid_ = -1;
  bool exited_ = false;
  int exit_code_ = -1;
};

// jobwired of this build, logging to a fresh file in `dir`.
class JobwiredProcess : public ChildProcess {
 public:
  // Starts jobwired with `args` (without argv[0]) in `dir`, its database
  // `dir`/var/jobwire.db unless `args` has its own --db (jobwired's default
  // is the user's data folder, which tests must not share). `binary`, when
  // not empty, is the jobwired executable to run instead of this build's.
  JobwiredProcess(const std::string& dir, std::vector<std::string> args,
                  const std::string& binary = "");

  // Waits until `n` "listening on" lines are logged and returns the bound
  // addresses, in --listen order. Empty when the process exits first or
  // `timeout` passes.
  std::vector<std::string> WaitListening(
      size_t n, absl::Duration timeout = absl::Seconds(20));

 private:
  static inline int counter_ = 0;
};

}  // namespace jobwire::test

#endif  // JOBWIRE_TESTS_JOBWIRED_PROCESS_H_
