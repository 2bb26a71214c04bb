// http_bench: the HTTP face (`jobwired --http`) against gRPC, in the same
// run, on real jobwired children it starts itself (synchronous=full, fresh
// databases in temporary directories, loopback TCP for both faces).
//
//   memory   --streams idle SSE streams (default 10,000), `GET
//            /v1/jobs/{id}/events`, one per queued job and one connection
//            each (HTTP/1.1 has no multiplexing), against as many idle gRPC
//            WatchJob streams on the same jobs over --channels connections
//            (default 100). Each side gets a fresh server with --streams
//            queued jobs; a stream counts as open once its snapshot event
//            arrived. Measured: the server's VmRSS growth from before the
//            first stream to all streams open. Rounds alternate SSE, gRPC,
//            gRPC, SSE, ... (--rounds of each); medians.
//   latency  one SSE `GET /v1/events` watcher and one gRPC WatchJobs watcher,
//            both with the filter queue = "bench", on the same server, while
//            SubmitJob (gRPC) is paced at --rate jobs/s (default 1,000, open
//            loop). Latency: from just before SubmitJob is sent to each
//            watcher reading the job's state_changed (to QUEUED) event; so it
//            includes the durable commit (fsync). Both watchers see every
//            job of the same round, so there is nothing to alternate;
//            --rounds rounds of --seconds, medians of the per-round p50, p99
//            and SSE/gRPC ratios.
//   submit   JSON `POST /v1/jobs` over --callers keep-alive connections
//            (default 64) against gRPC SubmitJob with as many concurrent
//            callers on one channel, closed loop, durable, on the same
//            server; turns of --seconds alternate (JSON gRPC, then gRPC
//            JSON, ...), --rounds of each; medians of jobs/s and of the
//            per-round JSON/gRPC ratio.
//
// The HTTP client is Boost.Beast on one thread; the gRPC client is the
// callback API (a few gRPC threads). Both share the machine with the server.
// Every loop is bounded in count and in time.
//
//   http_bench [--only memory|latency|submit] [--seconds 3] [--rounds 3]
//              [--streams 10000] [--channels 100] [--rate 1000]
//              [--callers 64] [--dir /tmp] [--sync full|normal|off]
//              [--jobwired PATH] [--append FILE]
#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <iostream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "jobwire/v1/job_service.grpc.pb.h"
#include "tools/bench/bench_server.h"
#include "tools/bench/machine.h"

namespace jobwire::bench {
namespace {

namespace beast = boost::beast;
namespace http = boost::beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;
using Clock = std::chrono::steady_clock;

struct Flags {
  std::string only;
  double seconds = 3;
  int rounds = 3;
  int streams = 10000;
  int channels = 100;
  double rate = 1000;
  int callers = 64;
  std::string dir = "/tmp";
  std::string sync = "full";
  std::string jobwired;
  std::string append;
  std::string command;
};

double Micros(Clock::duration d) {
  return std::chrono::duration<double, std::micro>(d).count();
}

// A jobwired child serving HTTP on 127.0.0.1:0 besides gRPC, allowed
// `max_connections` HTTP connections.
ServerConfig HttpServerConfig(const Flags& flags, int max_connections) {
  return ServerConfig{flags.dir,
                      flags.sync,
                      flags.jobwired,
                      {"--http", "127.0.0.1:0", "--http-max-connections",
                       absl::StrCat(max_connections)}};
}

tcp::endpoint EndpointOf(const std::string& host_port) {
  const size_t colon = host_port.rfind(':');
  int port = 0;
  if (colon == std::string::npos ||
      !absl::SimpleAtoi(host_port.substr(colon + 1), &port)) {
    std::cerr << "http_bench: no HTTP port in '" << host_port << "'\n";
    exit(1);
  }
  return tcp::endpoint(net::ip::make_address(host_port.substr(0, colon)),
                       static_cast<unsigned short>(port));
}

// The q-quantile (nearest rank) of `v` in milliseconds, `v` in microseconds.
double QuantileMs(std::vector<double>* v, double q) {
  if (v->empty()) return 0;
  std::sort(v->begin(), v->end());
  const size_t i = static_cast<size_t>(q * (v->size() - 1) + 0.5);
  return (*v)[std::min(i, v->size() - 1)] / 1000.0;
}

// An io_context run by one thread, the HTTP client's. The destructor stops
// it and joins; handlers still pending are destroyed with it.
class IoThread {
 public:
  IoThread() : guard_(net::make_work_guard(ioc_)) {
    thread_ = std::thread([this] { ioc_.run(); });
  }
  ~IoThread() {
    guard_.reset();
    ioc_.stop();
    thread_.join();
  }
  net::io_context& ioc() { return ioc_; }

 private:
  net::io_context ioc_;
  net::executor_work_guard<net::io_context::executor_type> guard_;
  std::thread thread_;
};

// ------------------------------------------------------------------ SSE

// One Server-Sent Events stream on a connection of its own: connects, sends
// `GET target`, and hands every event block to `on_event` (on the I/O thread)
// until the server ends it or Close(). Beast parses the HTTP response and its
// chunked framing; only the SSE lines are read here.
class SseStream : public std::enable_shared_from_this<SseStream> {
 public:
  // `type` is the `event:` field ("message" when absent), `data` the
  // `data:` field; `at` when the block was read.
  using OnEvent = std::function<void(
      absl::string_view type, absl::string_view data, Clock::time_point at)>;

  SseStream(net::io_context& ioc, tcp::endpoint endpoint, std::string target,
            OnEvent on_event)
      : stream_(ioc), endpoint_(endpoint), on_event_(std::move(on_event)) {
    request_.method(http::verb::get);
    request_.target(target);
    request_.version(11);
    request_.set(http::field::host, "127.0.0.1");
    request_.set(http::field::accept, "text/event-stream");
    on_chunk_ = [this](std::uint64_t, beast::string_view body,
                       beast::error_code&) {
      OnBody(body);
      return body.size();
    };
    parser_.on_chunk_body(on_chunk_);
    parser_.body_limit(boost::none);
  }

  // Starts on the I/O thread.
  void Start() {
    net::post(stream_.get_executor(), [self = shared_from_this()] {
      self->stream_.expires_after(std::chrono::seconds(30));
      self->stream_.async_connect(
          self->endpoint_,
          [self](beast::error_code ec) { self->OnConnect(ec); });
    });
  }

  // Closes the connection (on the I/O thread); `done()` turns true once the
  // pending read has returned.
  void Close() {
    net::post(stream_.get_executor(), [self = shared_from_this()] {
      beast::error_code ec;
      self->stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
      self->stream_.close();
    });
  }

  bool done() const { return done_.load(); }
  bool failed() const { return failed_.load(); }

 private:
  void Fail(beast::error_code ec, const char* what) {
    if (ec != net::error::operation_aborted && !closing_reported_) {
      closing_reported_ = true;
      static std::atomic<int> reported{0};
      if (reported.fetch_add(1) < 3) {
        std::cerr << "sse " << what << ": " << ec.message() << "\n";
      }
      failed_ = true;
    }
    done_ = true;
  }

  void OnConnect(beast::error_code ec) {
    if (ec) return Fail(ec, "connect");
    http::async_write(
        stream_, request_,
        [self = shared_from_this()](beast::error_code ec, std::size_t) {
          if (ec) return self->Fail(ec, "write");
          self->ReadHeader();
        });
  }

  void ReadHeader() {
    http::async_read_header(
        stream_, buffer_, parser_,
        [self = shared_from_this()](beast::error_code ec, std::size_t) {
          if (ec) return self->Fail(ec, "read header");
          if (self->parser_.get().result() != http::status::ok) {
            std::cerr << "sse: HTTP " << self->parser_.get().result_int()
                      << "\n";
            self->failed_ = true;
            self->done_ = true;
            return;
          }
          // Idle streams stay open: no timeout from here on.
          self->stream_.expires_never();
          self->ReadBody();
        });
  }

  void ReadBody() {
    http::async_read_some(
        stream_, buffer_, parser_,
        [self = shared_from_this()](beast::error_code ec, std::size_t) {
          if (ec == http::error::end_of_chunk) ec = {};
          if (ec) return self->Fail(ec, "read");
          if (self->parser_.is_done()) {
            self->done_ = true;
            return;
          }
          self->ReadBody();
        });
  }

  // SSE: blocks end with an empty line; lines are `field: value`.
  void OnBody(beast::string_view body) {
    pending_.append(body.data(), body.size());
    size_t start = 0;
    for (size_t end; (end = pending_.find("\n\n", start)) != std::string::npos;
         start = end + 2) {
      absl::string_view type = "message";
      absl::string_view data;
      bool any = false;
      for (absl::string_view line : absl::StrSplit(
               absl::string_view(pending_).substr(start, end - start), '\n')) {
        if (absl::ConsumePrefix(&line, "event: ")) {
          type = line, any = true;
        } else if (absl::ConsumePrefix(&line, "data: ")) {
          data = line, any = true;
        }
      }
      if (any) on_event_(type, data, Clock::now());
    }
    pending_.erase(0, start);
  }

  beast::tcp_stream stream_;
  const tcp::endpoint endpoint_;
  const OnEvent on_event_;
  http::request<http::empty_body> request_;
  beast::flat_buffer buffer_;
  http::response_parser<http::empty_body> parser_;
  std::function<std::size_t(std::uint64_t, beast::string_view,
                            beast::error_code&)>
      on_chunk_;
  std::string pending_;
  bool closing_reported_ = false;
  std::atomic<bool> done_{false};
  std::atomic<bool> failed_{false};
};

// The value of `"key":"` ... `"` in canonical proto JSON (no whitespace).
absl::string_view JsonString(absl::string_view json, absl::string_view key) {
  const std::string needle = absl::StrCat("\"", key, "\":\"");
  const size_t at = json.find(needle);
  if (at == absl::string_view::npos) return "";
  json.remove_prefix(at + needle.size());
  return json.substr(0, json.find('"'));
}

// ---------------------------------------------------------------- memory

struct MemoryTurn {
  int64_t opened = 0;
  int64_t failed = 0;
  double open_seconds = 0;
  int64_t rss_before_kib = 0;
  int64_t rss_open_kib = 0;
  double growth_kib() const {
    return static_cast<double>(rss_open_kib - rss_before_kib);
  }
};

struct MemoryResult {
  std::vector<MemoryTurn> sse, grpc;
};

// Waits until `done()` or `deadline`, polling.
void WaitUntil(const std::function<bool()>& done, absl::Time deadline) {
  while (!done() && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(10));
  }
}

MemoryTurn SseMemoryTurn(const Flags& flags) {
  BenchServer server(HttpServerConfig(flags, flags.streams + 100));
  auto stub = v1::JobService::NewStub(OwnChannel(server.unix_target(), 0));
  const std::vector<std::string> ids = CreateJobs(stub.get(), flags.streams);
  const tcp::endpoint endpoint = EndpointOf(server.http_target());
  IoThread io;
  MemoryTurn t;
  absl::SleepFor(absl::Milliseconds(300));
  t.rss_before_kib = server.RssKib();
  std::atomic<int64_t> opened{0};
  std::vector<std::shared_ptr<SseStream>> streams;
  streams.reserve(ids.size());
  const auto start = Clock::now();
  const absl::Time deadline =
      absl::Now() + absl::Seconds(std::max(60.0, flags.seconds * 10));
  // At most kWindow streams connecting at once, so the listen backlog never
  // overflows (which would cost a 1 s SYN retry and skew the open time).
  constexpr int64_t kWindow = 256;
  auto failed = [&streams] {
    int64_t n = 0;
    for (const auto& s : streams) n += s->failed() ? 1 : 0;
    return n;
  };
  int64_t failed_seen = 0;
  for (size_t i = 0; i < ids.size() && absl::Now() < deadline; ++i) {
    while (static_cast<int64_t>(i) - opened.load() - failed_seen >= kWindow &&
           absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(1));
      failed_seen = failed();
    }
    auto s = std::make_shared<SseStream>(
        io.ioc(), endpoint, absl::StrCat("/v1/jobs/", ids[i], "/events"),
        [&opened, first = true](absl::string_view type, absl::string_view,
                                Clock::time_point) mutable {
          if (first && type == "snapshot") {
            first = false;
            opened.fetch_add(1);
          }
        });
    s->Start();
    streams.push_back(std::move(s));
  }
  WaitUntil(
      [&] {
        return opened.load() + failed() >= static_cast<int64_t>(streams.size());
      },
      deadline);
  t.open_seconds = std::chrono::duration<double>(Clock::now() - start).count();
  t.opened = opened.load();
  t.failed = failed();
  absl::SleepFor(absl::Milliseconds(500));  // let allocations settle
  t.rss_open_kib = server.RssKib();
  for (auto& s : streams) s->Close();
  WaitUntil(
      [&] {
        return std::all_of(streams.begin(), streams.end(),
                           [](const auto& s) { return s->done(); });
      },
      absl::Now() + absl::Seconds(20));
  absl::PrintF(
      "memory SSE:  %d of %d streams open in %.1f s (%d failed); server RSS "
      "%.1f MiB before, %.1f MiB open: +%.1f MiB, %.1f KiB/stream\n",
      t.opened, ids.size(), t.open_seconds, t.failed, t.rss_before_kib / 1024.0,
      t.rss_open_kib / 1024.0, t.growth_kib() / 1024.0,
      t.opened > 0 ? t.growth_kib() / t.opened : 0.0);
  streams.clear();
  return t;
}

MemoryTurn GrpcMemoryTurn(const Flags& flags) {
  BenchServer server(HttpServerConfig(flags, flags.streams + 100));
  std::vector<std::shared_ptr<grpc::Channel>> channels;
  std::vector<std::unique_ptr<v1::JobService::Stub>> stubs;
  for (int i = 0; i < flags.channels; ++i) {
    channels.push_back(OwnChannel(server.tcp_target(), i));
    stubs.push_back(v1::JobService::NewStub(channels.back()));
  }
  const std::vector<std::string> ids = CreateJobs(
      v1::JobService::NewStub(OwnChannel(server.unix_target(), -1)).get(),
      flags.streams);
  // Connect every channel (one GetJob each) before the "before" reading.
  for (auto& stub : stubs) {
    grpc::ClientContext context;
    v1::GetJobRequest get;
    get.set_id(ids.empty() ? "" : ids[0]);
    v1::Job job;
    stub->GetJob(&context, get, &job);
  }
  MemoryTurn t;
  absl::SleepFor(absl::Milliseconds(300));
  t.rss_before_kib = server.RssKib();
  std::atomic<int64_t> opened{0};
  std::vector<std::unique_ptr<StreamReader<v1::WatchJobResponse>>> streams;
  const auto start = Clock::now();
  const absl::Time deadline =
      absl::Now() + absl::Seconds(std::max(60.0, flags.seconds * 10));
  for (size_t i = 0; i < ids.size() && absl::Now() < deadline; ++i) {
    auto s = std::make_unique<StreamReader<v1::WatchJobResponse>>(
        [&opened](const v1::WatchJobResponse& m) {
          if (m.has_event() && m.event().has_snapshot()) opened.fetch_add(1);
        });
    v1::WatchJobRequest request;
    request.set_id(ids[i]);
    stubs[i % stubs.size()]->async()->WatchJob(s->context(), &request, s.get());
    s->Begin();
    streams.push_back(std::move(s));
  }
  WaitUntil(
      [&] { return opened.load() >= static_cast<int64_t>(streams.size()); },
      deadline);
  t.open_seconds = std::chrono::duration<double>(Clock::now() - start).count();
  t.opened = opened.load();
  absl::SleepFor(absl::Milliseconds(500));
  t.rss_open_kib = server.RssKib();
  for (auto& s : streams) s->Cancel();
  for (auto& s : streams) s->WaitDone(absl::Now() + absl::Seconds(20));
  absl::PrintF(
      "memory gRPC: %d of %d streams open in %.1f s over %d connections; "
      "server RSS %.1f MiB before, %.1f MiB open: +%.1f MiB, %.1f "
      "KiB/stream\n",
      t.opened, ids.size(), t.open_seconds, flags.channels,
      t.rss_before_kib / 1024.0, t.rss_open_kib / 1024.0,
      t.growth_kib() / 1024.0, t.opened > 0 ? t.growth_kib() / t.opened : 0.0);
  return t;
}

MemoryResult RunMemory(const Flags& flags) {
  MemoryResult r;
  for (int round = 0; round < flags.rounds; ++round) {
    for (int turn = 0; turn < 2; ++turn) {
      if ((round + turn) % 2 == 0) {
        r.sse.push_back(SseMemoryTurn(flags));
      } else {
        r.grpc.push_back(GrpcMemoryTurn(flags));
      }
    }
  }
  return r;
}

// --------------------------------------------------------------- latency

// When each watcher read each job's QUEUED event. Thread-safe.
class Arrivals {
 public:
  void Add(absl::string_view id, Clock::time_point at) {
    absl::MutexLock lock(&mu_);
    at_.try_emplace(id, at);
  }
  std::optional<Clock::time_point> Get(const std::string& id) {
    absl::MutexLock lock(&mu_);
    auto it = at_.find(id);
    if (it == at_.end()) return std::nullopt;
    return it->second;
  }
  size_t size() {
    absl::MutexLock lock(&mu_);
    return at_.size();
  }
  void Clear() {
    absl::MutexLock lock(&mu_);
    at_.clear();
  }

 private:
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, Clock::time_point> at_ ABSL_GUARDED_BY(mu_);
};

struct LatencyRound {
  int64_t jobs = 0;
  double sent_rate = 0;
  int64_t sse_seen = 0, grpc_seen = 0;
  double sse_p50 = 0, sse_p99 = 0, grpc_p50 = 0, grpc_p99 = 0;
  double ack_p50 = 0, ack_p99 = 0;
};

// One paced, fire-and-forget SubmitJob; deleted in its callback.
struct PacedCall {
  grpc::ClientContext context;
  v1::SubmitJobRequest request;
  v1::SubmitJobResponse response;
};

std::vector<LatencyRound> RunLatency(const Flags& flags) {
  BenchServer server(HttpServerConfig(flags, 1000));
  IoThread io;
  Arrivals sse_at, grpc_at;
  auto queued = [](absl::string_view data) {
    return JsonString(data, "to") == "STATE_QUEUED";
  };
  auto sse = std::make_shared<SseStream>(
      io.ioc(), EndpointOf(server.http_target()),
      "/v1/events?filter=queue%20%3D%20%22bench%22",
      [&](absl::string_view type, absl::string_view data,
          Clock::time_point at) {
        if (type == "state_changed" && queued(data)) {
          sse_at.Add(JsonString(data, "jobId"), at);
        }
      });
  sse->Start();
  auto watch_channel = OwnChannel(server.tcp_target(), 1);
  StreamReader<v1::WatchJobsResponse> watcher(
      [&grpc_at](const v1::WatchJobsResponse& m) {
        const Clock::time_point at = Clock::now();
        if (m.has_event() && m.event().has_state_changed() &&
            m.event().state_changed().to() == v1::Job::STATE_QUEUED) {
          grpc_at.Add(m.event().job_id(), at);
        }
      });
  v1::WatchJobsRequest watch;
  watch.set_filter("queue = \"bench\"");
  v1::JobService::NewStub(watch_channel)
      ->async()
      ->WatchJobs(watcher.context(), &watch, &watcher);
  watcher.Begin();

  auto stub = v1::JobService::NewStub(OwnChannel(server.tcp_target(), 2));
  // Warm-up: submit until both watchers have seen a job (a stream is live
  // only once the server has subscribed it).
  const absl::Time warm_deadline = absl::Now() + absl::Seconds(30);
  while ((sse_at.size() == 0 || grpc_at.size() == 0) &&
         absl::Now() < warm_deadline) {
    grpc::ClientContext context;
    v1::SubmitJobRequest request;
    FillSampleJob(request.mutable_job());
    v1::SubmitJobResponse response;
    stub->SubmitJob(&context, request, &response);
    absl::SleepFor(absl::Milliseconds(100));
  }
  if (sse_at.size() == 0 || grpc_at.size() == 0) {
    std::cerr << "latency: a watcher did not go live (SSE " << sse_at.size()
              << ", gRPC " << grpc_at.size() << ")\n";
  }

  std::vector<LatencyRound> rounds;
  const int64_t max_jobs = static_cast<int64_t>(flags.rate * flags.seconds);
  const auto interval =
      std::chrono::nanoseconds(static_cast<int64_t>(1e9 / flags.rate));
  for (int round = 0; round < flags.rounds; ++round) {
    sse_at.Clear();
    grpc_at.Clear();
    std::vector<Clock::time_point> sent(max_jobs), acked_at(max_jobs);
    std::vector<std::string> ids(max_jobs);
    std::atomic<int64_t> outstanding{0};
    const auto start = Clock::now();
    int64_t k = 0;
    for (; k < max_jobs; ++k) {
      std::this_thread::sleep_until(start + k * interval);
      auto* call = new PacedCall;
      FillSampleJob(call->request.mutable_job());
      call->request.set_request_id(absl::StrCat("lat-", round, "-", k));
      outstanding.fetch_add(1);
      sent[k] = Clock::now();
      stub->async()->SubmitJob(
          &call->context, &call->request, &call->response,
          [&, call, k](grpc::Status status) {
            // Each k is written by its own callback only; read after the
            // drain below.
            if (status.ok()) {
              acked_at[k] = Clock::now();
              ids[k] = call->response.job().id();
            }
            outstanding.fetch_sub(1);
            delete call;  // safe: the tag holds its own call reference
          });
    }
    LatencyRound r;
    r.jobs = k;
    r.sent_rate =
        k / std::chrono::duration<double>(Clock::now() - start).count();
    WaitUntil(
        [&] {
          return outstanding.load() == 0 &&
                 sse_at.size() >= static_cast<size_t>(k) &&
                 grpc_at.size() >= static_cast<size_t>(k);
        },
        absl::Now() + absl::Seconds(10));
    absl::SleepFor(absl::Milliseconds(outstanding.load() > 0 ? 1000 : 0));
    std::vector<double> sse_us, grpc_us, ack_us;
    for (int64_t i = 0; i < k; ++i) {
      if (ids[i].empty()) continue;
      ack_us.push_back(Micros(acked_at[i] - sent[i]));
      if (auto at = sse_at.Get(ids[i])) sse_us.push_back(Micros(*at - sent[i]));
      if (auto at = grpc_at.Get(ids[i])) {
        grpc_us.push_back(Micros(*at - sent[i]));
      }
    }
    r.sse_seen = sse_us.size();
    r.grpc_seen = grpc_us.size();
    r.sse_p50 = QuantileMs(&sse_us, 0.50);
    r.sse_p99 = QuantileMs(&sse_us, 0.99);
    r.grpc_p50 = QuantileMs(&grpc_us, 0.50);
    r.grpc_p99 = QuantileMs(&grpc_us, 0.99);
    r.ack_p50 = QuantileMs(&ack_us, 0.50);
    r.ack_p99 = QuantileMs(&ack_us, 0.99);
    absl::PrintF(
        "latency round %d: %d jobs at %.0f/s; submit -> QUEUED event: SSE "
        "p50 %.3f ms p99 %.3f ms (%d seen), gRPC p50 %.3f ms p99 %.3f ms "
        "(%d seen); SSE/gRPC p99 %.2fx; ack p50 %.3f ms p99 %.3f ms\n",
        round + 1, r.jobs, r.sent_rate, r.sse_p50, r.sse_p99, r.sse_seen,
        r.grpc_p50, r.grpc_p99, r.grpc_seen,
        r.grpc_p99 > 0 ? r.sse_p99 / r.grpc_p99 : 0.0, r.ack_p50, r.ack_p99);
    rounds.push_back(r);
  }
  sse->Close();
  watcher.Cancel();
  watcher.WaitDone(absl::Now() + absl::Seconds(10));
  WaitUntil([&] { return sse->done(); }, absl::Now() + absl::Seconds(10));
  return rounds;
}

// ---------------------------------------------------------------- submit

// Closed-loop submitters: `Run` starts every caller and returns when each
// has had its last answer after `end`.
class Submitters {
 public:
  virtual ~Submitters() = default;
  struct Result {
    int64_t acked = 0;
    int64_t errors = 0;
    double seconds = 0;
    double p50_ms = 0;
    double server_cpu_us = 0;  // per acked job
    double client_cpu_us = 0;  // this process, per acked job
    double rate() const { return seconds > 0 ? acked / seconds : 0; }
  };
  Result Run(Clock::duration length, BenchServer* server) {
    {
      absl::MutexLock lock(&mu_);
      active_ = callers();
      acked_ = errors_ = 0;
      latencies_us_.clear();
    }
    const double cpu = server->CpuSeconds();
    const double client_cpu = ProcessCpuSeconds(getpid());
    const auto start = Clock::now();
    end_ = start + length;
    StartAll();
    absl::MutexLock lock(&mu_);
    mu_.AwaitWithTimeout(
        absl::Condition(
            +[](int* active) { return *active == 0; }, &active_),
        absl::FromChrono(length) + absl::Seconds(30));
    Result r;
    r.seconds = std::chrono::duration<double>(Clock::now() - start).count();
    r.acked = acked_;
    r.errors = errors_;
    r.p50_ms = QuantileMs(&latencies_us_, 0.5);
    if (r.acked > 0) {
      r.server_cpu_us = (server->CpuSeconds() - cpu) * 1e6 / r.acked;
      r.client_cpu_us =
          (ProcessCpuSeconds(getpid()) - client_cpu) * 1e6 / r.acked;
    }
    return r;
  }

 protected:
  virtual int callers() const = 0;
  virtual void StartAll() = 0;
  // A caller's answer; returns whether it should call again (never when
  // `can_go_on` is false, e.g. after its connection broke).
  bool Answered(bool ok, Clock::time_point start, bool can_go_on = true) {
    const Clock::time_point now = Clock::now();
    absl::MutexLock lock(&mu_);
    if (ok) {
      ++acked_;
      latencies_us_.push_back(Micros(now - start));
    } else {
      ++errors_;
    }
    if (now < end_ && can_go_on) return true;
    --active_;
    return false;
  }
  // A caller that sits this round out.
  void Quit() {
    absl::MutexLock lock(&mu_);
    --active_;
  }
  int64_t next_id() { return next_id_.fetch_add(1); }

 private:
  Clock::time_point end_;
  std::atomic<int64_t> next_id_{0};
  absl::Mutex mu_;
  int active_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t acked_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t errors_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<double> latencies_us_ ABSL_GUARDED_BY(mu_);
};

// gRPC SubmitJob callers on one channel, callback API.
class GrpcSubmitters final : public Submitters {
 public:
  GrpcSubmitters(const std::string& target, int n)
      : stub_(v1::JobService::NewStub(OwnChannel(target, 3))) {
    for (int i = 0; i < n; ++i) {
      callers_.push_back(std::make_unique<Caller>());
      FillSampleJob(callers_.back()->request.mutable_job());
    }
  }

 private:
  struct Caller {
    std::unique_ptr<grpc::ClientContext> context;
    v1::SubmitJobRequest request;
    v1::SubmitJobResponse response;
    Clock::time_point start;
  };
  int callers() const override { return static_cast<int>(callers_.size()); }
  void StartAll() override {
    for (auto& c : callers_) Issue(c.get());
  }
  void Issue(Caller* c) {
    c->context = std::make_unique<grpc::ClientContext>();
    c->response.Clear();
    c->request.set_request_id(absl::StrCat("g-", next_id()));
    c->start = Clock::now();
    // Replacing the context in the callback is safe: the tag holds its own
    // reference to the finished call.
    stub_->async()->SubmitJob(c->context.get(), &c->request, &c->response,
                              [this, c](grpc::Status status) {
                                if (!status.ok()) {
                                  Report(status.error_message());
                                }
                                if (Answered(status.ok(), c->start)) Issue(c);
                              });
  }
  void Report(const std::string& what) {
    if (reported_.fetch_add(1) < 3) std::cerr << "SubmitJob: " << what << "\n";
  }

  std::unique_ptr<v1::JobService::Stub> stub_;
  std::vector<std::unique_ptr<Caller>> callers_;
  std::atomic<int> reported_{0};
};

// JSON POST /v1/jobs callers, one keep-alive connection each, on the I/O
// thread.
class JsonSubmitters final : public Submitters {
 public:
  JsonSubmitters(net::io_context& ioc, tcp::endpoint endpoint, int n) {
    for (int i = 0; i < n; ++i) {
      callers_.push_back(std::make_unique<Caller>(ioc));
    }
    // Connect all before the first round.
    std::atomic<int> connected{0};
    for (auto& c : callers_) {
      c->stream.async_connect(endpoint, [&connected](beast::error_code ec) {
        if (ec) std::cerr << "connect: " << ec.message() << "\n";
        connected.fetch_add(1);
      });
    }
    WaitUntil([&] { return connected.load() == n; },
              absl::Now() + absl::Seconds(30));
  }
  // Closes the connections on the I/O thread (no call is in flight once Run
  // has returned) and waits for that before the streams go.
  ~JsonSubmitters() override {
    std::atomic<int> closed{0};
    for (auto& c : callers_) {
      net::post(c->stream.get_executor(), [s = &c->stream, &closed] {
        beast::error_code ec;
        s->socket().shutdown(tcp::socket::shutdown_both, ec);
        s->close();
        closed.fetch_add(1);
      });
    }
    WaitUntil([&] { return closed.load() == callers(); },
              absl::Now() + absl::Seconds(30));
  }

 private:
  struct Caller {
    explicit Caller(net::io_context& ioc) : stream(ioc) {}
    beast::tcp_stream stream;
    beast::flat_buffer buffer;
    bool broken = false;  // its connection failed: out for good
    http::request<http::string_body> request;
    http::response<http::string_body> response;
    Clock::time_point start;
  };
  int callers() const override { return static_cast<int>(callers_.size()); }
  void StartAll() override {
    for (auto& c : callers_) {
      net::post(c->stream.get_executor(), [this, c = c.get()] {
        if (c->broken) return Quit();
        Issue(c);
      });
    }
  }
  void Issue(Caller* c) {
    // The same job as FillSampleJob, as canonical proto JSON.
    c->request = {};
    c->request.method(http::verb::post);
    c->request.target("/v1/jobs");
    c->request.version(11);
    c->request.set(http::field::host, "127.0.0.1");
    c->request.set(http::field::content_type, "application/json");
    c->request.keep_alive(true);
    c->request.body() = absl::StrCat(
        R"({"job":{"queue":"bench","kind":"resize-image","args":{"width":640,)",
        R"("height":480,"src":"s3://bucket/key.png"},"labels":{"tenant":"acme"}},)",
        R"("requestId":"j-)", next_id(), R"("})");
    c->request.prepare_payload();
    c->response = {};
    c->start = Clock::now();
    c->stream.expires_after(std::chrono::seconds(30));
    http::async_write(
        c->stream, c->request, [this, c](beast::error_code ec, std::size_t) {
          if (ec) return Broken(c, ec.message());
          http::async_read(
              c->stream, c->buffer, c->response,
              [this, c](beast::error_code ec, std::size_t) {
                if (ec) return Broken(c, ec.message());
                const bool ok = c->response.result() == http::status::ok;
                if (!ok) Log(c->response.body());
                if (!c->response.keep_alive()) c->broken = true;
                if (Answered(ok, c->start, c->response.keep_alive())) {
                  Issue(c);
                }
              });
        });
  }
  void Broken(Caller* c, const std::string& error) {
    Log(error);
    c->broken = true;
    Answered(false, c->start, /*can_go_on=*/false);
  }
  void Log(const std::string& error) {
    if (reported_++ < 3) std::cerr << "POST /v1/jobs: " << error << "\n";
  }

  std::vector<std::unique_ptr<Caller>> callers_;
  int reported_ = 0;  // on the I/O thread
};

struct SubmitResult {
  std::vector<Submitters::Result> json, grpc;
};

SubmitResult RunSubmit(const Flags& flags) {
  BenchServer server(HttpServerConfig(flags, flags.callers + 100));
  IoThread io;
  JsonSubmitters json(io.ioc(), EndpointOf(server.http_target()),
                      flags.callers);
  GrpcSubmitters grpc(server.tcp_target(), flags.callers);
  const auto length =
      std::chrono::microseconds(static_cast<int64_t>(flags.seconds * 1e6));
  // Warm both up.
  json.Run(std::chrono::milliseconds(300), &server);
  grpc.Run(std::chrono::milliseconds(300), &server);
  SubmitResult r;
  for (int round = 0; round < flags.rounds; ++round) {
    for (int turn = 0; turn < 2; ++turn) {
      const bool run_json = (round + turn) % 2 == 0;
      Submitters::Result t = (run_json ? static_cast<Submitters&>(json) : grpc)
                                 .Run(length, &server);
      absl::PrintF(
          "submit %-4s %d callers: %7.0f jobs/s (%d jobs, %d errors), p50 "
          "%.3f ms, CPU per job: server %.0f us, client %.0f us\n",
          run_json ? "JSON" : "gRPC", flags.callers, t.rate(), t.acked,
          t.errors, t.p50_ms, t.server_cpu_us, t.client_cpu_us);
      (run_json ? r.json : r.grpc).push_back(t);
    }
  }
  return r;
}

// ---------------------------------------------------------------- report

const char* Verdict(bool met) { return met ? "met" : "MISSED"; }

template <typename T, typename F>
std::vector<double> Map(const std::vector<T>& v, F f) {
  std::vector<double> out;
  for (const T& x : v) out.push_back(f(x));
  return out;
}

std::vector<double> Ratios(const std::vector<double>& a,
                           const std::vector<double>& b) {
  std::vector<double> r;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
    if (b[i] > 0) r.push_back(a[i] / b[i]);
  }
  return r;
}

// "1.23, 1.31, 1.27": `v` with `decimals` decimals.
std::string Join(const std::vector<double>& v, int decimals) {
  return absl::StrJoin(v, ", ", [decimals](std::string* out, double x) {
    absl::StrAppend(out, absl::StrFormat("%.*f", decimals, x));
  });
}

void Report(const Flags& flags, const std::string& load_at_start,
            const std::optional<MemoryResult>& memory,
            const std::vector<LatencyRound>& latency,
            const std::optional<SubmitResult>& submit) {
  std::ostringstream md;
  std::ostringstream goals;
  md << SectionStart("http_bench", load_at_start)
     << ". The machine is shared and noisy (other engineers build and test "
        "on the same 2 CPUs), so the ratios against gRPC in the same run are "
        "what to read, not the absolute numbers.\n"
     << "- server: the real jobwired, started by the benchmark with `--http "
        "127.0.0.1:0`, synchronous="
     << flags.sync << ", WAL, database in a fresh directory under `"
     << flags.dir
     << "`; both faces over loopback TCP; clients in the same process: "
        "Boost.Beast on one thread for HTTP, the gRPC callback API for gRPC\n"
     << "- command: `" << flags.command << "`\n";
  if (memory) {
    const auto sse_growth =
        Map(memory->sse, [](const MemoryTurn& t) { return t.growth_kib(); });
    const auto grpc_growth =
        Map(memory->grpc, [](const MemoryTurn& t) { return t.growth_kib(); });
    const auto sse_rss = Map(memory->sse, [](const MemoryTurn& t) {
      return static_cast<double>(t.rss_open_kib);
    });
    const auto grpc_rss = Map(memory->grpc, [](const MemoryTurn& t) {
      return static_cast<double>(t.rss_open_kib);
    });
    const double growth_ratio = Median(Ratios(sse_growth, grpc_growth));
    const double rss_ratio = Median(Ratios(sse_rss, grpc_rss));
    const int64_t sse_open_min =
        memory->sse.empty()
            ? 0
            : std::min_element(memory->sse.begin(), memory->sse.end(),
                               [](const auto& a, const auto& b) {
                                 return a.opened < b.opened;
                               })
                  ->opened;
    const int64_t grpc_open_min =
        memory->grpc.empty()
            ? 0
            : std::min_element(memory->grpc.begin(), memory->grpc.end(),
                               [](const auto& a, const auto& b) {
                                 return a.opened < b.opened;
                               })
                  ->opened;
    md << absl::StrFormat(
        "\nIdle streams: %d idle SSE streams (`GET /v1/jobs/{id}/events`, "
        "one per queued job, one connection each) against %d idle gRPC "
        "WatchJob streams on as many jobs over %d connections; each turn on "
        "a fresh server holding %d queued jobs, turns alternating (SSE first "
        "in odd rounds), %d rounds. A stream is open once its snapshot event "
        "arrived. Growth: server VmRSS with every stream open minus VmRSS "
        "before the first one.\n\n"
        "| | streams open (min) | RSS before MiB | RSS open MiB | growth MiB "
        "| KiB/stream | open seconds |\n|---|---:|---:|---:|---:|---:|---:|\n",
        flags.streams, flags.streams, flags.channels, flags.streams,
        flags.rounds);
    for (const auto& [name, turns, open_min] :
         {std::tuple{"SSE", &memory->sse, sse_open_min},
          std::tuple{"gRPC", &memory->grpc, grpc_open_min}}) {
      const auto growth =
          Map(*turns, [](const MemoryTurn& t) { return t.growth_kib(); });
      const auto per = Map(*turns, [](const MemoryTurn& t) {
        return t.opened > 0 ? t.growth_kib() / t.opened : 0.0;
      });
      md << absl::StrFormat(
          "| %s (median of %d) | %d | %.1f | %.1f | %.1f | %.1f | %.1f |\n",
          name, turns->size(), open_min,
          Median(Map(*turns,
                     [](const MemoryTurn& t) {
                       return static_cast<double>(t.rss_before_kib);
                     })) /
              1024.0,
          Median(Map(*turns,
                     [](const MemoryTurn& t) {
                       return static_cast<double>(t.rss_open_kib);
                     })) /
              1024.0,
          Median(growth) / 1024.0, Median(per),
          Median(
              Map(*turns, [](const MemoryTurn& t) { return t.open_seconds; })));
    }
    md << absl::StrFormat(
        "\nSSE/gRPC, median of the per-round ratios: growth %.2fx (rounds: "
        "%s), RSS with the streams open %.2fx.\n",
        growth_ratio, Join(Ratios(sse_growth, grpc_growth), 2), rss_ratio);
    const double sse_rss_mb = Median(sse_rss) * 1024.0 / 1e6;
    const bool all_open = sse_open_min == flags.streams;
    goals << absl::StrFormat(
        "- %d idle SSE streams, server RSS <= 400 MB: %.0f MB (%d open), "
        "%s\n",
        flags.streams, sse_rss_mb, sse_open_min,
        Verdict(all_open && sse_rss_mb <= 400));
    goals << absl::StrFormat(
        "- idle SSE streams' RSS growth within 1.5x of gRPC WatchJob's: "
        "%.2fx, %s\n",
        growth_ratio,
        Verdict(all_open && grpc_open_min == flags.streams &&
                growth_ratio <= 1.5));
  }
  if (!latency.empty()) {
    const auto sse_p99 =
        Map(latency, [](const LatencyRound& r) { return r.sse_p99; });
    const auto grpc_p99 =
        Map(latency, [](const LatencyRound& r) { return r.grpc_p99; });
    const double p99_ratio = Median(Ratios(sse_p99, grpc_p99));
    md << absl::StrFormat(
        "\nSubmit to event: SubmitJob (gRPC) paced at %.0f jobs/s, open "
        "loop; one SSE `GET /v1/events` watcher and one gRPC WatchJobs "
        "watcher (both filter `queue = \"bench\"`) on the same server read "
        "every job's state_changed (to QUEUED) event. Latency from just "
        "before SubmitJob is sent to the watcher reading the event, so it "
        "includes the durable commit (fsync). %d rounds of %.0f s:\n\n"
        "| round | jobs | sent/s | SSE seen | SSE p50 ms | SSE p99 ms | gRPC "
        "seen | gRPC p50 ms | gRPC p99 ms | SSE/gRPC p99 | ack p50 ms | ack "
        "p99 ms |\n"
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
        flags.rate, flags.rounds, flags.seconds);
    bool all_seen = true;
    for (size_t i = 0; i < latency.size(); ++i) {
      const LatencyRound& r = latency[i];
      all_seen = all_seen && r.sse_seen == r.jobs && r.grpc_seen == r.jobs;
      md << absl::StrFormat(
          "| %d | %d | %.0f | %d | %.3f | %.3f | %d | %.3f | %.3f | %.2fx | "
          "%.3f | %.3f |\n",
          i + 1, r.jobs, r.sent_rate, r.sse_seen, r.sse_p50, r.sse_p99,
          r.grpc_seen, r.grpc_p50, r.grpc_p99,
          r.grpc_p99 > 0 ? r.sse_p99 / r.grpc_p99 : 0.0, r.ack_p50, r.ack_p99);
    }
    md << absl::StrFormat(
        "| median | | | | %.3f | %.3f | | %.3f | %.3f | %.2fx | | |\n",
        Median(Map(latency, [](const LatencyRound& r) { return r.sse_p50; })),
        Median(sse_p99),
        Median(Map(latency, [](const LatencyRound& r) { return r.grpc_p50; })),
        Median(grpc_p99), p99_ratio);
    goals << absl::StrFormat(
        "- submit -> SSE event p99 <= 5 ms at %.0f jobs/s: %.3f ms, %s\n",
        flags.rate, Median(sse_p99), Verdict(all_seen && Median(sse_p99) <= 5));
    goals << absl::StrFormat(
        "- submit -> SSE event p99 within 1.5x of the gRPC watcher's: %.2fx, "
        "%s\n",
        p99_ratio, Verdict(all_seen && p99_ratio <= 1.5));
  }
  if (submit) {
    const auto json_rate =
        Map(submit->json, [](const Submitters::Result& t) { return t.rate(); });
    const auto grpc_rate =
        Map(submit->grpc, [](const Submitters::Result& t) { return t.rate(); });
    const double ratio = Median(Ratios(json_rate, grpc_rate));
    md << absl::StrFormat(
        "\nSubmit throughput: durable submits, closed loop, %d concurrent "
        "callers each: JSON `POST /v1/jobs` over %d keep-alive connections, "
        "gRPC SubmitJob on one channel, same server, turns of %.0f s "
        "alternating (JSON first in odd rounds), %d rounds:\n\n"
        "| | jobs/s (median) | jobs/s per turn | ack p50 ms (median) | server "
        "CPU us/job (median) | client CPU us/job (median) | errors "
        "|\n|---|---:|---|---:|---:|---:|---:|\n",
        flags.callers, flags.callers, flags.seconds, flags.rounds);
    for (const auto& [name, turns] :
         {std::pair{"JSON", &submit->json}, std::pair{"gRPC", &submit->grpc}}) {
      const auto rates =
          Map(*turns, [](const Submitters::Result& t) { return t.rate(); });
      int64_t errors = 0;
      for (const auto& t : *turns) errors += t.errors;
      md << absl::StrFormat(
          "| %s | %.0f | %s | %.3f | %.0f | %.0f | %d |\n", name, Median(rates),
          Join(rates, 0),
          Median(Map(*turns,
                     [](const Submitters::Result& t) { return t.p50_ms; })),
          Median(
              Map(*turns,
                  [](const Submitters::Result& t) { return t.server_cpu_us; })),
          Median(
              Map(*turns,
                  [](const Submitters::Result& t) { return t.client_cpu_us; })),
          errors);
    }
    md << absl::StrFormat(
        "\nJSON/gRPC, median of the per-round ratios: %.2fx (rounds: %s).\n",
        ratio, Join(Ratios(json_rate, grpc_rate), 2));
    goals << absl::StrFormat(
        "- JSON POST /v1/jobs at %d connections >= 50%% of gRPC SubmitJob's "
        "rate: %.0f%%, %s\n",
        flags.callers, ratio * 100, Verdict(ratio >= 0.5));
  }
  md << "\nGoals (#23):\n" << goals.str();
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
    if (a == "--only") {
      flags.only = v;
      ok = ok && (v == "memory" || v == "latency" || v == "submit");
    } else if (a == "--seconds") {
      ok = ok && absl::SimpleAtod(v, &flags.seconds) && flags.seconds > 0 &&
           flags.seconds <= 60;
    } else if (a == "--rounds") {
      ok = ok && absl::SimpleAtoi(v, &flags.rounds) && flags.rounds > 0 &&
           flags.rounds <= 20;
    } else if (a == "--streams") {
      ok = ok && absl::SimpleAtoi(v, &flags.streams) && flags.streams > 0 &&
           flags.streams <= 50000;
    } else if (a == "--channels") {
      ok = ok && absl::SimpleAtoi(v, &flags.channels) && flags.channels > 0 &&
           flags.channels <= 1000;
    } else if (a == "--rate") {
      ok = ok && absl::SimpleAtod(v, &flags.rate) && flags.rate > 0 &&
           flags.rate <= 20000;
    } else if (a == "--callers") {
      ok = ok && absl::SimpleAtoi(v, &flags.callers) && flags.callers > 0 &&
           flags.callers <= 1024;
    } else if (a == "--dir") {
      flags.dir = v;
    } else if (a == "--sync") {
      flags.sync = v;
      ok = ok && (v == "full" || v == "normal" || v == "off");
    } else if (a == "--jobwired") {
      flags.jobwired = v;
      ok = ok && access(v.c_str(), X_OK) == 0;
    } else if (a == "--append") {
      flags.append = v;
    } else {
      ok = false;
    }
    if (!ok) {
      std::cerr << "usage: http_bench [--only memory|latency|submit] "
                   "[--seconds S (0..60]] [--rounds N] [--streams N] "
                   "[--channels N] [--rate JOBS_PER_S] [--callers N] "
                   "[--dir DIR] [--sync full|normal|off] [--jobwired PATH] "
                   "[--append FILE]\n";
      return 2;
    }
  }
  // 10,000 SSE streams are 10,000 sockets here and in the child, which
  // inherits the limit.
  RaiseFdLimit();
  signal(SIGPIPE, SIG_IGN);
  const std::string load_at_start = LoadAverage();
  std::optional<MemoryResult> memory;
  std::vector<LatencyRound> latency;
  std::optional<SubmitResult> submit;
  if (flags.only.empty() || flags.only == "memory") memory = RunMemory(flags);
  if (flags.only.empty() || flags.only == "latency")
    latency = RunLatency(flags);
  if (flags.only.empty() || flags.only == "submit") submit = RunSubmit(flags);
  Report(flags, load_at_start, memory, latency, submit);
  return 0;
}

}  // namespace
}  // namespace jobwire::bench

int main(int argc, char** argv) { return jobwire::bench::Main(argc, argv); }
