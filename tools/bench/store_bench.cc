// store_bench: durable submit throughput of SqliteJobStore against raw SQLite.
//
// In one run, on one disk (a fresh temporary directory), with WAL and
// synchronous=FULL everywhere:
//   raw-1      raw SQLite inserts of job rows, one row per transaction; the
//              p50/p99 of its COMMITs (one WAL fsync each) is the disk's
//              floor under any durable ack latency
//   raw-1000   the same rows, 1,000 per transaction
//   full-N     (--only fullN) raw SQLite writing what a submit writes per
//              job: the jobs row, its label row and its `submitted` event
//              row, N jobs per transaction, with one prepared single-row
//              INSERT per table (the floor for SubmitJobs batches of N)
//   store-N    SqliteJobStore::Submit of single jobs from N threads, each
//              waiting for its `done` before the next (N = 1, 16, 64)
//   batch-N    (--only batchN) SqliteJobStore::Submit of N-job batches from
//              4 threads, each waiting for its `done` before the next: the
//              store's share of a SubmitJobs batch, to set beside full-N
//   flow-N     the dispatcher's pattern for a no-op job from N threads: Submit,
//              then Mutate QUEUED->RUNNING (assign), then Mutate
//              RUNNING->SUCCEEDED (complete), each waited for (N = 64)
// Each case runs for --seconds, or until --jobs jobs are done (for
// instruction-count profiles: `valgrind --tool=callgrind
// --toggle-collect='*RunBatch*' store_bench --only store64 --jobs 20000`).
// Prints jobs/s and ratios; with --append FILE appends a Markdown section
// (machine, date, command, results) to FILE.
//
//   store_bench [--seconds 3] [--jobs N] [--dir /tmp] [--append BENCHMARKS.md]
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "SQLiteCpp/Database.h"
#include "SQLiteCpp/Statement.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "server/core/ids.h"
#include "server/storage/migrations.h"
#include "server/storage/sqlite_job_store.h"
#include "server/storage/sqlite_rows.h"
#include "tools/bench/machine.h"
#include "tools/bench/raw_floor.h"

namespace jobwire {
namespace {

struct Flags {
  double seconds = 3;
  // When > 0, each store case stops after this many jobs (not a deadline).
  int64_t jobs = 0;
  std::string dir = "/tmp";
  std::string append;
  // run one case: rawN, fullN, storeN, batchN or flowN
  std::string only;
  // synchronous for the store cases: FULL (default), NORMAL or OFF (to see
  // how much of the cost is the disk).
  std::string sync = "FULL";
  std::string command;
};

// A case's jobs, wall time and (raw cases) COMMIT durations.
using Result = bench::RawResult;
using bench::SampleJob;
using bench::TempDb;

// The p-quantile (0..1) of `v` in milliseconds, or "-" when v is empty.
std::string QuantileMs(std::vector<absl::Duration> v, double p) {
  if (v.empty()) return "-";
  const size_t k = std::min(v.size() - 1, static_cast<size_t>(p * v.size()));
  std::nth_element(v.begin(), v.begin() + static_cast<ptrdiff_t>(k), v.end());
  return absl::StrFormat("%.3f", absl::ToDoubleMilliseconds(v[k]));
}

std::unique_ptr<SqliteJobStore> OpenStore(const Flags& flags,
                                          const std::string& path) {
  SqliteJobStore::Options options;
  options.path = path;
  options.synchronous = flags.sync == "OFF" ? SqliteJobStore::Synchronous::kOff
                        : flags.sync == "NORMAL"
                            ? SqliteJobStore::Synchronous::kNormal
                            : SqliteJobStore::Synchronous::kFull;
  auto store = SqliteJobStore::Open(options);
  if (!store.ok()) {
    std::cerr << "open failed: " << store.status() << "\n";
    exit(1);
  }
  return *std::move(store);
}

// Waits for one asynchronous answer on the calling thread.
class Waiter {
 public:
  void Reset() {
    absl::MutexLock lock(&mu_);
    answered_ = false;
  }
  void Answer(bool ok) {
    absl::MutexLock lock(&mu_);
    ok_ = ok;
    answered_ = true;
  }
  bool Wait() {
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(&answered_));
    return ok_;
  }

 private:
  absl::Mutex mu_;
  bool answered_ = false;
  bool ok_ = false;
};

// A state step of the dispatcher: `from` -> `to` with one state_changed event.
JobMutation Step(JobState from, JobState to) {
  return [from, to](const Job& current,
                    absl::Time now) -> absl::StatusOr<JobChange> {
    if (current.state != from)
      return absl::FailedPreconditionError("unexpected state");
    JobChange change{current, {}};
    change.job.state = to;
    if (to == JobState::kRunning) {
      change.job.attempt = current.attempt + 1;
      change.job.worker_id = "bench-worker";
      change.job.start_time = now;
      change.job.lease_expire_time = now + absl::Seconds(30);
    } else {
      change.job.worker_id.clear();
      change.job.lease_expire_time = absl::InfinitePast();
      change.job.finish_time = now;
      change.job.result.emplace();
    }
    JobEvent e;
    e.from = from;
    e.to = to;
    e.attempt = change.job.attempt;
    e.reason = to == JobState::kRunning ? "assigned" : "completed";
    change.events.push_back(std::move(e));
    return change;
  };
}

// Submit only (flow=false) or submit + assign + complete (flow=true), one
// job per Submit; or, with `batch` > 1 (no flow), Submits of `batch` jobs.
Result StoreJobs(const Flags& flags, int threads, bool flow, int batch = 1) {
  TempDb tmp(flags.dir);
  std::unique_ptr<SqliteJobStore> store = OpenStore(flags, tmp.path());
  std::atomic<int64_t> started_jobs{0};
  std::atomic<int64_t> done_jobs{0};
  std::atomic<int64_t> errors{0};
  const absl::Time start = absl::Now();
  const absl::Time deadline = start + absl::Seconds(flags.seconds);
  auto more = [&] {
    if (flags.jobs > 0) return started_jobs.fetch_add(batch) < flags.jobs;
    return absl::Now() < deadline;
  };
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&] {
      Waiter waiter;
      while (more()) {
        waiter.Reset();
        std::string id;
        std::vector<NewJob> jobs(batch, NewJob{SampleJob()});
        store->Submit(std::move(jobs),
                      [&](absl::StatusOr<std::vector<SubmitOutcome>> r) {
                        if (r.ok()) id = (*r)[0].job.id;
                        waiter.Answer(r.ok());
                      });
        bool ok = waiter.Wait();
        for (JobState to : {JobState::kRunning, JobState::kSucceeded}) {
          if (!flow || !ok) break;
          waiter.Reset();
          store->Mutate(id,
                        Step(to == JobState::kRunning ? JobState::kQueued
                                                      : JobState::kRunning,
                             to),
                        [&](absl::StatusOr<Job> r) { waiter.Answer(r.ok()); });
          ok = waiter.Wait();
        }
        if (ok) {
          done_jobs.fetch_add(batch);
        } else {
          errors.fetch_add(1);
        }
      }
    });
  }
  for (auto& w : workers) w.join();
  Result r{flow ? absl::StrCat("SqliteJobStore flow (submit+2 mutates), ",
                               threads, " caller(s)")
           : batch > 1
               ? absl::StrCat("SqliteJobStore, ", threads, " submitter(s) of ",
                              batch, "-job batches")
               : absl::StrCat("SqliteJobStore, ", threads, " submitter(s)")};
  r.seconds = absl::ToDoubleSeconds(absl::Now() - start);
  SqliteJobStore::Stats stats = store->stats();
  const WriteStats stages = store->write_stats();
  r.jobs = done_jobs.load();
  store->Shutdown();
  absl::PrintF(
      "  %-48s commits=%d requests/commit=%.1f checkpoints=%d+%d errors=%d\n",
      r.name, stats.commits,
      stats.commits > 0
          ? static_cast<double>(stats.write_requests) / stats.commits
          : 0,
      stats.checkpoints, stats.writer_checkpoints, errors.load());
  if (stages.commits > 0 && stages.requests > 0) {
    auto us = [](absl::Duration d, int64_t n) {
      return absl::ToDoubleMicroseconds(d) / n;
    };
    absl::PrintF(
        "  %-48s per request queue wait %.0f us; per commit apply %.0f us, "
        "commit %.0f us, complete %.0f us\n",
        "", us(stages.queue_wait, stages.requests),
        us(stages.apply, stages.commits), us(stages.commit, stages.commits),
        us(stages.complete, stages.commits));
  }
  return r;
}

int Main(int argc, char** argv) {
  Flags flags;
  std::vector<std::string> args(argv, argv + argc);
  flags.command = absl::StrJoin(args, " ");
  if (const char* tmp = getenv("TMPDIR"); tmp != nullptr && *tmp != '\0')
    flags.dir = tmp;
  for (size_t i = 1; i < args.size(); ++i) {
    const std::string& a = args[i];
    bool has_value = i + 1 < args.size();
    if (a == "--seconds" && has_value &&
        absl::SimpleAtod(args[i + 1], &flags.seconds) && flags.seconds > 0 &&
        flags.seconds <= 60) {
      ++i;
    } else if (a == "--jobs" && has_value &&
               absl::SimpleAtoi(args[i + 1], &flags.jobs) && flags.jobs > 0) {
      ++i;
    } else if (a == "--dir" && has_value) {
      flags.dir = args[++i];
    } else if (a == "--sync" && has_value &&
               (args[i + 1] == "FULL" || args[i + 1] == "NORMAL" ||
                args[i + 1] == "OFF")) {
      flags.sync = args[++i];
    } else if (a == "--only" && has_value) {
      flags.only = args[++i];
    } else if (a == "--append" && has_value) {
      flags.append = args[++i];
    } else {
      std::cerr << "usage: store_bench [--seconds S (0..60]] [--jobs N] "
                   "[--dir DIR] [--append FILE] "
                   "[--only rawN|fullN|storeN|batchN|flowN] "
                   "[--sync FULL|NORMAL|OFF]\n";
      return 2;
    }
  }

  if (!flags.only.empty()) {
    int n = 0;
    absl::string_view only = flags.only;
    Result r;
    if (absl::ConsumePrefix(&only, "raw") && absl::SimpleAtoi(only, &n) &&
        n > 0) {
      r = bench::RawInserts(flags.dir, flags.seconds, n, /*full=*/false);
    } else if (absl::ConsumePrefix(&only, "full") &&
               absl::SimpleAtoi(only, &n) && n > 0) {
      r = bench::RawInserts(flags.dir, flags.seconds, n, /*full=*/true);
    } else if (absl::ConsumePrefix(&only, "store") &&
               absl::SimpleAtoi(only, &n) && n > 0 && n <= 256) {
      r = StoreJobs(flags, n, false);
    } else if (absl::ConsumePrefix(&only, "batch") &&
               absl::SimpleAtoi(only, &n) && n > 0 && n <= 1000) {
      r = StoreJobs(flags, /*threads=*/4, false, n);
    } else if (absl::ConsumePrefix(&only, "flow") &&
               absl::SimpleAtoi(only, &n) && n > 0 && n <= 256) {
      r = StoreJobs(flags, n, true);
    } else {
      std::cerr << "--only takes rawN, fullN, storeN, batchN or flowN\n";
      return 2;
    }
    absl::PrintF("%s: %.0f jobs/s, commit p50 %s ms, p99 %s ms\n", r.name,
                 r.rate(), QuantileMs(r.commits, 0.50),
                 QuantileMs(r.commits, 0.99));
    return 0;
  }
  std::vector<Result> results;
  results.push_back(bench::RawInserts(flags.dir, flags.seconds, 1, false));
  results.push_back(bench::RawInserts(flags.dir, flags.seconds, 1000, false));
  for (int threads : {1, 16, 64})
    results.push_back(StoreJobs(flags, threads, false));
  results.push_back(StoreJobs(flags, 64, true));

  std::ostringstream table;
  table << "| case | jobs | seconds | jobs/s | vs raw 1/txn | vs raw 1000/txn "
           "| COMMIT p50 ms | COMMIT p99 ms |\n"
        << "|---|---:|---:|---:|---:|---:|---:|---:|\n";
  for (const Result& r : results) {
    table << absl::StrFormat(
        "| %s | %d | %.2f | %.0f | %.2fx | %.3fx | %s | %s |\n", r.name, r.jobs,
        r.seconds, r.rate(), r.rate() / results[0].rate(),
        r.rate() / results[1].rate(), QuantileMs(r.commits, 0.50),
        QuantileMs(r.commits, 0.99));
  }
  std::cout << table.str();

  if (!flags.append.empty()) {
    std::ofstream out(flags.append, std::ios::app);
    out << "\n## store_bench, "
        << absl::FormatTime("%Y-%m-%d %H:%M UTC", absl::Now(),
                            absl::UTCTimeZone())
        << "\n\n"
        << "- machine: " << bench::MachineDescription()
        << ", load average at the end " << bench::LoadAverage()
        << " (other work on the machine skews the numbers)\n"
        << "- disk: temporary directory under `" << flags.dir
        << "`; WAL; raw cases synchronous=FULL, store cases synchronous="
        << flags.sync << "\n"
        << "- command: `" << flags.command << "`\n"
        << "- the store writes per job a jobs row, its label rows and a "
           "`submitted` event "
           "row; the raw cases write the jobs row only; a flow job is three "
           "writes (submit, assign, complete), each its own request\n\n"
        << table.str();
  }
  return 0;
}

}  // namespace
}  // namespace jobwire

int main(int argc, char** argv) { return jobwire::Main(argc, argv); }
