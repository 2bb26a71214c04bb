// submit_bench: end-to-end load on a real jobwired that it starts itself.
//
// Every case talks gRPC to a jobwired child process (synchronous=full, a
// fresh database in a temporary directory), with the callback API: no thread
// per call, a few gRPC threads carry every caller and stream.
//
//   submit     durable single-job SubmitJob, closed loop, 1 / 16 / 64
//              concurrent callers, over TCP and over the Unix socket:
//              acknowledged jobs/s and ack latency p50 / p99. Before each
//              case the same load generator calls grpc.health.v1.Health/
//              Check (answered inline from memory) on the same server,
//              channel and concurrency: the "gRPC floor", what gRPC alone
//              does on this machine right now; submits/s are also given as
//              a fraction of it.
//   event      --watchers WatchJobs streams (default 100), each with the
//              filter labels.w = "<i>"; SubmitJob paced at --rate jobs/s
//              (default 1,000, open loop), job k labelled w = k % watchers.
//              Latency: from just before SubmitJob is sent to the watcher
//              receiving the job's `submitted` event. That is commit +
//              fan-out + delivery; it includes the fsync (the event is
//              published only after the commit), so it is an upper bound on
//              commit-to-watcher time. The same submits' ack latency is
//              reported beside it.
//   batch      (--only batch) SubmitJobs batches of --batch jobs (default
//              1,000) on --batch-streams streams (default 4) against raw
//              SQLite writing the same rows (job, label, `submitted` event)
//              at --batch jobs per transaction, in turns, --rounds times
//              (default 6), each turn --seconds long: jobs/s of both, their
//              ratio, server and client CPU per job.
//   idle       --idle-streams WatchJob streams (default 10,000) on as many
//              queued jobs, spread over --channels connections (default
//              100); server VmRSS before, with all streams open (each has
//              received its snapshot), and after they are cancelled.
//
// Each case is bounded by --seconds. With --raw1 / --raw1000 (raw SQLite
// inserts per second, from store_bench's baseline in the same run; see
// tools/bench/run_benchmarks) the submit rates are also given as ratios.
// --append FILE appends a Markdown section to FILE.
//
//   submit_bench [--seconds 3] [--only submit|event|idle|batch] [--dir /tmp]
//                [--rate 1000] [--watchers 100] [--idle-streams 10000]
//                [--channels 100] [--sync full|normal|off]
//                [--db postgres:CONNINFO] (PostgreSQL instead of SQLite)
//                [--raw1 N --raw1000 N] [--jobwired PATH] [--append FILE]
//                [--callers 1,16,64] [--transport tcp|unix]
//                [--ab PATH [--rounds N]] [--ab-webhooks terminal|state]
//                [--batch 1000] [--batch-streams 4]
//
// --callers and --transport narrow the submit cases to the ones named (all
// by default), for profiling one case.
// --jobwired runs another jobwired binary (for example one built from an
// older commit) instead of this build's, to compare two builds on the same
// machine in the same hour.
//
//   submit_bench --ab PATH [--rounds 6] [--callers 1,64] [--seconds 2]
//
// compares two builds properly: A (this build, or --jobwired) and B (PATH)
// run side by side and take the submit case in turns, A B then B A, each turn
// --seconds long, --rounds times per number of callers. It prints, and with
// --append writes, each build's median jobs/s, ack p50 and server CPU per
// job, and the median and range of the per-round B/A ratios. On a shared box
// whose throughput drifts by half within minutes, two separate runs cannot
// show a 5% change; the ratio of neighbouring turns can.
//
//   submit_bench --ab-webhooks terminal|state [--rounds 6] [--callers 64]
//
// is the same comparison between webhooks off and on (#25): A is this build
// (or --jobwired) as it is; B the same binary with webhooks on (a secret
// file, --webhook-allow-cidr 127.0.0.1/32) whose every submitted job has a
// webhook to a receiver on 127.0.0.1 run by the benchmark (HTTP/1.1
// keep-alive, answers 204 at once). `terminal`: the default events, so a
// submit writes no outbox row (the cost is the URL check and the stored
// webhook; no job ends here). `state`: EVENT_STATE_CHANGED, so every submit
// also writes its outbox row (and body) in its transaction and the sender
// posts it while the load runs.
#include <arpa/inet.h>
#include <grpcpp/grpcpp.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <fstream>
#include <functional>
#include <iostream>
#include <iterator>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "jobwire/v1/admin_service.grpc.pb.h"
#include "jobwire/v1/job_service.grpc.pb.h"
#include "tests/jobwired_process.h"
#include "tools/bench/bench_server.h"
#include "tools/bench/machine.h"
#include "tools/bench/raw_floor.h"

namespace jobwire::bench {
namespace {

using Clock = std::chrono::steady_clock;
using Server = BenchServer;

struct Flags {
  double seconds = 3;
  std::string only;
  std::string dir = "/tmp";
  double rate = 1000;
  int watchers = 100;
  int idle_streams = 10000;
  // Open/cancel rounds of the idle streams; rounds after the first show
  // whether memory is reused or leaks.
  int idle_rounds = 2;
  int channels = 100;
  // jobwired --synchronous: full (the benchmark); normal or off only to see
  // how much of the time is the disk.
  std::string sync = "full";
  // jobwired --db: a PostgreSQL database (postgres:...); empty: SQLite.
  std::string db;
  double raw1 = 0;
  double raw1000 = 0;
  std::string jobwired;  // empty: this build's
  std::string append;
  std::string command;
  // Submit cases to run (all by default); narrowing them helps profiling.
  std::vector<int> callers = {1, 16, 64};
  std::string transport;  // "tcp", "unix" or empty for both
  // --ab: a second jobwired (B) to compare with this build or --jobwired (A)
  // in alternating rounds; --rounds of them per number of callers.
  std::string ab;
  int rounds = 6;
  // --only batch: jobs per SubmitJobs batch (and per raw transaction), and
  // the streams sending them.
  int batch = 1000;
  int batch_streams = 4;
  // --ab-webhooks: "terminal" or "state" (see the file comment); B is A's
  // binary with webhooks on.
  std::string ab_webhooks;
};

ServerConfig ServerConfigOf(const Flags& flags) {
  return ServerConfig{flags.dir, flags.sync, flags.jobwired, {}, flags.db};
}

double Micros(Clock::duration d) {
  return std::chrono::duration<double, std::micro>(d).count();
}

// CPU time (user + system) of this process, in seconds.
double SelfCpuSeconds() {
  struct rusage u;
  getrusage(RUSAGE_SELF, &u);
  return u.ru_utime.tv_sec + u.ru_utime.tv_usec / 1e6 + u.ru_stime.tv_sec +
         u.ru_stime.tv_usec / 1e6;
}

// ---------------------------------------------------------------- submit

struct SubmitResult {
  std::string transport;
  int callers = 0;
  int64_t jobs = 0;
  int64_t errors = 0;
  double seconds = 0;
  double p50_ms = 0;
  double p99_ms = 0;
  // CPU microseconds per acknowledged job, in jobwired and in this process.
  double server_cpu_us = 0;
  double client_cpu_us = 0;
  // The gRPC floor: Health/Check calls/s and their p50 at the same
  // concurrency, measured right before.
  double floor_rate = 0;
  double floor_p50_ms = 0;
  double floor_server_cpu_us = 0;  // jobwired CPU per Check
  // Where a submit's server time went, from two StorageStats readings
  // around the case (absent when the server does not report them): requests
  // per commit, mean queue wait per request, mean apply / commit / complete
  // per commit, in microseconds.
  struct Stages {
    double requests_per_commit = 0;
    double queue_wait_us = 0;
    double apply_us = 0;
    double commit_us = 0;
    double complete_us = 0;
  };
  std::optional<Stages> stages;
  double rate() const { return seconds > 0 ? jobs / seconds : 0; }
};

double DurationUs(const google::protobuf::Duration& d) {
  return d.seconds() * 1e6 + d.nanos() / 1e3;
}

// The stage means between two StorageStats readings.
std::optional<SubmitResult::Stages> StagesBetween(
    const std::optional<v1::StorageStats>& before,
    const std::optional<v1::StorageStats>& after) {
  if (!before || !after) return std::nullopt;
  const double commits = after->commits() - before->commits();
  const double requests = after->requests() - before->requests();
  if (commits <= 0 || requests <= 0) return std::nullopt;
  auto delta = [](const google::protobuf::Duration& a,
                  const google::protobuf::Duration& b) {
    return DurationUs(a) - DurationUs(b);
  };
  SubmitResult::Stages s;
  s.requests_per_commit = requests / commits;
  s.queue_wait_us = delta(after->queue_wait(), before->queue_wait()) / requests;
  s.apply_us = delta(after->apply(), before->apply()) / commits;
  s.commit_us = delta(after->commit(), before->commit()) / commits;
  s.complete_us = delta(after->complete(), before->complete()) / commits;
  return s;
}

// `callers` closed-loop callers, each with one call in flight, all on one
// channel, until `end`. `init` readies each caller's request once, `next`
// before every call (with a number unique in this loop); `call` starts the
// call with the stub's callback API.
template <typename Request, typename Response>
class ClosedLoop {
 public:
  using Init = std::function<void(Request*)>;
  using Next = std::function<void(int64_t, Request*)>;
  using Call =
      std::function<void(grpc::ClientContext*, const Request*, Response*,
                         std::function<void(grpc::Status)>)>;

  ClosedLoop(int callers, Clock::time_point end, const Init& init, Next next,
             Call call)
      : end_(end),
        next_(std::move(next)),
        call_(std::move(call)),
        callers_(callers) {
    for (int i = 0; i < callers; ++i) {
      slots_.push_back(std::make_unique<Caller>());
      init(&slots_.back()->request);
    }
  }

  void RunAndWait() {
    {
      absl::MutexLock lock(&mu_);
      active_ = callers_;
    }
    for (auto& c : slots_) Issue(c.get());
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(
        +[](int* active) { return *active == 0; }, &active_));
  }

  Samples& latencies() { return latencies_; }
  int64_t acked() const { return acked_.load(); }
  int64_t errors() const { return errors_.load(); }

 private:
  // One caller: its next call is issued from the callback of the last one.
  // Replacing the context there is safe: the callback tag holds its own
  // reference to the finished call.
  struct Caller {
    Request request;
    std::unique_ptr<grpc::ClientContext> context;
    Response response;
    Clock::time_point start;
  };

  void Issue(Caller* c) {
    c->context = std::make_unique<grpc::ClientContext>();
    c->response.Clear();
    next_(next_id_.fetch_add(1), &c->request);
    c->start = Clock::now();
    call_(c->context.get(), &c->request, &c->response,
          [this, c](grpc::Status status) { Done(c, status); });
  }

  void Done(Caller* c, const grpc::Status& status) {
    const Clock::time_point now = Clock::now();
    if (status.ok()) {
      acked_.fetch_add(1);
      latencies_.Add(Micros(now - c->start));
    } else if (errors_.fetch_add(1) < 3) {
      std::cerr << "call failed: " << status.error_code() << " "
                << status.error_message() << "\n";
    }
    if (now < end_) {
      Issue(c);
      return;
    }
    absl::MutexLock lock(&mu_);
    --active_;
  }

  const Clock::time_point end_;
  const Next next_;
  const Call call_;
  const int callers_;
  std::vector<std::unique_ptr<Caller>> slots_;
  std::atomic<int64_t> next_id_{0};
  std::atomic<int64_t> acked_{0};
  std::atomic<int64_t> errors_{0};
  Samples latencies_;
  absl::Mutex mu_;
  int active_ ABSL_GUARDED_BY(mu_) = 0;
};

using SubmitLoop = ClosedLoop<v1::SubmitJobRequest, v1::SubmitJobResponse>;
using HealthLoop = ClosedLoop<grpc::health::v1::HealthCheckRequest,
                              grpc::health::v1::HealthCheckResponse>;

// `webhook`: given to every job when set.
SubmitLoop MakeSubmitLoop(v1::JobService::Stub* stub, int callers,
                          Clock::time_point end, std::string prefix,
                          std::optional<v1::Webhook> webhook = std::nullopt) {
  return SubmitLoop(
      callers, end,
      [webhook = std::move(webhook)](v1::SubmitJobRequest* r) {
        FillSampleJob(r->mutable_job());
        if (webhook.has_value())
          *r->mutable_job()->mutable_webhook() = *webhook;
      },
      [prefix = std::move(prefix)](int64_t n, v1::SubmitJobRequest* r) {
        r->set_request_id(absl::StrCat(prefix, n));
      },
      [stub](grpc::ClientContext* context, const v1::SubmitJobRequest* request,
             v1::SubmitJobResponse* response,
             std::function<void(grpc::Status)> done) {
        stub->async()->SubmitJob(context, request, response, std::move(done));
      });
}

// The gRPC floor: Check of the server as a whole, answered inline.
HealthLoop MakeHealthLoop(grpc::health::v1::Health::Stub* stub, int callers,
                          Clock::time_point end) {
  return HealthLoop(
      callers, end, [](grpc::health::v1::HealthCheckRequest*) {},
      [](int64_t, grpc::health::v1::HealthCheckRequest*) {},
      [stub](grpc::ClientContext* context,
             const grpc::health::v1::HealthCheckRequest* request,
             grpc::health::v1::HealthCheckResponse* response,
             std::function<void(grpc::Status)> done) {
        stub->async()->Check(context, request, response, std::move(done));
      });
}

std::vector<SubmitResult> RunSubmitCases(const Flags& flags) {
  std::vector<SubmitResult> results;
  Server server(ServerConfigOf(flags));
  for (const auto& [name, target] :
       std::vector<std::pair<std::string, std::string>>{
           {"TCP", server.tcp_target()}, {"Unix", server.unix_target()}}) {
    if (!flags.transport.empty() &&
        absl::AsciiStrToLower(name) != flags.transport)
      continue;
    auto channel = OwnChannel(target, 0);
    auto stub = v1::JobService::NewStub(channel);
    auto health = grpc::health::v1::Health::NewStub(channel);
    // Warm the connection up.
    MakeSubmitLoop(stub.get(), 1, Clock::now() + std::chrono::milliseconds(200),
                   absl::StrCat("warm-", name, "-"))
        .RunAndWait();
    for (int callers : flags.callers) {
      const auto case_time =
          std::chrono::microseconds(static_cast<int64_t>(flags.seconds * 1e6));
      SubmitResult r;
      r.transport = name;
      r.callers = callers;

      const double floor_cpu = server.CpuSeconds();
      auto start = Clock::now();
      HealthLoop floor =
          MakeHealthLoop(health.get(), callers, start + case_time);
      floor.RunAndWait();
      const double floor_seconds =
          std::chrono::duration<double>(Clock::now() - start).count();
      r.floor_rate = floor.acked() / floor_seconds;
      r.floor_p50_ms = floor.latencies().QuantileMs(0.50);
      if (floor.acked() > 0) {
        r.floor_server_cpu_us =
            (server.CpuSeconds() - floor_cpu) * 1e6 / floor.acked();
      }

      const double server_cpu = server.CpuSeconds();
      const double client_cpu = SelfCpuSeconds();
      const std::optional<v1::StorageStats> storage_before = server.Storage();
      start = Clock::now();
      SubmitLoop loop = MakeSubmitLoop(stub.get(), callers, start + case_time,
                                       absl::StrCat(name, "-", callers, "-"));
      loop.RunAndWait();
      r.seconds = std::chrono::duration<double>(Clock::now() - start).count();
      r.jobs = loop.acked();
      r.errors = loop.errors();
      r.p50_ms = loop.latencies().QuantileMs(0.50);
      r.p99_ms = loop.latencies().QuantileMs(0.99);
      if (r.jobs > 0) {
        r.server_cpu_us = (server.CpuSeconds() - server_cpu) * 1e6 / r.jobs;
        r.client_cpu_us = (SelfCpuSeconds() - client_cpu) * 1e6 / r.jobs;
      }
      r.stages = StagesBetween(storage_before, server.Storage());
      absl::PrintF(
          "submit %-4s %2d caller(s): %7.0f jobs/s  ack p50 %.3f ms  p99 "
          "%.3f ms  (%d jobs, %d errors; CPU/job: server %.0f us, client "
          "%.0f us); gRPC floor %.0f calls/s p50 %.3f ms, server %.0f us/call "
          "(submits %.2fx)\n",
          name, callers, r.rate(), r.p50_ms, r.p99_ms, r.jobs, r.errors,
          r.server_cpu_us, r.client_cpu_us, r.floor_rate, r.floor_p50_ms,
          r.floor_server_cpu_us,
          r.floor_rate > 0 ? r.rate() / r.floor_rate : 0);
      if (r.stages) {
        absl::PrintF(
            "  stages: %.1f requests/commit; per request queue wait %.0f us; "
            "per commit apply %.0f us, commit %.0f us, complete %.0f us\n",
            r.stages->requests_per_commit, r.stages->queue_wait_us,
            r.stages->apply_us, r.stages->commit_us, r.stages->complete_us);
      }
      results.push_back(r);
    }
  }
  return results;
}

// ------------------------------------------------------------------- ab

// One number of callers of an A/B comparison: per round, each build's
// submits/s, ack p50 and server CPU per job.
struct AbResult {
  std::string transport;
  int callers = 0;
  std::vector<double> a_rate, b_rate, a_p50_ms, b_p50_ms;
  std::vector<double> a_cpu_us, b_cpu_us;  // server CPU per acked job
  int64_t errors = 0;
};

double Min(const std::vector<double>& v) {
  return v.empty() ? 0 : *std::min_element(v.begin(), v.end());
}
double Max(const std::vector<double>& v) {
  return v.empty() ? 0 : *std::max_element(v.begin(), v.end());
}

// Element-wise b[i] / a[i].
std::vector<double> Ratios(const std::vector<double>& b,
                           const std::vector<double>& a) {
  std::vector<double> r;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i)
    if (a[i] > 0) r.push_back(b[i] / a[i]);
  return r;
}

// The medians of an AbResult, and of its per-round B/A ratios.
struct AbSummary {
  double a_rate, b_rate, rate_ratio, rate_ratio_min, rate_ratio_max;
  double a_p50_ms, b_p50_ms, p50_ratio;
  double a_cpu_us, b_cpu_us, cpu_ratio;
};

AbSummary Summarize(const AbResult& r) {
  const std::vector<double> rate_ratio = Ratios(r.b_rate, r.a_rate);
  return AbSummary{Median(r.a_rate),
                   Median(r.b_rate),
                   Median(rate_ratio),
                   Min(rate_ratio),
                   Max(rate_ratio),
                   Median(r.a_p50_ms),
                   Median(r.b_p50_ms),
                   Median(Ratios(r.b_p50_ms, r.a_p50_ms)),
                   Median(r.a_cpu_us),
                   Median(r.b_cpu_us),
                   Median(Ratios(r.b_cpu_us, r.a_cpu_us))};
}

// A webhook receiver on 127.0.0.1: a thread per connection reads requests
// (headers, then Content-Length bytes of body) and answers each with 204,
// keeping the connection open. Counts the requests. Its threads are
// detached: create it once, never destroy it.
class Receiver {
 public:
  Receiver() {
    listener_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    if (listener_ < 0 ||
        bind(listener_, reinterpret_cast<sockaddr*>(&addr), len) != 0 ||
        listen(listener_, 256) != 0 ||
        getsockname(listener_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      std::cerr << "receiver: cannot listen on 127.0.0.1\n";
      exit(1);
    }
    port_ = ntohs(addr.sin_port);
    std::thread([this] { Accept(); }).detach();
  }
  int port() const { return port_; }
  int64_t requests() const { return requests_.load(); }

 private:
  void Accept() {
    while (true) {
      const int fd = accept(listener_, nullptr, nullptr);
      if (fd < 0) continue;
      std::thread([this, fd] { Serve(fd); }).detach();
    }
  }
  void Serve(int fd) {
    static constexpr char kAnswer[] =
        "HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n";
    std::string in;
    char buf[16384];
    while (true) {
      const size_t end = in.find("\r\n\r\n");
      if (end != std::string::npos) {
        size_t body = 0;
        const std::string head = absl::AsciiStrToLower(in.substr(0, end));
        if (size_t at = head.find("content-length:"); at != std::string::npos)
          body = strtoul(head.c_str() + at + 15, nullptr, 10);
        if (in.size() >= end + 4 + body) {
          in.erase(0, end + 4 + body);
          requests_.fetch_add(1);
          if (write(fd, kAnswer, sizeof(kAnswer) - 1) < 0) break;
          continue;
        }
      }
      const ssize_t n = read(fd, buf, sizeof(buf));
      if (n <= 0) break;
      in.append(buf, static_cast<size_t>(n));
    }
    close(fd);
  }

  int listener_ = -1;
  int port_ = 0;
  std::atomic<int64_t> requests_{0};
};

// The jobwired flags of webhooks on, with a secret file written under `dir`.
std::vector<std::string> WebhookServerArgs(const std::string& dir) {
  const std::string path =
      absl::StrCat(dir, "/jobwire-bench-webhook-secret-", getpid());
  // The example secret of the Standard Webhooks specification.
  std::ofstream(path) << "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n";
  return {"--webhook-secret-file", path, "--webhook-allow-cidr",
          "127.0.0.1/32"};
}

// --ab: two jobwired builds, both running side by side, take the same submit
// case in turns (A B, then B A, ...), each turn --seconds long. The box's
// drift (it is shared, and halves or doubles throughput within minutes)
// hits both builds alike, and the per-round ratio B/A cancels most of it;
// comparing two separate runs does not.
std::vector<AbResult> RunAbCases(const Flags& flags) {
  ServerConfig b_config = ServerConfigOf(flags);
  std::optional<v1::Webhook> b_webhook;
  // Never deleted: its threads run until the process ends.
  Receiver* receiver = nullptr;
  if (!flags.ab_webhooks.empty()) {
    receiver = new Receiver();
    b_config.extra_args = WebhookServerArgs(flags.dir);
    b_webhook.emplace();
    b_webhook->set_url(
        absl::StrCat("http://127.0.0.1:", receiver->port(), "/hook"));
    if (flags.ab_webhooks == "state")
      b_webhook->add_events(v1::Webhook::EVENT_STATE_CHANGED);
  } else {
    b_config.jobwired = flags.ab;
  }
  Server a(ServerConfigOf(flags));
  Server b(b_config);
  const bool tcp = flags.transport == "tcp";
  const std::string name = tcp ? "TCP" : "Unix";
  auto a_channel = OwnChannel(tcp ? a.tcp_target() : a.unix_target(), 0);
  auto b_channel = OwnChannel(tcp ? b.tcp_target() : b.unix_target(), 0);
  auto a_stub = v1::JobService::NewStub(a_channel);
  auto b_stub = v1::JobService::NewStub(b_channel);
  MakeSubmitLoop(a_stub.get(), 1, Clock::now() + std::chrono::milliseconds(200),
                 "warm-")
      .RunAndWait();
  MakeSubmitLoop(b_stub.get(), 1, Clock::now() + std::chrono::milliseconds(200),
                 "warm-", b_webhook)
      .RunAndWait();
  const auto case_time =
      std::chrono::microseconds(static_cast<int64_t>(flags.seconds * 1e6));
  std::vector<AbResult> results;
  int64_t loop_number = 0;
  for (int callers : flags.callers) {
    AbResult r;
    r.transport = name;
    r.callers = callers;
    for (int round = 0; round < flags.rounds; ++round) {
      for (int turn = 0; turn < 2; ++turn) {
        const bool run_b = (round + turn) % 2 == 1;
        SubmitLoop loop = MakeSubmitLoop(
            run_b ? b_stub.get() : a_stub.get(), callers,
            Clock::now() + case_time, absl::StrCat("ab-", loop_number++, "-"),
            run_b ? b_webhook : std::nullopt);
        const Server& server = run_b ? b : a;
        const double cpu = server.CpuSeconds();
        const auto start = Clock::now();
        loop.RunAndWait();
        const double seconds =
            std::chrono::duration<double>(Clock::now() - start).count();
        (run_b ? r.b_rate : r.a_rate).push_back(loop.acked() / seconds);
        (run_b ? r.b_cpu_us : r.a_cpu_us)
            .push_back((server.CpuSeconds() - cpu) * 1e6 /
                       std::max<int64_t>(1, loop.acked()));
        (run_b ? r.b_p50_ms : r.a_p50_ms)
            .push_back(loop.latencies().QuantileMs(0.50));
        r.errors += loop.errors();
      }
    }
    const AbSummary m = Summarize(r);
    absl::PrintF(
        "ab %-4s %2d caller(s), %d rounds: A %.0f jobs/s, B %.0f jobs/s "
        "(medians); B/A %.3f (range %.3f-%.3f); ack p50 A %.3f ms, B %.3f ms, "
        "B/A %.3f; server CPU/job A %.0f us, B %.0f us, B/A %.3f; %d errors\n",
        name, callers, flags.rounds, m.a_rate, m.b_rate, m.rate_ratio,
        m.rate_ratio_min, m.rate_ratio_max, m.a_p50_ms, m.b_p50_ms, m.p50_ratio,
        m.a_cpu_us, m.b_cpu_us, m.cpu_ratio, r.errors);
    results.push_back(std::move(r));
  }
  if (receiver != nullptr) {
    absl::PrintF("webhook receiver: %d requests during the run\n",
                 receiver->requests());
  }
  return results;
}

void ReportAb(const Flags& flags, const std::string& load_at_start,
              const std::vector<AbResult>& results) {
  std::ostringstream md;
  md << SectionStart("submit_bench A/B", load_at_start) << "\n"
     << "- A: `" << (flags.jobwired.empty() ? "this build" : flags.jobwired)
     << "`, B: "
     << (flags.ab_webhooks.empty()
             ? absl::StrCat("`", flags.ab, "`")
             : absl::StrCat("the same with webhooks on, every job with a "
                            "webhook to a receiver on 127.0.0.1 (events: ",
                            flags.ab_webhooks == "state"
                                ? "every state change, so each submit "
                                  "writes an outbox row"
                                : "the terminal ones, so a submit writes no "
                                  "outbox row",
                            ")"))
     << ", both running, synchronous=" << flags.sync
     << "; durable SubmitJob, closed loop, " << flags.rounds
     << " rounds of A then B (B then A in every other round), " << flags.seconds
     << " s each\n"
     << "- command: `" << flags.command << "`\n\n"
     << "| transport | callers | A jobs/s | B jobs/s | B/A median | B/A "
        "range | A ack p50 ms | B ack p50 ms | B/A p50 | A server CPU us/job "
        "| B server CPU us/job | B/A CPU | errors |\n"
     << "|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|\n";
  for (const AbResult& r : results) {
    const AbSummary m = Summarize(r);
    md << absl::StrFormat(
        "| %s | %d | %.0f | %.0f | %.3f | %.3f-%.3f | %.3f | %.3f | %.3f | "
        "%.0f | %.0f | %.3f | %d |\n",
        r.transport, r.callers, m.a_rate, m.b_rate, m.rate_ratio,
        m.rate_ratio_min, m.rate_ratio_max, m.a_p50_ms, m.b_p50_ms, m.p50_ratio,
        m.a_cpu_us, m.b_cpu_us, m.cpu_ratio, r.errors);
  }
  Emit(flags.append, md.str());
}

// ----------------------------------------------------------------- batch

// One round of the batch case: raw SQLite writing a batch's rows, and the
// server taking SubmitJobs batches of the same size, back to back.
struct BatchRound {
  double raw_rate = 0;     // raw SQLite, jobs/s
  double server_rate = 0;  // SubmitJobs, acknowledged jobs/s
  int64_t jobs = 0;        // acknowledged by the server
  int64_t errors = 0;
  double server_cpu_us = 0;  // jobwired CPU per job
  double client_cpu_us = 0;  // this process's CPU per job
  std::optional<SubmitResult::Stages> stages;
  double ratio() const { return raw_rate > 0 ? server_rate / raw_rate : 0; }
};

// `streams` SubmitJobs streams on one connection, each sending batches of
// `batch` sample jobs (one prepared request, sent again and again) and
// waiting for each answer, until `end`. Returns the acknowledged jobs;
// adds failed streams to `errors`.
int64_t RunBatchStreams(v1::JobService::Stub* stub, int streams, int batch,
                        Clock::time_point end, int64_t* errors) {
  v1::SubmitJobsRequest request;
  for (int i = 0; i < batch; ++i)
    FillSampleJob(request.add_jobs()->mutable_job());
  std::atomic<int64_t> acked{0};
  std::atomic<int64_t> failed{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < streams; ++t) {
    threads.emplace_back([&] {
      grpc::ClientContext context;
      auto stream = stub->SubmitJobs(&context);
      v1::SubmitJobsResponse response;
      while (Clock::now() < end) {
        if (!stream->Write(request) || !stream->Read(&response)) break;
        acked.fetch_add(response.ids_size());
      }
      stream->WritesDone();
      const grpc::Status status = stream->Finish();
      if (!status.ok()) {
        if (failed.fetch_add(1) == 0) {
          std::cerr << "SubmitJobs failed: " << status.error_code() << " "
                    << status.error_message() << "\n";
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  *errors += failed.load();
  return acked.load();
}

// --only batch: --rounds rounds, each raw SQLite at --batch jobs per
// transaction (the same rows a submit writes: job, label, `submitted`
// event; bench::RawInserts) and a fresh jobwired taking SubmitJobs batches
// of --batch jobs on --batch-streams streams, in turns (raw first in even
// rounds, the server first in odd ones), each --seconds long, on the same
// disk.
std::vector<BatchRound> RunBatchCase(const Flags& flags) {
  std::vector<BatchRound> rounds;
  const auto case_time =
      std::chrono::microseconds(static_cast<int64_t>(flags.seconds * 1e6));
  for (int round = 0; round < flags.rounds; ++round) {
    BatchRound r;
    auto raw = [&] {
      r.raw_rate = bench::RawInserts(flags.dir, flags.seconds, flags.batch,
                                     /*full=*/true)
                       .rate();
    };
    auto served = [&] {
      Server server(ServerConfigOf(flags));
      auto stub = v1::JobService::NewStub(OwnChannel(server.unix_target(), 0));
      int64_t warm_errors = 0;  // a first batch: the connection, the caches
      RunBatchStreams(stub.get(), 1, flags.batch, Clock::now(), &warm_errors);
      const double server_cpu = server.CpuSeconds();
      const double client_cpu = SelfCpuSeconds();
      const std::optional<v1::StorageStats> before = server.Storage();
      const auto start = Clock::now();
      r.jobs = RunBatchStreams(stub.get(), flags.batch_streams, flags.batch,
                               start + case_time, &r.errors);
      const double seconds =
          std::chrono::duration<double>(Clock::now() - start).count();
      r.server_rate = r.jobs / seconds;
      if (r.jobs > 0) {
        r.server_cpu_us = (server.CpuSeconds() - server_cpu) * 1e6 / r.jobs;
        r.client_cpu_us = (SelfCpuSeconds() - client_cpu) * 1e6 / r.jobs;
      }
      r.stages = StagesBetween(before, server.Storage());
    };
    if (round % 2 == 0) {
      raw();
      served();
    } else {
      served();
      raw();
    }
    absl::PrintF(
        "batch round %d: raw %.0f jobs/s, SubmitJobs %.0f jobs/s (%.2fx); "
        "CPU/job server %.1f us, client %.1f us; %d errors\n",
        round + 1, r.raw_rate, r.server_rate, r.ratio(), r.server_cpu_us,
        r.client_cpu_us, r.errors);
    rounds.push_back(r);
  }
  return rounds;
}

void ReportBatch(const Flags& flags, const std::string& load_at_start,
                 const std::vector<BatchRound>& rounds) {
  std::ostringstream md;
  md << SectionStart("submit_bench --only batch", load_at_start) << "\n"
     << "- command: `" << flags.command << "`\n"
     << absl::StrFormat(
            "- raw: SQLite through SQLiteCpp, %d jobs per transaction, per "
            "job the jobs row, its label row and its `submitted` event row "
            "(one prepared single-row INSERT per table), WAL, "
            "synchronous=FULL, a fresh database; server: a fresh jobwired "
            "(synchronous=%s) taking SubmitJobs batches of %d sample jobs "
            "on %d streams over its Unix socket (one prepared request, sent "
            "again and again; each stream waits for each answer). Raw and "
            "server take turns, %.0f s each, the same disk\n\n",
            flags.batch, flags.sync, flags.batch, flags.batch_streams,
            flags.seconds)
     << "| round | raw jobs/s | SubmitJobs jobs/s | SubmitJobs / raw | "
        "server CPU us/job | client CPU us/job | requests/commit | apply "
        "us/commit | commit us/commit |\n"
     << "|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n";
  std::vector<double> ratios, raw_rates, server_rates;
  for (size_t i = 0; i < rounds.size(); ++i) {
    const BatchRound& r = rounds[i];
    md << absl::StrFormat("| %d | %.0f | %.0f | %.2f | %.1f | %.1f | ", i + 1,
                          r.raw_rate, r.server_rate, r.ratio(), r.server_cpu_us,
                          r.client_cpu_us);
    if (r.stages) {
      md << absl::StrFormat("%.1f | %.0f | %.0f |\n",
                            r.stages->requests_per_commit, r.stages->apply_us,
                            r.stages->commit_us);
    } else {
      md << "- | - | - |\n";
    }
    ratios.push_back(r.ratio());
    raw_rates.push_back(r.raw_rate);
    server_rates.push_back(r.server_rate);
  }
  const double median = Median(ratios);
  md << absl::StrFormat(
      "\nMedians: raw %.0f jobs/s, SubmitJobs %.0f jobs/s; the median of "
      "the rounds' ratios %.2f (range %.2f-%.2f). Goal (#28): SubmitJobs "
      "batches of 1,000 >= 0.70 of raw: %s\n",
      Median(raw_rates), Median(server_rates), median, Min(ratios), Max(ratios),
      flags.batch != 1000 ? "(not 1,000 per batch)"
      : median >= 0.70    ? "met"
                          : "MISSED");
  Emit(flags.append, md.str());
}

// ----------------------------------------------------------------- event

struct EventResult {
  int watchers = 0;
  double rate = 0;
  double achieved_rate = 0;
  int64_t jobs = 0;
  int64_t delivered = 0;
  double event_p50_ms = 0;
  double event_p99_ms = 0;
  double ack_p50_ms = 0;
  double ack_p99_ms = 0;
};

// Matches acks (job id known) with events (job id seen), in either order.
class EventMatcher {
 public:
  explicit EventMatcher(size_t jobs) : sent_(jobs) {}

  void Sent(int64_t k) { sent_[k] = Clock::now(); }
  void Acked(int64_t k, const std::string& id) {
    const Clock::time_point now = Clock::now();
    acks_.Add(Micros(now - sent_[k]));
    absl::MutexLock lock(&mu_);
    auto it = early_events_.find(id);
    if (it != early_events_.end()) {
      events_.Add(Micros(it->second - sent_[k]));
      early_events_.erase(it);
      ++delivered_;
    } else {
      acked_ids_[id] = k;
    }
  }
  void Event(const std::string& id) {
    const Clock::time_point now = Clock::now();
    absl::MutexLock lock(&mu_);
    auto it = acked_ids_.find(id);
    if (it != acked_ids_.end()) {
      events_.Add(Micros(now - sent_[it->second]));
      acked_ids_.erase(it);
      ++delivered_;
    } else {
      early_events_[id] = now;
    }
  }
  int64_t delivered() {
    absl::MutexLock lock(&mu_);
    return delivered_;
  }
  Samples& acks() { return acks_; }
  Samples& events() { return events_; }

 private:
  std::vector<Clock::time_point> sent_;  // by k; written before the call
  Samples acks_;
  Samples events_;
  absl::Mutex mu_;
  std::unordered_map<std::string, int64_t> acked_ids_ ABSL_GUARDED_BY(mu_);
  std::unordered_map<std::string, Clock::time_point> early_events_
      ABSL_GUARDED_BY(mu_);
  int64_t delivered_ ABSL_GUARDED_BY(mu_) = 0;
};

// One paced, fire-and-forget SubmitJob; deletes itself when answered.
struct PacedCall {
  grpc::ClientContext context;
  v1::SubmitJobRequest request;
  v1::SubmitJobResponse response;
};

EventResult RunEventCase(const Flags& flags) {
  Server server(ServerConfigOf(flags));
  const int n_watchers = flags.watchers;
  const int64_t max_jobs = static_cast<int64_t>(flags.rate * flags.seconds) + 1;
  EventMatcher matcher(max_jobs);
  std::atomic<int64_t> warm_events{0};
  std::vector<std::atomic<bool>> warmed(n_watchers);
  std::vector<std::unique_ptr<StreamReader<v1::WatchJobsResponse>>> watchers;
  std::vector<std::shared_ptr<grpc::Channel>> channels;
  for (int i = 0; i < n_watchers; ++i) {
    channels.push_back(OwnChannel(server.unix_target(), i));
    warmed[i] = false;
    auto w = std::make_unique<StreamReader<v1::WatchJobsResponse>>(
        [&, i](const v1::WatchJobsResponse& m) {
          if (!m.has_event()) return;
          if (!warmed[i].exchange(true)) {
            warm_events.fetch_add(1);
            return;  // the warm-up job
          }
          matcher.Event(m.event().job_id());
        });
    v1::WatchJobsRequest request;
    request.set_filter(absl::StrCat("labels.w = \"", i, "\""));
    v1::JobService::NewStub(channels.back())
        ->async()
        ->WatchJobs(w->context(), &request, w.get());
    w->Begin();
    watchers.push_back(std::move(w));
  }
  auto stub = v1::JobService::NewStub(OwnChannel(server.unix_target(), -1));
  // Warm-up: one job per watcher, resubmitted until every watcher has seen
  // one (a stream is live only once the server has subscribed it).
  const absl::Time warm_deadline = absl::Now() + absl::Seconds(30);
  while (warm_events.load() < n_watchers && absl::Now() < warm_deadline) {
    for (int i = 0; i < n_watchers; ++i) {
      if (warmed[i].load()) continue;
      grpc::ClientContext context;
      v1::SubmitJobRequest request;
      FillSampleJob(request.mutable_job());
      (*request.mutable_job()->mutable_labels())["w"] = absl::StrCat(i);
      v1::SubmitJobResponse response;
      stub->SubmitJob(&context, request, &response);
    }
    absl::SleepFor(absl::Milliseconds(100));
  }
  if (warm_events.load() < n_watchers) {
    std::cerr << "only " << warm_events.load() << " of " << n_watchers
              << " watchers went live\n";
  }

  // Paced submits, open loop.
  const auto start = Clock::now();
  const auto interval =
      std::chrono::nanoseconds(static_cast<int64_t>(1e9 / flags.rate));
  std::atomic<int64_t> outstanding{0};
  int64_t k = 0;
  for (; k < max_jobs; ++k) {
    std::this_thread::sleep_until(start + k * interval);
    auto* call = new PacedCall;
    FillSampleJob(call->request.mutable_job());
    (*call->request.mutable_job()->mutable_labels())["w"] =
        absl::StrCat(k % n_watchers);
    call->request.set_request_id(absl::StrCat("lat-", k));
    outstanding.fetch_add(1);
    matcher.Sent(k);
    stub->async()->SubmitJob(
        &call->context, &call->request, &call->response,
        [&matcher, &outstanding, call, k](grpc::Status status) {
          if (status.ok()) matcher.Acked(k, call->response.job().id());
          outstanding.fetch_sub(1);
          // Safe: the tag holds its own call reference.
          delete call;
        });
  }
  const double sent_seconds =
      std::chrono::duration<double>(Clock::now() - start).count();
  const absl::Time drain_deadline = absl::Now() + absl::Seconds(10);
  while ((outstanding.load() > 0 || matcher.delivered() < k) &&
         absl::Now() < drain_deadline) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  EventResult r;
  r.watchers = n_watchers;
  r.rate = flags.rate;
  r.jobs = k;
  r.achieved_rate = k / sent_seconds;
  r.delivered = matcher.delivered();
  r.event_p50_ms = matcher.events().QuantileMs(0.50);
  r.event_p99_ms = matcher.events().QuantileMs(0.99);
  r.ack_p50_ms = matcher.acks().QuantileMs(0.50);
  r.ack_p99_ms = matcher.acks().QuantileMs(0.99);
  for (auto& w : watchers) w->Cancel();
  for (auto& w : watchers) w->WaitDone(absl::Now() + absl::Seconds(10));
  absl::PrintF(
      "event %d watchers, %.0f jobs/s paced (%.0f sent/s): submit->event "
      "p50 %.3f ms p99 %.3f ms; ack p50 %.3f ms p99 %.3f ms; %d/%d "
      "delivered\n",
      r.watchers, r.rate, r.achieved_rate, r.event_p50_ms, r.event_p99_ms,
      r.ack_p50_ms, r.ack_p99_ms, r.delivered, r.jobs);
  return r;
}

// ------------------------------------------------------------------ idle

struct IdleResult {
  int streams = 0;
  int channels = 0;
  int64_t opened = 0;
  double open_seconds = 0;
  int64_t rss_before_kib = 0;
  int64_t rss_open_kib = 0;
  int64_t rss_after_kib = 0;
  // The last of the further rounds (leak check).
  int64_t reopened = 0;
  int64_t rss_reopen_kib = 0;
  int64_t rss_after2_kib = 0;
  double per_stream_kib() const {
    return opened > 0
               ? static_cast<double>(rss_open_kib - rss_before_kib) / opened
               : 0;
  }
};

// Opens one WatchJob per id, round robin over `stubs`, waits until each has
// its snapshot (or `deadline`), then returns them open. `*opened` counts the
// snapshots received.
std::vector<std::unique_ptr<StreamReader<v1::WatchJobResponse>>> OpenWatches(
    const std::vector<std::unique_ptr<v1::JobService::Stub>>& stubs,
    const std::vector<std::string>& ids, absl::Time deadline,
    std::atomic<int64_t>* opened) {
  std::vector<std::unique_ptr<StreamReader<v1::WatchJobResponse>>> streams;
  for (size_t i = 0; i < ids.size() && absl::Now() < deadline; ++i) {
    auto s = std::make_unique<StreamReader<v1::WatchJobResponse>>(
        [opened](const v1::WatchJobResponse& m) {
          if (m.has_event() && m.event().has_snapshot()) opened->fetch_add(1);
        });
    v1::WatchJobRequest request;
    request.set_id(ids[i]);
    stubs[i % stubs.size()]->async()->WatchJob(s->context(), &request, s.get());
    s->Begin();
    streams.push_back(std::move(s));
  }
  while (opened->load() < static_cast<int64_t>(streams.size()) &&
         absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  return streams;
}

void CancelAll(
    std::vector<std::unique_ptr<StreamReader<v1::WatchJobResponse>>>* streams) {
  for (auto& s : *streams) s->Cancel();
  for (auto& s : *streams) s->WaitDone(absl::Now() + absl::Seconds(20));
  streams->clear();
}

IdleResult RunIdleCase(const Flags& flags) {
  Server server(ServerConfigOf(flags));
  IdleResult r;
  r.streams = flags.idle_streams;
  r.channels = flags.channels;
  std::vector<std::shared_ptr<grpc::Channel>> channels;
  std::vector<std::unique_ptr<v1::JobService::Stub>> stubs;
  for (int i = 0; i < flags.channels; ++i) {
    channels.push_back(OwnChannel(server.unix_target(), i));
    stubs.push_back(v1::JobService::NewStub(channels.back()));
  }
  std::vector<std::string> ids = CreateJobs(stubs[0].get(), flags.idle_streams);
  // Connect every channel (one GetJob each) before the "before" reading.
  for (auto& stub : stubs) {
    grpc::ClientContext context;
    v1::GetJobRequest get;
    get.set_id(ids.empty() ? "" : ids[0]);
    v1::Job job;
    stub->GetJob(&context, get, &job);
  }
  r.rss_before_kib = server.RssKib();
  const absl::Duration open_budget =
      absl::Seconds(std::max(10.0, flags.seconds * 5));

  // Round 1: open, measure, cancel.
  std::atomic<int64_t> opened{0};
  const auto start = Clock::now();
  auto streams = OpenWatches(stubs, ids, absl::Now() + open_budget, &opened);
  r.open_seconds = std::chrono::duration<double>(Clock::now() - start).count();
  r.opened = opened.load();
  absl::SleepFor(absl::Milliseconds(500));  // let allocations settle
  r.rss_open_kib = server.RssKib();
  CancelAll(&streams);
  absl::SleepFor(absl::Milliseconds(500));
  r.rss_after_kib = server.RssKib();

  // More rounds, the leak check: the same streams again should reuse the
  // memory round 1 freed (glibc keeps it), not add as much again.
  for (int round = 2; round <= flags.idle_rounds; ++round) {
    std::atomic<int64_t> reopened{0};
    streams = OpenWatches(stubs, ids, absl::Now() + open_budget, &reopened);
    r.reopened = reopened.load();
    absl::SleepFor(absl::Milliseconds(500));
    r.rss_reopen_kib = server.RssKib();
    CancelAll(&streams);
    absl::SleepFor(absl::Milliseconds(500));
    r.rss_after2_kib = server.RssKib();
    absl::PrintF("  round %d: %d open, RSS %.1f MiB; %.1f MiB after cancel\n",
                 round, r.reopened, r.rss_reopen_kib / 1024.0,
                 r.rss_after2_kib / 1024.0);
  }
  absl::PrintF(
      "idle %d WatchJob streams over %d channels: opened %d in %.1f s; "
      "server RSS %.1f MiB before, %.1f MiB open (%.1f KiB/stream), %.1f "
      "MiB after cancel; last round: %d open %.1f MiB, %.1f MiB after "
      "cancel\n",
      r.streams, r.channels, r.opened, r.open_seconds,
      r.rss_before_kib / 1024.0, r.rss_open_kib / 1024.0, r.per_stream_kib(),
      r.rss_after_kib / 1024.0, r.reopened, r.rss_reopen_kib / 1024.0,
      r.rss_after2_kib / 1024.0);
  return r;
}

// ---------------------------------------------------------------- report

const char* Verdict(bool met) { return met ? "met" : "MISSED"; }

void Report(const Flags& flags, const std::string& load_at_start,
            const std::vector<SubmitResult>& submits,
            const std::optional<EventResult>& event,
            const std::optional<IdleResult>& idle) {
  std::ostringstream md;
  md << SectionStart("submit_bench", load_at_start)
     << ". The machine is shared and noisy: other builds and tests ran "
        "meanwhile, so every number here is a lower bound on what the code "
        "can do.\n"
     << "- server: the real jobwired, started by the benchmark, "
        "synchronous="
     << flags.sync << ", WAL, database in a fresh directory under `"
     << flags.dir << "`; client: gRPC callback API in the same process\n"
     << "- command: `" << flags.command << "`";
  if (const char* driver = getenv("JOBWIRE_BENCH_COMMAND"); driver != nullptr)
    md << ", run by `" << driver << "`";
  md << "\n";
  if (flags.raw1 > 0) {
    md << absl::StrFormat(
        "- baseline in the same run (store_bench --only raw1 / raw1000): raw "
        "SQLite inserts of the jobs row, %.0f rows/s at 1 row per "
        "transaction, %.0f rows/s at 1,000 per transaction\n",
        flags.raw1, flags.raw1000);
  }
  if (!submits.empty()) {
    md << "\nDurable SubmitJob, closed loop (each caller waits for its "
          "ack). gRPC floor: the same load generator, channel and number of "
          "callers calling grpc.health.v1.Health/Check (answered inline from "
          "memory) on the same server right before; \"vs floor\" is "
          "submits/s divided by those calls/s:\n\n"
       << "| transport | callers | jobs | seconds | jobs/s | ack p50 ms | ack "
          "p99 ms | server CPU us/job | client CPU us/job | gRPC floor "
          "calls/s | floor p50 ms | floor server CPU us/call | vs floor | vs "
          "raw 1/txn | vs raw "
          "1000/txn |\n"
       << "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
          "---:|---:|\n";
    for (const SubmitResult& r : submits) {
      md << absl::StrFormat(
          "| %s | %d | %d | %.2f | %.0f | %.3f | %.3f | %.0f | %.0f | %.0f | "
          "%.3f | %.0f | %.3fx | ",
          r.transport, r.callers, r.jobs, r.seconds, r.rate(), r.p50_ms,
          r.p99_ms, r.server_cpu_us, r.client_cpu_us, r.floor_rate,
          r.floor_p50_ms, r.floor_server_cpu_us,
          r.floor_rate > 0 ? r.rate() / r.floor_rate : 0);
      if (flags.raw1 > 0) {
        md << absl::StrFormat("%.2fx | %.3fx |\n", r.rate() / flags.raw1,
                              r.rate() / flags.raw1000);
      } else {
        md << "- | - |\n";
      }
    }
    if (std::any_of(submits.begin(), submits.end(), [](const SubmitResult& r) {
          return r.stages.has_value();
        })) {
      md << "\nWhere the server's time went (GetServerInfo `storage` read "
            "before and after each case): requests per commit, the mean wait "
            "of a request for its transaction, and per commit the mean "
            "apply (BEGIN to COMMIT), COMMIT (WAL write and fsync) and "
            "complete (answers, listeners), in microseconds:\n\n"
         << "| transport | callers | requests/commit | queue wait us | apply "
            "us | commit us | complete us |\n"
         << "|---|---:|---:|---:|---:|---:|---:|\n";
      for (const SubmitResult& r : submits) {
        if (!r.stages) continue;
        md << absl::StrFormat(
            "| %s | %d | %.1f | %.0f | %.0f | %.0f | %.0f |\n", r.transport,
            r.callers, r.stages->requests_per_commit, r.stages->queue_wait_us,
            r.stages->apply_us, r.stages->commit_us, r.stages->complete_us);
      }
    }
  }
  if (event) {
    md << absl::StrFormat(
        "\nSubmit to watcher: %d WatchJobs streams (filter labels.w = \"i\"; "
        "each job goes to one of them), SubmitJob paced at %.0f jobs/s "
        "(achieved %.0f), %d jobs, %d events matched. Latency from just "
        "before SubmitJob is sent to the watcher reading the `submitted` "
        "event, so it includes the durable commit (fsync): p50 %.3f ms, "
        "p99 %.3f ms. Ack latency of the same submits: p50 %.3f ms, p99 "
        "%.3f ms.\n",
        event->watchers, event->rate, event->achieved_rate, event->jobs,
        event->delivered, event->event_p50_ms, event->event_p99_ms,
        event->ack_p50_ms, event->ack_p99_ms);
  }
  if (idle) {
    md << absl::StrFormat(
        "\nIdle watches: %d WatchJob streams over %d connections (Unix "
        "socket), %d open (snapshot received) after %.1f s. Server VmRSS "
        "%.1f MiB before, %.1f MiB with the streams open (%.1f KiB per "
        "stream), %.1f MiB after they were cancelled (glibc keeps freed "
        "memory). Leak check, the same streams opened and cancelled %d more "
        "time(s): last round %d open, %.1f MiB; %.1f MiB after they were "
        "cancelled.\n",
        idle->streams, idle->channels, idle->opened, idle->open_seconds,
        idle->rss_before_kib / 1024.0, idle->rss_open_kib / 1024.0,
        idle->per_stream_kib(), idle->rss_after_kib / 1024.0,
        flags.idle_rounds - 1, idle->reopened, idle->rss_reopen_kib / 1024.0,
        idle->rss_after2_kib / 1024.0);
  }
  md << "\nGoals (synchronous=" << flags.sync << "):\n";
  for (const SubmitResult& r : submits) {
    if (r.callers == 64) {
      md << absl::StrFormat(
          "- >= 20k durable submits/s at 64 callers (%s): "
          "%.0f/s, %s\n",
          r.transport, r.rate(), Verdict(r.rate() >= 20000));
    }
    if (r.callers == 1) {
      md << absl::StrFormat(
          "- ack p50 <= 0.5 ms at 1 caller (%s): %.3f ms, "
          "%s\n",
          r.transport, r.p50_ms, Verdict(r.p50_ms <= 0.5));
    }
  }
  if (event) {
    md << absl::StrFormat(
        "- event p99 <= 5 ms at %.0f jobs/s: %.3f ms, %s\n", event->rate,
        event->event_p99_ms,
        Verdict(event->event_p99_ms <= 5 && event->delivered == event->jobs));
  }
  if (idle) {
    md << absl::StrFormat(
        "- %d idle watch streams with server RSS <= 400 MB: %d open, %.1f "
        "MiB, %s\n",
        idle->streams, idle->opened, idle->rss_open_kib / 1024.0,
        Verdict(idle->opened == idle->streams &&
                idle->rss_open_kib * 1024.0 <= 400e6));
  }
  Emit(flags.append, md.str());
}

int Main(int argc, char** argv) {
  Flags flags;
  std::vector<std::string> args(argv, argv + argc);
  flags.command = absl::StrJoin(args, " ");
  if (const char* tmp = getenv("TMPDIR"); tmp != nullptr && *tmp != '\0')
    flags.dir = tmp;
  for (size_t i = 1; i < args.size(); i += 2) {  // every flag takes a value
    const std::string& a = args[i];
    const bool has = i + 1 < args.size();
    const std::string v = has ? args[i + 1] : "";
    bool ok = has;
    if (a == "--seconds") {
      ok = ok && absl::SimpleAtod(v, &flags.seconds) && flags.seconds > 0 &&
           flags.seconds <= 60;
    } else if (a == "--only") {
      flags.only = v;
      ok = ok && (v == "submit" || v == "event" || v == "idle" || v == "batch");
    } else if (a == "--dir") {
      flags.dir = v;
    } else if (a == "--rate") {
      ok = ok && absl::SimpleAtod(v, &flags.rate) && flags.rate > 0 &&
           flags.rate <= 100000;
    } else if (a == "--watchers") {
      ok = ok && absl::SimpleAtoi(v, &flags.watchers) && flags.watchers > 0 &&
           flags.watchers <= 10000;
    } else if (a == "--idle-streams") {
      ok = ok && absl::SimpleAtoi(v, &flags.idle_streams) &&
           flags.idle_streams > 0 && flags.idle_streams <= 100000;
    } else if (a == "--idle-rounds") {
      ok = ok && absl::SimpleAtoi(v, &flags.idle_rounds) &&
           flags.idle_rounds >= 1 && flags.idle_rounds <= 20;
    } else if (a == "--channels") {
      ok = ok && absl::SimpleAtoi(v, &flags.channels) && flags.channels > 0 &&
           flags.channels <= 1000;
    } else if (a == "--db") {
      flags.db = v;
    } else if (a == "--sync") {
      flags.sync = v;
      ok = ok && (v == "full" || v == "normal" || v == "off");
    } else if (a == "--raw1") {
      ok = ok && absl::SimpleAtod(v, &flags.raw1);
    } else if (a == "--raw1000") {
      ok = ok && absl::SimpleAtod(v, &flags.raw1000);
    } else if (a == "--jobwired") {
      flags.jobwired = v;
      ok = ok && access(v.c_str(), X_OK) == 0;
    } else if (a == "--append") {
      flags.append = v;
    } else if (a == "--callers") {
      flags.callers.clear();
      for (absl::string_view part : absl::StrSplit(v, ',')) {
        int n = 0;
        ok = ok && absl::SimpleAtoi(part, &n) && n >= 1 && n <= 1024;
        flags.callers.push_back(n);
      }
    } else if (a == "--ab") {
      flags.ab = v;
      ok = ok && !v.empty();
    } else if (a == "--ab-webhooks") {
      flags.ab_webhooks = v;
      ok = ok && (v == "terminal" || v == "state");
    } else if (a == "--rounds") {
      ok = ok && absl::SimpleAtoi(v, &flags.rounds) && flags.rounds > 0 &&
           flags.rounds <= 100;
    } else if (a == "--batch") {
      ok = ok && absl::SimpleAtoi(v, &flags.batch) && flags.batch >= 1 &&
           flags.batch <= 1000;
    } else if (a == "--batch-streams") {
      ok = ok && absl::SimpleAtoi(v, &flags.batch_streams) &&
           flags.batch_streams >= 1 && flags.batch_streams <= 64;
    } else if (a == "--transport") {
      flags.transport = v;
      ok = ok && (v == "tcp" || v == "unix");
    } else {
      ok = false;
    }
    if (!ok) {
      std::cerr << "usage: submit_bench [--seconds S (0..60]] [--only "
                   "submit|event|idle|batch] [--dir DIR] [--rate JOBS_PER_S] "
                   "[--watchers N] [--idle-streams N] [--idle-rounds N] "
                   "[--channels N] "
                   "[--sync full|normal|off] "
                   "[--raw1 N --raw1000 N] [--jobwired PATH] "
                   "[--append FILE] [--callers N,N,..] "
                   "[--transport tcp|unix] [--ab PATH [--rounds N]] "
                   "[--ab-webhooks terminal|state] [--batch N (1..1000)] "
                   "[--batch-streams N]\n";
      return 2;
    }
  }
  RaiseFdLimit();
  signal(SIGPIPE, SIG_IGN);
  const std::string load_at_start = LoadAverage();
  if (!flags.ab.empty() || !flags.ab_webhooks.empty()) {
    ReportAb(flags, load_at_start, RunAbCases(flags));
    return 0;
  }
  if (flags.only == "batch") {
    ReportBatch(flags, load_at_start, RunBatchCase(flags));
    return 0;
  }
  std::vector<SubmitResult> submits;
  std::optional<EventResult> event;
  std::optional<IdleResult> idle;
  if (flags.only.empty() || flags.only == "submit")
    submits = RunSubmitCases(flags);
  if (flags.only.empty() || flags.only == "event") event = RunEventCase(flags);
  if (flags.only.empty() || flags.only == "idle") idle = RunIdleCase(flags);
  Report(flags, load_at_start, submits, event, idle);
  return 0;
}

}  // namespace
}  // namespace jobwire::bench

int main(int argc, char** argv) { return jobwire::bench::Main(argc, argv); }
