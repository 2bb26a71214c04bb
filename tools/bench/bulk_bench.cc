// bulk_bench: BulkUpdateJobs on a real jobwired that it starts itself.
//
// It loads --jobs jobs (default 100,000) into queue "bulk" over SubmitJobs,
// then measures, in this order, on the same server and database:
//
//   per-job    UpdateJob of one job per call (priority), --callers calls in
//              flight (default 64), for --seconds: what a client without a
//              bulk method does. The baseline bulk updates are compared to.
//   patch      one BulkUpdateJobs request: a priority patch on the filter
//              queue = "bulk" (every loaded job): jobs/s, server CPU per job.
//   traffic    ack latency of one closed-loop SubmitJob caller (another
//              queue) for --seconds alone, then while a second bulk patch
//              runs: the p50 / p99 ratio shows what a bulk update costs other
//              clients (chunked commits: they wait for one chunk at most).
//   dry run    the same patch as a dry run (reads and classifies, no write).
//   cancel     ACTION_CANCEL by ids, 10,000 ids per request on one stream.
//   delete     ACTION_DELETE on the filter state = CANCELLED.
//   raw floor  before the delete, a copy of the database (VACUUM INTO);
//              after the server stopped, one raw SQL statement updating the
//              priority of every loaded row in that copy (synchronous=FULL,
//              WAL, same disk): the floor for any bulk update of these rows.
//
// Server peak RSS (VmHWM) is read after each case. Every case is bounded
// (--seconds, or the size of the selection).
//
//   bulk_bench [--jobs 100000] [--seconds 3] [--callers 64] [--chunk 500]
//              [--dir /tmp] [--jobwired PATH] [--append FILE]
//
// --jobwired runs another jobwired build (for a before/after comparison).
//
// --chunk is the server's --bulk-chunk-jobs: jobs per bulk commit.
#include <grpcpp/grpcpp.h>
#include <stdlib.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "SQLiteCpp/Database.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "jobwire/v1/job_service.grpc.pb.h"
#include "tools/bench/bench_server.h"
#include "tools/bench/machine.h"

namespace jobwire::bench {
namespace {

struct Flags {
  int64_t jobs = 100000;
  double seconds = 3;
  int callers = 64;
  int chunk = 500;  // jobwired --bulk-chunk-jobs
  std::string dir = "/tmp";
  std::string jobwired;  // empty: this build's
  std::string append;
  std::string command;
};

constexpr int kSubmitBatch = 1000;
constexpr int kIdsPerRequest = 10000;

void FillJob(v1::Job* job, const std::string& queue) {
  job->set_queue(queue);
  job->set_kind("resize-image");
  auto& fields = *job->mutable_args()->mutable_fields();
  fields["width"].set_number_value(640);
  fields["src"].set_string_value("s3://bucket/key.png");
  (*job->mutable_labels())["tenant"] = "acme";
}

// Loads `n` jobs into queue "bulk"; returns their ids in submission order.
std::vector<std::string> Load(v1::JobService::Stub& stub, int64_t n) {
  std::vector<std::string> ids;
  ids.reserve(n);
  grpc::ClientContext context;
  auto stream = stub.SubmitJobs(&context);
  while (static_cast<int64_t>(ids.size()) < n) {
    v1::SubmitJobsRequest batch;
    const int64_t size =
        std::min<int64_t>(kSubmitBatch, n - static_cast<int64_t>(ids.size()));
    for (int64_t i = 0; i < size; ++i)
      FillJob(batch.add_jobs()->mutable_job(), "bulk");
    v1::SubmitJobsResponse response;
    if (!stream->Write(batch) || !stream->Read(&response)) break;
    for (const std::string& id : response.ids()) ids.push_back(id);
  }
  stream->WritesDone();
  grpc::Status status = stream->Finish();
  if (!status.ok() || static_cast<int64_t>(ids.size()) != n) {
    std::cerr << "loading failed: " << status.error_message() << "\n";
    exit(1);
  }
  return ids;
}

struct LoopResult {
  int64_t calls = 0;
  int64_t errors = 0;
  double seconds = 0;
};

// A closed loop of asynchronous unary calls: `callers` in flight, each
// starting the next when it ends, until `deadline`, `max_calls` started or
// `stop()`.
// `start(i, done)` starts call i and must call done(ok) once.
LoopResult ClosedLoop(
    int callers, absl::Time deadline, int64_t max_calls,
    const std::function<bool()>& stop,
    const std::function<void(int64_t, std::function<void(bool)>)>& start,
    Samples* latency) {
  struct State {
    absl::Mutex mu;
    int64_t next = 0;
    int in_flight = 0;
    LoopResult result;
  } state;
  // The next call's index, or -1 when the loop is over. A caller that goes
  // on stays in flight, so the wait below cannot end between two calls.
  auto claim = [&]() -> int64_t {  // with state.mu held
    if (absl::Now() >= deadline || state.next >= max_calls || stop()) return -1;
    return state.next++;
  };
  std::function<void(int64_t)> call;
  call = [&](int64_t i) {
    const auto t0 = std::chrono::steady_clock::now();
    start(i, [&, t0](bool ok) {
      if (latency != nullptr) {
        latency->Add(std::chrono::duration<double, std::micro>(
                         std::chrono::steady_clock::now() - t0)
                         .count());
      }
      int64_t next;
      {
        absl::MutexLock lock(&state.mu);
        ++state.result.calls;
        if (!ok) ++state.result.errors;
        next = claim();
        if (next < 0) --state.in_flight;
      }
      if (next >= 0) call(next);
    });
  };
  const absl::Time begin = absl::Now();
  for (int c = 0; c < callers; ++c) {
    int64_t first;
    {
      absl::MutexLock lock(&state.mu);
      first = claim();
      if (first >= 0) ++state.in_flight;
    }
    if (first >= 0) call(first);
  }
  absl::MutexLock lock(&state.mu);
  state.mu.Await(absl::Condition(
      +[](State* s) { return s->in_flight == 0; }, &state));
  state.result.seconds = absl::ToDoubleSeconds(absl::Now() - begin);
  return state.result;
}

// UpdateJob of ids[i] (priority `priority`), one per call.
LoopResult UpdateEach(v1::JobService::Stub& stub,
                      const std::vector<std::string>& ids, int callers,
                      absl::Duration limit) {
  return ClosedLoop(
      callers, absl::Now() + limit, static_cast<int64_t>(ids.size()),
      [] { return false; },
      [&](int64_t i, std::function<void(bool)> done) {
        struct Call {
          grpc::ClientContext context;
          v1::UpdateJobRequest request;
          v1::Job response;
        };
        auto* call = new Call;
        call->request.mutable_job()->set_id(ids[i]);
        call->request.mutable_job()->set_priority(2);
        call->request.mutable_update_mask()->add_paths("priority");
        stub.async()->UpdateJob(&call->context, &call->request, &call->response,
                                [call, done](grpc::Status status) {
                                  delete call;
                                  done(status.ok());
                                });
      },
      nullptr);
}

// Closed-loop SubmitJob from one caller into queue "other", until
// `deadline` or `stop()`.
LoopResult SubmitUntil(v1::JobService::Stub& stub, absl::Time deadline,
                       const std::function<bool()>& stop, Samples* latency) {
  return ClosedLoop(
      1, deadline, INT64_MAX, stop,
      [&](int64_t, std::function<void(bool)> done) {
        struct Call {
          grpc::ClientContext context;
          v1::SubmitJobRequest request;
          v1::SubmitJobResponse response;
        };
        auto* call = new Call;
        FillJob(call->request.mutable_job(), "other");
        stub.async()->SubmitJob(&call->context, &call->request, &call->response,
                                [call, done](grpc::Status status) {
                                  delete call;
                                  done(status.ok());
                                });
      },
      latency);
}

struct BulkResult {
  v1::BulkUpdateJobsResponse totals;  // summed over the responses
  double seconds = 0;
  double server_cpu = 0;
  bool ok = false;
};

// Sends `requests` on one BulkUpdateJobs stream, one after the other.
BulkResult Bulk(v1::JobService::Stub& stub, const BenchServer& server,
                const std::vector<v1::BulkUpdateJobsRequest>& requests) {
  BulkResult r;
  const double cpu0 = server.CpuSeconds();
  const absl::Time t0 = absl::Now();
  grpc::ClientContext context;
  auto stream = stub.BulkUpdateJobs(&context);
  bool all = true;
  for (const v1::BulkUpdateJobsRequest& request : requests) {
    v1::BulkUpdateJobsResponse response;
    if (!stream->Write(request) || !stream->Read(&response)) {
      all = false;
      break;
    }
    r.totals.set_matched(r.totals.matched() + response.matched());
    r.totals.set_updated(r.totals.updated() + response.updated());
    r.totals.set_skipped(r.totals.skipped() + response.skipped());
    r.totals.set_failed(r.totals.failed() + response.failed());
  }
  stream->WritesDone();
  grpc::Status status = stream->Finish();
  r.seconds = absl::ToDoubleSeconds(absl::Now() - t0);
  r.server_cpu = server.CpuSeconds() - cpu0;
  r.ok = all && status.ok();
  if (!r.ok) std::cerr << "bulk failed: " << status.error_message() << "\n";
  return r;
}

v1::BulkUpdateJobsRequest PatchAll(int priority) {
  v1::BulkUpdateJobsRequest request;
  request.set_filter("queue = \"bulk\"");
  request.mutable_patch()->set_priority(priority);
  request.mutable_update_mask()->add_paths("priority");
  return request;
}

struct Row {
  std::string name;
  int64_t jobs = 0;
  double seconds = 0;
  double server_cpu = -1;  // unknown
  int64_t peak_rss_kib = -1;
  std::string note;
  bool compare = true;  // with the per-job baseline
};

std::string RowLine(const Row& row, double baseline_rate) {
  const double rate = row.seconds > 0 ? row.jobs / row.seconds : 0;
  return absl::StrFormat(
      "| %s | %d | %.2f | %.0f | %s | %s | %s | %s |\n", row.name, row.jobs,
      row.seconds, rate,
      row.compare && baseline_rate > 0
          ? absl::StrFormat("%.1fx", rate / baseline_rate)
          : std::string("-"),
      row.server_cpu >= 0 && row.jobs > 0
          ? absl::StrFormat("%.1f", row.server_cpu * 1e6 / row.jobs)
          : std::string("-"),
      row.peak_rss_kib >= 0 ? absl::StrFormat("%.0f", row.peak_rss_kib / 1024.0)
                            : std::string("-"),
      row.note);
}

int Run(const Flags& flags) {
  const std::string load_at_start = LoadAverage();
  BenchServer server(
      ServerConfig{flags.dir,
                   "full",
                   flags.jobwired,
                   {"--bulk-chunk-jobs", absl::StrCat(flags.chunk)}});
  auto stub = v1::JobService::NewStub(grpc::CreateChannel(
      server.unix_target(), grpc::InsecureChannelCredentials()));
  std::vector<Row> rows;

  absl::Time t0 = absl::Now();
  std::vector<std::string> ids = Load(*stub, flags.jobs);
  rows.push_back({"load: SubmitJobs, 1,000 per batch", flags.jobs,
                  absl::ToDoubleSeconds(absl::Now() - t0), -1,
                  server.PeakRssKib(), "", false});
  std::cerr << "loaded " << ids.size() << " jobs\n";

  double cpu0 = server.CpuSeconds();
  LoopResult each =
      UpdateEach(*stub, ids, flags.callers, absl::Seconds(flags.seconds));
  rows.push_back(
      {absl::StrCat("per-job: UpdateJob, ", flags.callers, " calls in flight"),
       each.calls, each.seconds, server.CpuSeconds() - cpu0,
       server.PeakRssKib(),
       absl::StrCat(each.errors, " errors; the baseline")});
  const double baseline = each.seconds > 0 ? each.calls / each.seconds : 0;

  BulkResult patch = Bulk(*stub, server, {PatchAll(1)});
  rows.push_back({"patch: priority on queue = \"bulk\"", patch.totals.updated(),
                  patch.seconds, patch.server_cpu, server.PeakRssKib(),
                  absl::StrCat("matched ", patch.totals.matched())});

  // Other traffic, alone and beside a bulk patch.
  Samples alone, beside;
  LoopResult quiet = SubmitUntil(
      *stub, absl::Now() + absl::Seconds(flags.seconds), [] { return false; },
      &alone);
  BulkResult during;
  LoopResult busy;
  {
    std::atomic<bool> finished{false};
    std::thread bulk([&] {
      during = Bulk(*stub, server, {PatchAll(3)});
      finished = true;
    });
    // The bulk runs for as long as its selection takes; submit beside it
    // until it ends (at most a minute).
    busy = SubmitUntil(
        *stub, absl::Now() + absl::Minutes(1),
        [&finished] { return finished.load(); }, &beside);
    bulk.join();
  }
  rows.push_back({"patch beside 1 submitting caller", during.totals.updated(),
                  during.seconds, during.server_cpu, server.PeakRssKib(),
                  absl::StrCat(busy.calls, " submits meanwhile")});

  v1::BulkUpdateJobsRequest dry = PatchAll(4);
  dry.set_dry_run(true);
  BulkResult dry_run = Bulk(*stub, server, {dry});
  rows.push_back({"dry run of a patch", dry_run.totals.matched(),
                  dry_run.seconds, dry_run.server_cpu, server.PeakRssKib(),
                  absl::StrCat("would update ", dry_run.totals.updated())});

  std::vector<v1::BulkUpdateJobsRequest> cancels;
  for (size_t i = 0; i < ids.size(); i += kIdsPerRequest) {
    v1::BulkUpdateJobsRequest request;
    request.set_action(v1::BulkUpdateJobsRequest::ACTION_CANCEL);
    for (size_t j = i; j < std::min(ids.size(), i + kIdsPerRequest); ++j)
      request.mutable_ids()->add_ids(ids[j]);
    cancels.push_back(std::move(request));
  }
  BulkResult cancel = Bulk(*stub, server, cancels);
  rows.push_back({"cancel by ids, 10,000 per request", cancel.totals.updated(),
                  cancel.seconds, cancel.server_cpu, server.PeakRssKib(),
                  absl::StrCat(cancels.size(), " requests on one stream")});

  // The floor's copy, made while the server runs (a WAL reader).
  const std::string copy = server.db_path() + ".floor";
  {
    SQLite::Database db(server.db_path(), SQLite::OPEN_READONLY);
    db.exec(absl::StrCat("VACUUM INTO '", copy, "'"));
  }

  v1::BulkUpdateJobsRequest del;
  del.set_filter("state = CANCELLED");
  del.set_action(v1::BulkUpdateJobsRequest::ACTION_DELETE);
  BulkResult deleted = Bulk(*stub, server, {del});
  rows.push_back({"delete on state = CANCELLED", deleted.totals.updated(),
                  deleted.seconds, deleted.server_cpu, server.PeakRssKib(),
                  "jobs with their events and labels"});
  server.Stop();

  double floor_seconds = 0;
  int64_t floor_rows = 0;
  {
    SQLite::Database db(copy, SQLite::OPEN_READWRITE);
    db.exec("PRAGMA journal_mode = WAL");
    db.exec("PRAGMA synchronous = FULL");
    const absl::Time f0 = absl::Now();
    floor_rows = db.exec("UPDATE jobs SET priority = 9 WHERE queue = 'bulk'");
    floor_seconds = absl::ToDoubleSeconds(absl::Now() - f0);
  }
  unlink(copy.c_str());
  rows.push_back({"raw floor: one UPDATE statement", floor_rows, floor_seconds,
                  -1, -1, "SQLite alone, no events, no server"});

  const bool ok = patch.ok && during.ok && dry_run.ok && cancel.ok &&
                  deleted.ok && patch.totals.updated() == flags.jobs &&
                  cancel.totals.updated() == flags.jobs &&
                  deleted.totals.updated() == flags.jobs;
  std::ostringstream md;
  md << SectionStart("bulk_bench", load_at_start) << "\n"
     << "- server: the real jobwired ("
     << (flags.jobwired.empty() ? std::string("this build")
                                : "`" + flags.jobwired + "`")
     << "), synchronous=full, WAL, a fresh "
        "database under `"
     << flags.dir << "`, bulk chunks of " << flags.chunk
     << " jobs; client: gRPC over the Unix socket\n"
     << "- command: `" << flags.command << "`\n"
     << "- " << flags.jobs
     << " jobs in queue \"bulk\" (small args, one label); each bulk change "
        "writes the row and one event per job\n\n"
     << "| case | jobs | seconds | jobs/s | vs per-job UpdateJob | server CPU "
        "us/job | server peak RSS MiB | note |\n"
     << "|---|---:|---:|---:|---:|---:|---:|---|\n";
  for (const Row& row : rows) md << RowLine(row, baseline);
  md << absl::StrFormat(
      "\nOther traffic: one closed-loop SubmitJob caller, ack p50 / p99 "
      "%.3f / %.3f ms alone (%d submits in %.1f s), %.3f / %.3f ms beside "
      "the bulk patch (%d submits in %.1f s): p99 x%.1f.\n",
      alone.QuantileMs(0.5), alone.QuantileMs(0.99), quiet.calls, quiet.seconds,
      beside.QuantileMs(0.5), beside.QuantileMs(0.99), busy.calls, busy.seconds,
      alone.QuantileMs(0.99) > 0
          ? beside.QuantileMs(0.99) / alone.QuantileMs(0.99)
          : 0);
  if (!ok) md << "\n**Some case failed or changed the wrong count.**\n";
  Emit(flags.append, md.str());
  return ok ? 0 : 1;
}

}  // namespace
}  // namespace jobwire::bench

int main(int argc, char** argv) {
  jobwire::bench::Flags flags;
  flags.command = "bulk_bench";
  for (int i = 1; i < argc; ++i) flags.command += std::string(" ") + argv[i];
  for (int i = 1; i < argc; i += 2) {  // every flag takes a value
    const std::string a = argv[i];
    const bool has_value = i + 1 < argc;
    const std::string v = has_value ? argv[i + 1] : "";
    bool good = has_value;
    if (a == "--jobs") {
      good = good && absl::SimpleAtoi(v, &flags.jobs) && flags.jobs > 0 &&
             flags.jobs <= 2000000;
    } else if (a == "--seconds") {
      good = good && absl::SimpleAtod(v, &flags.seconds) && flags.seconds > 0 &&
             flags.seconds <= 600;
    } else if (a == "--callers") {
      good = good && absl::SimpleAtoi(v, &flags.callers) && flags.callers > 0 &&
             flags.callers <= 1024;
    } else if (a == "--chunk") {
      good = good && absl::SimpleAtoi(v, &flags.chunk) && flags.chunk > 0 &&
             flags.chunk <= 1000;
    } else if (a == "--dir") {
      flags.dir = v;
    } else if (a == "--jobwired") {
      flags.jobwired = v;
    } else if (a == "--append") {
      flags.append = v;
    } else {
      good = false;
    }
    if (!good) {
      std::cerr << "usage: bulk_bench [--jobs 1..2000000] [--seconds S] "
                   "[--callers N] [--chunk 1..1000] [--dir DIR] "
                   "[--jobwired PATH] [--append FILE]\n"
                   "bad or unknown flag: "
                << a << "\n";
      return 2;
    }
  }
  return jobwire::bench::Run(flags);
}
