// e2e_bench: end-to-end throughput of no-op jobs through a real jobwired
// stack: submit -> durable commit -> dispatch -> `assign` over the worker
// stream -> `complete` -> durable commit.
//
// The server side (SqliteJobStore with synchronous=FULL on a temp file, the
// Dispatcher, WorkerService on a Unix socket) runs in this process together
// with the load generator, which submits straight to the store in batches;
// the workers run in a forked child process as real gRPC clients that
// complete every job at once. Reports jobs/s, jobs per CPU-second of this
// process (server + load generator), and the dispatch latency (commit of a
// submit -> `assign` sent) measured separately with idle workers waiting.
//
//   e2e_bench [--jobs=200000] [--workers=4] [--slots=512] [--batch=500]
//             [--in_flight=8] [--trickle=1000] [--max_seconds=60]
#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "jobwire/v1/worker_service.grpc.pb.h"
#include "server/api/worker_service.h"
#include "server/common/clock.h"
#include "server/core/retry.h"
#include "server/scheduling/dispatcher.h"
#include "server/storage/sqlite_job_store.h"

namespace jobwire::bench {
namespace {

namespace v1 = ::jobwire::v1;

struct Flags {
  int jobs = 200000;
  int workers = 4;
  int slots = 512;
  int batch = 500;
  int in_flight = 8;
  int trickle = 1000;
  int max_seconds = 60;
};

bool ParseFlags(int argc, char** argv, Flags* f) {
  for (int i = 1; i < argc; ++i) {
    absl::string_view arg = argv[i];
    auto num = [&](absl::string_view name, int* out) {
      absl::string_view v = arg;
      return absl::ConsumePrefix(&v, absl::StrCat("--", name, "=")) &&
             absl::SimpleAtoi(v, out);
    };
    if (!(num("jobs", &f->jobs) || num("workers", &f->workers) ||
          num("slots", &f->slots) || num("batch", &f->batch) ||
          num("in_flight", &f->in_flight) || num("trickle", &f->trickle) ||
          num("max_seconds", &f->max_seconds))) {
      std::fprintf(stderr, "unknown flag %s\n", argv[i]);
      return false;
    }
  }
  return true;
}

// Worker process: `workers` streams, each completing every job at once.
int RunWorkers(const std::string& address, const Flags& flags) {
  std::vector<std::thread> threads;
  for (int i = 0; i < flags.workers; ++i) {
    threads.emplace_back([&, i] {
      grpc::ChannelArguments args;
      args.SetInt("jobwire.bench.worker", i);  // one connection per worker
      auto channel = grpc::CreateCustomChannel(
          address, grpc::InsecureChannelCredentials(), args);
      auto stub = v1::WorkerService::NewStub(channel);
      grpc::ClientContext ctx;
      auto stream = stub->Connect(&ctx);
      v1::ConnectRequest hello;
      hello.mutable_hello()->set_worker_id(absl::StrCat("bench-", i));
      hello.mutable_hello()->set_slots(flags.slots);
      stream->Write(hello);
      v1::ConnectResponse msg;
      v1::ConnectRequest done;
      while (stream->Read(&msg)) {
        if (!msg.has_assign()) continue;
        done.mutable_complete()->set_job_id(msg.assign().job().id());
        done.mutable_complete()->set_attempt(msg.assign().attempt());
        if (!stream->Write(done)) break;
      }
      stream->Finish();
    });
  }
  for (std::thread& t : threads) t.join();
  return 0;
}

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

double CpuSeconds(const rusage& r) {
  return r.ru_utime.tv_sec + r.ru_utime.tv_usec / 1e6 + r.ru_stime.tv_sec +
         r.ru_stime.tv_usec / 1e6;
}

absl::Duration Percentile(std::vector<absl::Duration> v, double p) {
  if (v.empty()) return absl::ZeroDuration();
  std::sort(v.begin(), v.end());
  size_t i = static_cast<size_t>(p * static_cast<double>(v.size() - 1));
  return v[i];
}

NewJob NoopJob() {
  NewJob j;
  j.job.kind = "noop";
  return j;
}

int Main(int argc, char** argv) {
  Flags flags;
  if (!ParseFlags(argc, argv, &flags)) return 2;
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
    _exit(RunWorkers(address, flags));
  }

  SystemClock clock;
  SystemRandomSource random;
  SqliteJobStore::Options store_options;
  store_options.path = dir + "/jobs.db";
  store_options.clock = &clock;  // synchronous=FULL: every commit is fsynced
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
  rusage before;
  getrusage(RUSAGE_SELF, &before);
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
                       [&](absl::StatusOr<std::vector<SubmitOutcome>> r) {
                         if (!r.ok()) {
                           std::fprintf(stderr, "submit: %s\n",
                                        r.status().ToString().c_str());
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
  const int64_t done = completions.AwaitAtLeast(flags.jobs, deadline);
  const absl::Time t1 = absl::Now();
  generator.join();
  rusage after;
  getrusage(RUSAGE_SELF, &after);
  const double seconds = absl::ToDoubleSeconds(t1 - t0);
  const double cpu = CpuSeconds(after) - CpuSeconds(before);

  // Phase 2: dispatch latency with idle workers, one job at a time.
  dispatcher.TakeLatencySamples();
  int64_t target = done;
  for (int i = 0; i < flags.trickle; ++i) {
    (*store)->Submit({NoopJob()},
                     [](absl::StatusOr<std::vector<SubmitOutcome>>) {});
    ++target;
    if (completions.AwaitAtLeast(target, absl::Now() + absl::Seconds(10)) <
        target) {
      break;
    }
  }
  std::vector<absl::Duration> lat = dispatcher.TakeLatencySamples();

  service.Shutdown(absl::Now());
  server->Shutdown(absl::ToChronoTime(absl::Now() + absl::Seconds(2)));
  dispatcher.ReleaseAllLeasesBlocking(absl::Seconds(5));
  dispatcher.Stop();
  (*store)->Shutdown();
  int status = 0;
  waitpid(child, &status, 0);
  rusage children;
  getrusage(RUSAGE_CHILDREN, &children);
  std::system(absl::StrCat("rm -rf '", dir, "'").c_str());

  std::printf(
      "jobs completed: %lld of %d in %.2fs\n"
      "throughput: %.0f jobs/s\n"
      "server+loadgen CPU: %.2fs (%.0f jobs per CPU-second)\n"
      "worker process CPU: %.2fs\n"
      "dispatch latency (submit commit -> assign sent, idle workers, n=%zu): "
      "p50 %s, p99 %s\n",
      static_cast<long long>(done), flags.jobs, seconds, done / seconds, cpu,
      done / cpu, CpuSeconds(children), lat.size(),
      absl::FormatDuration(Percentile(lat, 0.50)).c_str(),
      absl::FormatDuration(Percentile(lat, 0.99)).c_str());
  return done >= flags.jobs ? 0 : 1;
}

}  // namespace
}  // namespace jobwire::bench

int main(int argc, char** argv) { return jobwire::bench::Main(argc, argv); }
