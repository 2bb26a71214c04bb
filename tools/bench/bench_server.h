// Pieces every end-to-end benchmark shares: a jobwired child it starts
// itself (BenchServer), latency samples, and the start of a BENCHMARKS.md
// section. Not for tests: a failure to start exits the benchmark.
#ifndef JOBWIRE_TOOLS_BENCH_BENCH_SERVER_H_
#define JOBWIRE_TOOLS_BENCH_BENCH_SERVER_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "jobwire/v1/admin_service.pb.h"
#include "tests/jobwired_process.h"

namespace jobwire::bench {

struct ServerConfig {
  std::string dir = "/tmp";             // the fresh directory goes under it
  std::string sync = "full";            // jobwired --synchronous
  std::string jobwired;                 // empty: this build's
  std::vector<std::string> extra_args;  // more jobwired flags
};

// A jobwired child on a fresh directory under config.dir: the Unix socket
// and 127.0.0.1:0, synchronous as configured. The constructor returns once
// it serves (exits the process when it does not within 30 s); the
// destructor stops it (SIGTERM, then SIGKILL after 30 s) and removes the
// directory. Not thread-safe.
class BenchServer {
 public:
  explicit BenchServer(const ServerConfig& config);
  ~BenchServer();
  BenchServer(const BenchServer&) = delete;
  BenchServer& operator=(const BenchServer&) = delete;

  std::string unix_target() const { return "unix:" + dir_ + "/j.sock"; }
  // The TCP address, from GetServerInfo's listeners.
  std::string tcp_target() const { return tcp_; }
  // The database file.
  std::string db_path() const { return dir_ + "/j.db"; }

  // CPU time (user + system) the server has used, in seconds.
  double CpuSeconds() const;
  // The store's group-commit totals (GetServerInfo `storage`); empty when
  // the call fails (an older jobwired, run with --jobwired, has none).
  std::optional<v1::StorageStats> Storage() const;
  // VmRSS and VmHWM (peak RSS) of the server in KiB; -1 when unreadable.
  int64_t RssKib() const { return StatusKib("VmRSS:"); }
  int64_t PeakRssKib() const { return StatusKib("VmHWM:"); }

  // Stops the server (SIGTERM) and waits for it to exit, so its database
  // can be opened by someone else; the directory stays until destruction.
  void Stop();

 private:
  std::optional<v1::ServerInfo> Info(absl::Duration timeout) const;
  bool Serving();
  int64_t StatusKib(absl::string_view field) const;

  std::string dir_;
  std::string tcp_;
  std::unique_ptr<test::JobwiredProcess> process_;
};

// Latency samples in microseconds. Thread-safe.
class Samples {
 public:
  void Add(double us) {
    absl::MutexLock lock(&mu_);
    values_.push_back(us);
  }
  size_t count() {
    absl::MutexLock lock(&mu_);
    return values_.size();
  }
  // The q-quantile in milliseconds (nearest rank); 0 when empty.
  double QuantileMs(double q);

 private:
  absl::Mutex mu_;
  std::vector<double> values_ ABSL_GUARDED_BY(mu_);
};

// "## `title`, <date>" and the machine line of a BENCHMARKS.md section.
std::string SectionStart(absl::string_view title,
                         const std::string& load_at_start);

// Prints `md` and, when `append_path` is not empty, appends it to that file.
void Emit(const std::string& append_path, const std::string& md);

}  // namespace jobwire::bench

#endif  // JOBWIRE_TOOLS_BENCH_BENCH_SERVER_H_
