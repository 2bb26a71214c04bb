// e2e_bench: end-to-end throughput of no-op jobs: submit -> durable commit ->
// dispatch -> `assign` over the worker stream -> `complete` -> durable
// commit.
//
// Two modes:
//   --mode=jobwired (default, the end-to-end number): the real jobwired binary
//     of this build runs as a child process (synchronous=full unless --sync
//     says otherwise, database in a fresh directory under /tmp, Unix socket).
//     This process is the client side: `streams` SubmitJobs bidi streams
//     submitting batches of `batch` jobs (one batch in flight per stream, as
//     the server reads the next batch after answering one), and `workers`
//     WorkerService.Connect streams completing every job at once. The end is
//     when GetServerInfo counts every job SUCCEEDED. "Server CPU" is the
//     jobwired process alone (/proc/PID/stat).
//   --mode=inproc: the store, Dispatcher and WorkerService in this process,
//     the load generator submitting straight into the store (no gRPC on the
//     submit side), workers in a forked child process. "Server CPU" includes
//     the load generator. Kept to compare with earlier runs and to read the
//     dispatcher's own latency samples.
//
// Dispatch latency, measured afterwards with idle workers and one job at a
// time (`trickle` jobs): inproc reports the dispatcher's own samples (commit
// of the submit -> `assign` handed to the stream); jobwired reports what a
// client sees, SubmitJob sent -> `assign` read by the worker, which also
// includes the submit's commit (an fsync), the Assign's commit (another) and
// two socket hops, so it is an upper bound of the server-side figure.
//
//   e2e_bench [--mode=jobwired|inproc] [--jobs=200000] [--workers=4]
//             [--slots=512] [--batch=500] [--streams=8] [--in_flight=8]
//             [--trickle=1000] [--max_seconds=60] [--sync=full|normal|off]
//             [--burn_down] [--db=postgres:CONNINFO]
//
// --burn_down (jobwired mode): submit every job first with no worker
// connected, then connect the workers and time them emptying the queue (the
// way queue benchmarks such as BullMQ's "burn down" a filled queue); the
// submit phase is reported on its own line.
#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "jobwire/v1/admin_service.grpc.pb.h"
#include "jobwire/v1/job_service.grpc.pb.h"
#include "jobwire/v1/worker_service.grpc.pb.h"
#include "server/api/worker_service.h"
#include "server/common/clock.h"
#include "server/core/retry.h"
#include "server/scheduling/dispatcher.h"
#include "server/storage/sqlite_job_store.h"
#include "tests/jobwired_process.h"
#include "tools/bench/machine.h"

namespace jobwire::bench {
namespace {

namespace v1 = ::jobwire::v1;

struct Flags {
  std::string mode = "jobwired";
  int jobs = 200000;
  int workers = 4;
  int slots = 512;
  int batch = 500;
  int streams = 8;
  int in_flight = 8;
  int trickle = 1000;
  int max_seconds = 60;
  std::string sync = "full";
  // jobwired --db: a PostgreSQL database (postgres:...); empty: SQLite.
  std::string db;
  // jobwired mode: submit every job first, then connect the workers and time
  // how fast they empty the queue (a "burn-down").
  bool burn_down = false;
};

bool ParseFlags(int argc, char** argv, Flags* f) {
  for (int i = 1; i < argc; ++i) {
    absl::string_view arg = argv[i];
    auto num = [&](absl::string_view name, int* out) {
      absl::string_view v = arg;
      return absl::ConsumePrefix(&v, absl::StrCat("--", name, "=")) &&
             absl::SimpleAtoi(v, out);
    };
    auto str = [&](absl::string_view name, std::string* out) {
      absl::string_view v = arg;
      if (!absl::ConsumePrefix(&v, absl::StrCat("--", name, "="))) return false;
      *out = std::string(v);
      return true;
    };
    if (arg == "--burn_down") {
      f->burn_down = true;
      continue;
    }
    if (!(num("jobs", &f->jobs) || num("workers", &f->workers) ||
          num("slots", &f->slots) || num("batch", &f->batch) ||
          num("streams", &f->streams) || num("in_flight", &f->in_flight) ||
          num("trickle", &f->trickle) || num("max_seconds", &f->max_seconds) ||
          str("mode", &f->mode) || str("sync", &f->sync) ||
          str("db", &f->db))) {
      std::fprintf(stderr, "unknown flag %s\n", argv[i]);
      return false;
    }
  }
  if (f->mode != "jobwired" && f->mode != "inproc") {
    std::fprintf(stderr, "--mode takes jobwired or inproc\n");
    return false;
  }
  f->batch = std::clamp(f->batch, 1, 1000);
  return true;
}

double CpuSeconds(const rusage& r) {
  return r.ru_utime.tv_sec + r.ru_utime.tv_usec / 1e6 + r.ru_stime.tv_sec +
         r.ru_stime.tv_usec / 1e6;
}

double SelfCpuSeconds() {
  rusage r;
  getrusage(RUSAGE_SELF, &r);
  return CpuSeconds(r);
}

absl::Duration Percentile(std::vector<absl::Duration> v, double p) {
  if (v.empty()) return absl::ZeroDuration();
  std::sort(v.begin(), v.end());
  size_t i = static_cast<size_t>(p * static_cast<double>(v.size() - 1));
  return v[i];
}

// `workers` WorkerService streams, one thread each, completing every job at
// once. `on_assign` (may be empty) sees each assign's job id as it is read.
class Workers {
 public:
  using OnAssign = std::function<void(const std::string& job_id)>;

  Workers(const std::string& address, const Flags& flags, OnAssign on_assign)
      : on_assign_(std::move(on_assign)) {
    contexts_.resize(static_cast<size_t>(flags.workers));
    for (int i = 0; i < flags.workers; ++i) {
      contexts_[static_cast<size_t>(i)] =
          std::make_unique<grpc::ClientContext>();
      threads_.emplace_back([this, address, slots = flags.slots, i] {
        Run(address, slots, i, contexts_[static_cast<size_t>(i)].get());
      });
    }
  }

  // Cancels the streams and joins the threads.
  void Stop() {
    for (auto& ctx : contexts_) ctx->TryCancel();
    for (std::thread& t : threads_) t.join();
    threads_.clear();
  }
  // Joins the threads (the streams end with the server).
  void Join() {
    for (std::thread& t : threads_) t.join();
    threads_.clear();
  }

  int64_t completes_sent() const { return completes_.load(); }

 private:
  void Run(const std::string& address, int slots, int i,
           grpc::ClientContext* ctx) {
    grpc::ChannelArguments args;
    args.SetInt("jobwire.bench.worker", i);  // one connection per worker
    auto channel = grpc::CreateCustomChannel(
        address, grpc::InsecureChannelCredentials(), args);
    auto stub = v1::WorkerService::NewStub(channel);
    auto stream = stub->Connect(ctx);
    v1::ConnectRequest hello;
    hello.mutable_hello()->set_worker_id(absl::StrCat("bench-", i));
    hello.mutable_hello()->set_slots(slots);
    stream->Write(hello);
    v1::ConnectResponse msg;
    v1::ConnectRequest done;
    while (stream->Read(&msg)) {
      if (!msg.has_assign()) continue;
      if (on_assign_) on_assign_(msg.assign().job().id());
      done.mutable_complete()->set_job_id(msg.assign().job().id());
      done.mutable_complete()->set_attempt(msg.assign().attempt());
      if (!stream->Write(done)) break;
      completes_.fetch_add(1, std::memory_order_relaxed);
    }
    stream->Finish();
  }

  OnAssign on_assign_;
  std::vector<std::unique_ptr<grpc::ClientContext>> contexts_;
  std::vector<std::thread> threads_;
  std::atomic<int64_t> completes_{0};
};

struct Result {
  int64_t done = 0;
  double seconds = 0;
  double server_cpu = 0;
  double client_cpu = 0;  // load generator + workers (jobwired mode), or
                          // the forked worker process (inproc mode)
  std::vector<absl::Duration> latency;
  std::string latency_name;
  std::string store_stats;   // inproc mode only
  std::string submit_phase;  // --burn_down only
};

void Print(const Flags& flags, const Result& r) {
  const bool inproc = flags.mode == "inproc";
  std::printf(
      "mode: %s%s (%s)\n"
      "jobs completed: %lld of %d in %.2fs\n"
      "throughput: %.0f jobs/s\n"
      "%s CPU: %.2fs (%.0f jobs per CPU-second)\n"
      "%s CPU: %.2fs\n"
      "dispatch latency (%s, idle workers, n=%zu): p50 %s, p99 %s\n"
      "%s%s"
      "machine: %s, load average at the end %s\n",
      flags.mode.c_str(), flags.burn_down ? ", burn-down" : "",
      inproc ? "store-direct submits, not end to end"
             : "gRPC submits to a jobwired child, end to end",
      static_cast<long long>(r.done), flags.jobs, r.seconds, r.done / r.seconds,
      inproc ? "server+loadgen process" : "jobwired process", r.server_cpu,
      r.done / r.server_cpu,
      inproc ? "worker process" : "client process (loadgen + workers)",
      r.client_cpu, r.latency_name.c_str(), r.latency.size(),
      absl::FormatDuration(Percentile(r.latency, 0.50)).c_str(),
      absl::FormatDuration(Percentile(r.latency, 0.99)).c_str(),
      r.store_stats.c_str(), r.submit_phase.c_str(),
      MachineDescription().c_str(), LoadAverage().c_str());
}

// --- jobwired mode ---

// Assign arrival times of the trickle phase's jobs.
class AssignLog {
 public:
  void Seen(const std::string& id) {
    const absl::Time now = absl::Now();
    absl::MutexLock lock(&mu_);
    if (recording_) seen_.emplace(id, now);
  }
  void StartRecording() {
    absl::MutexLock lock(&mu_);
    recording_ = true;
  }
  // Waits until job `id` was assigned or `deadline`; InfinitePast on timeout.
  absl::Time Await(const std::string& id, absl::Time deadline) {
    absl::MutexLock lock(&mu_);
    auto seen = [&] {
      mu_.AssertReaderHeld();
      return seen_.count(id) > 0;
    };
    if (!mu_.AwaitWithDeadline(absl::Condition(&seen), deadline))
      return absl::InfinitePast();
    absl::Time t = seen_[id];
    seen_.erase(id);
    return t;
  }

 private:
  absl::Mutex mu_;
  bool recording_ ABSL_GUARDED_BY(mu_) = false;
  std::unordered_map<std::string, absl::Time> seen_ ABSL_GUARDED_BY(mu_);
};

int64_t SucceededCount(v1::AdminService::Stub& admin) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  v1::GetServerInfoRequest req;
  v1::ServerInfo info;
  if (!admin.GetServerInfo(&ctx, req, &info).ok()) return -1;
  auto it = info.job_counts().find("SUCCEEDED");
  return it == info.job_counts().end() ? 0 : it->second;
}

// Polls (every 5 ms) until `target` jobs are SUCCEEDED or `deadline`.
int64_t AwaitSucceeded(v1::AdminService::Stub& admin, int64_t target,
                       absl::Time deadline) {
  int64_t n = 0;
  while ((n = SucceededCount(admin)) < target && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  return n;
}

int RunJobwired(const Flags& flags) {
  const std::string dir = test::MakeTempDir("jobwire-e2e-bench");
  const std::string address = absl::StrCat("unix:", dir, "/j.sock");
  std::vector<std::string> args = {"--listen", address, "--shutdown-grace",
                                   "2s"};
  if (flags.db.empty()) {
    args.insert(args.end(),
                {"--db", dir + "/j.db", "--synchronous", flags.sync});
  } else {
    args.insert(args.end(), {"--db", flags.db});
  }
  auto server = std::make_unique<test::JobwiredProcess>(dir, std::move(args));
  if (server->WaitListening(1).empty()) {
    std::fprintf(stderr, "jobwired did not start:\n%s\n",
                 server->log().c_str());
    return 1;
  }
  auto channel =
      grpc::CreateChannel(address, grpc::InsecureChannelCredentials());
  auto admin = v1::AdminService::NewStub(channel);
  auto jobs = v1::JobService::NewStub(channel);
  AssignLog assigns;
  std::unique_ptr<Workers> workers;
  auto connect_workers = [&] {
    workers = std::make_unique<Workers>(
        address, flags,
        [&assigns](const std::string& id) { assigns.Seen(id); });
    // Every worker connected (not measured in the default mode).
    for (int i = 0; i < 500; ++i) {
      grpc::ClientContext ctx;
      v1::ServerInfo info;
      if (admin->GetServerInfo(&ctx, {}, &info).ok() &&
          info.workers() >= flags.workers) {
        break;
      }
      absl::SleepFor(absl::Milliseconds(5));
    }
  };
  if (!flags.burn_down) connect_workers();

  Result r;
  const auto stat = [&] { return ProcessCpuSeconds(server->pid()); };
  double server_cpu0 = stat();
  double client_cpu0 = SelfCpuSeconds();
  absl::Time t0 = absl::Now();
  const absl::Time deadline = t0 + absl::Seconds(flags.max_seconds);
  std::atomic<int> next{0};
  std::atomic<bool> failed{false};
  std::vector<std::thread> submitters;
  for (int s = 0; s < flags.streams; ++s) {
    submitters.emplace_back([&] {
      grpc::ClientContext ctx;
      auto stream = jobs->SubmitJobs(&ctx);
      v1::SubmitJobsRequest batch;
      v1::SubmitJobsResponse answer;
      while (absl::Now() < deadline) {
        const int first = next.fetch_add(flags.batch);
        if (first >= flags.jobs) break;
        const int n = std::min(flags.batch, flags.jobs - first);
        if (batch.jobs_size() != n) {
          batch.clear_jobs();
          for (int i = 0; i < n; ++i)
            batch.add_jobs()->mutable_job()->set_kind("noop");
        }
        if (!stream->Write(batch) || !stream->Read(&answer)) {
          failed = true;
          break;
        }
      }
      stream->WritesDone();
      grpc::Status st = stream->Finish();
      if (!st.ok()) {
        failed = true;
        std::fprintf(stderr, "SubmitJobs: %s\n", st.error_message().c_str());
      }
    });
  }
  for (std::thread& t : submitters) t.join();
  if (flags.burn_down) {
    // The queue is full and idle: time the workers burning it down.
    const absl::Time t_submitted = absl::Now();
    const double submit_cpu = stat() - server_cpu0;
    r.submit_phase = absl::StrFormat(
        "submit phase (no worker connected): %d jobs in %.2fs = %.0f jobs/s, "
        "jobwired CPU %.2fs (%.0f jobs per CPU-second)\n",
        flags.jobs, absl::ToDoubleSeconds(t_submitted - t0),
        flags.jobs / absl::ToDoubleSeconds(t_submitted - t0), submit_cpu,
        flags.jobs / submit_cpu);
    server_cpu0 = stat();
    client_cpu0 = SelfCpuSeconds();
    t0 = absl::Now();
    connect_workers();
  }
  // Every complete sent, then the server's count of durable completions.
  while (workers->completes_sent() < flags.jobs && absl::Now() < deadline &&
         !failed) {
    absl::SleepFor(absl::Milliseconds(2));
  }
  r.done = AwaitSucceeded(*admin, flags.jobs, deadline);
  const absl::Time t1 = absl::Now();
  r.seconds = absl::ToDoubleSeconds(t1 - t0);
  r.server_cpu = stat() - server_cpu0;
  r.client_cpu = SelfCpuSeconds() - client_cpu0;

  // Dispatch latency with idle workers, one job at a time.
  r.latency_name = "SubmitJob sent -> assign read by the worker";
  assigns.StartRecording();
  for (int i = 0; i < flags.trickle; ++i) {
    grpc::ClientContext ctx;
    v1::SubmitJobRequest req;
    req.mutable_job()->set_kind("noop");
    v1::SubmitJobResponse resp;
    const absl::Time sent = absl::Now();
    if (!jobs->SubmitJob(&ctx, req, &resp).ok()) break;
    const absl::Time got =
        assigns.Await(resp.job().id(), absl::Now() + absl::Seconds(10));
    if (got == absl::InfinitePast()) break;
    r.latency.push_back(got - sent);
  }

  workers->Stop();
  server->Signal(SIGTERM);
  if (!server->Exited(absl::Seconds(30))) server->Signal(SIGKILL);
  server.reset();
  test::RemoveDir(dir);
  Print(flags, r);
  return r.done >= flags.jobs ? 0 : 1;
}

// --- inproc mode ---

// Counts jobs reaching SUCCEEDED.
class Completions : public CommitListener {
 public:
  void OnCommit(const std::vector<JobEvent>& events) override {
    int64_t n = 0;
    for (const JobEvent& e : events) {
      n += e.type == EventType::kStateChanged && e.to == JobState::kSucceeded;
    }
    if (n == 0) return;
    absl::MutexLock lock(&mu_);
    done_ += n;
  }
  // Waits until `target` jobs succeeded or `deadline`; returns the count.
  int64_t AwaitAtLeast(int64_t target, absl::Time deadline) {
    absl::MutexLock lock(&mu_);
    auto reached = [&] {
      mu_.AssertReaderHeld();
      return done_ >= target;
    };
    mu_.AwaitWithDeadline(absl::Condition(&reached), deadline);
    return done_;
  }

 private:
  absl::Mutex mu_;
  int64_t done_ ABSL_GUARDED_BY(mu_) = 0;
};

NewJob NoopJob() {
  NewJob j;
  j.job.kind = "noop";
  return j;
}

int RunInProcess(const Flags& flags) {
  char tmpl[] = "/tmp/jobwire_e2e_bench_XXXXXX";
  const std::string dir = mkdtemp(tmpl);
  const std::string address = absl::StrCat("unix:", dir, "/bench.sock");

  // Fork before gRPC starts any thread in this process.
  const pid_t child = fork();
  if (child == 0) {
    // Wait for the server's socket.
    for (int i = 0; i < 500 && access((dir + "/bench.sock").c_str(), F_OK) != 0;
         ++i) {
      usleep(20'000);
    }
    Workers(address, flags, nullptr).Join();
    _exit(0);
  }

  SystemClock clock;
  SystemRandomSource random;
  SqliteJobStore::Options store_options;
  store_options.path = dir + "/jobs.db";
  store_options.clock = &clock;
  if (flags.sync == "normal") {
    store_options.synchronous = SqliteJobStore::Synchronous::kNormal;
  } else if (flags.sync == "off") {
    store_options.synchronous = SqliteJobStore::Synchronous::kOff;
  }
  auto store = SqliteJobStore::Open(store_options);
  if (!store.ok()) {
    std::fprintf(stderr, "store: %s\n", store.status().ToString().c_str());
    kill(child, SIGKILL);
    return 1;
  }
  DispatcherOptions options;
  Dispatcher dispatcher(store->get(), &clock, &random, options);
  Completions completions;
  (*store)->AddCommitListener(&dispatcher);
  (*store)->AddCommitListener(&completions);
  dispatcher.Start();
  WorkerServiceImpl service(&dispatcher);
  grpc::ServerBuilder builder;
  builder.AddListeningPort(address, grpc::InsecureServerCredentials());
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  while (dispatcher.Stats().sessions < flags.workers) {
    absl::SleepFor(absl::Milliseconds(20));  // start-up only, not measured
  }

  // Phase 1: throughput.
  Result r;
  const double cpu0 = SelfCpuSeconds();
  const absl::Time t0 = absl::Now();
  const absl::Time deadline = t0 + absl::Seconds(flags.max_seconds);
  std::thread generator([&] {
    absl::Mutex mu;
    int in_flight = 0;
    for (int submitted = 0; submitted < flags.jobs && absl::Now() < deadline;
         submitted += flags.batch) {
      {
        absl::MutexLock lock(&mu);
        auto room = [&] {
          mu.AssertReaderHeld();
          return in_flight < flags.in_flight;
        };
        mu.Await(absl::Condition(&room));
        ++in_flight;
      }
      std::vector<NewJob> jobs(std::min(flags.batch, flags.jobs - submitted),
                               NoopJob());
      (*store)->Submit(std::move(jobs),
                       [&](absl::StatusOr<std::vector<SubmitOutcome>> out) {
                         if (!out.ok()) {
                           std::fprintf(stderr, "submit: %s\n",
                                        out.status().ToString().c_str());
                         }
                         absl::MutexLock lock(&mu);
                         --in_flight;
                       });
    }
    absl::MutexLock lock(&mu);
    auto idle = [&] {
      mu.AssertReaderHeld();
      return in_flight == 0;
    };
    mu.Await(absl::Condition(&idle));
  });
  r.done = completions.AwaitAtLeast(flags.jobs, deadline);
  const absl::Time t1 = absl::Now();
  generator.join();
  r.seconds = absl::ToDoubleSeconds(t1 - t0);
  r.server_cpu = SelfCpuSeconds() - cpu0;
  const SqliteJobStore::Stats st = (*store)->stats();
  r.store_stats =
      absl::StrCat("store: ", st.commits, " commits, ",
                   st.commits > 0 ? st.write_requests / st.commits : 0,
                   " requests per commit, row cache hits ", st.row_cache_hits,
                   " misses ", st.row_cache_misses, "\n");

  // Phase 2: dispatch latency with idle workers, one job at a time.
  dispatcher.TakeLatencySamples();
  int64_t target = r.done;
  for (int i = 0; i < flags.trickle; ++i) {
    (*store)->Submit({NoopJob()},
                     [](absl::StatusOr<std::vector<SubmitOutcome>>) {});
    ++target;
    if (completions.AwaitAtLeast(target, absl::Now() + absl::Seconds(10)) <
        target) {
      break;
    }
  }
  r.latency = dispatcher.TakeLatencySamples();
  r.latency_name = "submit commit -> assign sent, the dispatcher's samples";

  service.Shutdown(absl::Now());
  server->Shutdown(absl::ToChronoTime(absl::Now() + absl::Seconds(2)));
  dispatcher.ReleaseAllLeasesBlocking(absl::Seconds(5));
  dispatcher.Stop();
  (*store)->Shutdown();
  int status = 0;
  waitpid(child, &status, 0);
  rusage children;
  getrusage(RUSAGE_CHILDREN, &children);
  r.client_cpu = CpuSeconds(children);
  std::system(absl::StrCat("rm -rf '", dir, "'").c_str());
  Print(flags, r);
  return r.done >= flags.jobs ? 0 : 1;
}

int Main(int argc, char** argv) {
  Flags flags;
  if (!ParseFlags(argc, argv, &flags)) return 2;
  return flags.mode == "inproc" ? RunInProcess(flags) : RunJobwired(flags);
}

}  // namespace
}  // namespace jobwire::bench

int main(int argc, char** argv) { return jobwire::bench::Main(argc, argv); }
