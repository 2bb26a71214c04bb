// Pieces every end-to-end benchmark shares: a jobwired child it starts
// itself (BenchServer), latency samples, and the start of a BENCHMARKS.md
// section. Not for tests: a failure to start exits the benchmark.
#ifndef JOBWIRE_TOOLS_BENCH_BENCH_SERVER_H_
#define JOBWIRE_TOOLS_BENCH_BENCH_SERVER_H_

#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "jobwire/v1/admin_service.pb.h"
#include "jobwire/v1/job_service.grpc.pb.h"
#include "tests/jobwired_process.h"

namespace jobwire::bench {

struct ServerConfig {
  std::string dir = "/tmp";             // the fresh directory goes under it
  std::string sync = "full";            // jobwired --synchronous
  std::string jobwired;                 // empty: this build's
  std::vector<std::string> extra_args;  // more jobwired flags
  // jobwired --db when not empty (a PostgreSQL database, postgres:...;
  // then without --synchronous); empty: a fresh SQLite file.
  std::string db;
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
  // The first HTTP listener ("127.0.0.1:PORT"), when the server was started
  // with `--http HOST:PORT` in extra_args; empty otherwise.
  std::string http_target() const { return http_; }
  // The process id of the jobwired child.
  int pid() const;
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
  std::string http_;
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

// A channel with its own connection to `target` (distinct arguments keep
// gRPC from sharing one subchannel between channels).
std::shared_ptr<grpc::Channel> OwnChannel(const std::string& target, int n);

// The benchmarks' sample job: queue "bench", kind "resize-image", three args
// and the label tenant=acme.
void FillSampleJob(v1::Job* job);

// Creates `n` queued sample jobs with SubmitJobs batches of 1,000; returns
// their ids (fewer when the stream fails, which is printed).
std::vector<std::string> CreateJobs(v1::JobService::Stub* stub, int n);

// Raises this process's RLIMIT_NOFILE to its hard limit; jobwired children
// started afterwards inherit it.
void RaiseFdLimit();

// The median of `v`; 0 when empty.
double Median(std::vector<double> v);

// A server stream read by the callback API; `on_message` runs on a gRPC
// thread for every message. Start the call on context() with the stub's
// async() API and this reactor, then Begin().
template <typename Response>
class StreamReader : public grpc::ClientReadReactor<Response> {
 public:
  using OnMessage = std::function<void(const Response&)>;

  explicit StreamReader(OnMessage on_message)
      : on_message_(std::move(on_message)) {}

  grpc::ClientContext* context() { return &context_; }
  void Begin() {
    this->StartRead(&response_);
    this->StartCall();
  }
  void OnReadDone(bool ok) override {
    if (!ok) return;
    on_message_(response_);
    this->StartRead(&response_);
  }
  void OnDone(const grpc::Status& /*status*/) override {
    absl::MutexLock lock(&mu_);
    done_ = true;
  }
  void Cancel() { context_.TryCancel(); }
  // Waits for OnDone until `deadline`; false on timeout.
  bool WaitDone(absl::Time deadline) {
    absl::MutexLock lock(&mu_);
    return mu_.AwaitWithDeadline(absl::Condition(&done_), deadline);
  }

 private:
  OnMessage on_message_;
  grpc::ClientContext context_;
  Response response_;
  absl::Mutex mu_;
  bool done_ ABSL_GUARDED_BY(mu_) = false;
};

// "## `title`, <date>" and the machine line of a BENCHMARKS.md section.
std::string SectionStart(absl::string_view title,
                         const std::string& load_at_start);

// Prints `md` and, when `append_path` is not empty, appends it to that file.
void Emit(const std::string& append_path, const std::string& md);

}  // namespace jobwire::bench

#endif  // JOBWIRE_TOOLS_BENCH_BENCH_SERVER_H_
