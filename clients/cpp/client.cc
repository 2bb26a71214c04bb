#include "clients/cpp/client.h"

#include <algorithm>
#include <cstdlib>
#include <deque>
#include <random>
#include <thread>
#include <utility>

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"

namespace jobwire::sdk {
namespace {

constexpr char kStatusPayload[] = "type.googleapis.com/google.rpc.Status";

std::string EnvOr(const char* name, std::string fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::string(v) : std::move(fallback);
}

std::optional<google::rpc::Status> RpcStatus(const absl::Status& status) {
  auto payload = status.GetPayload(kStatusPayload);
  if (!payload.has_value()) return std::nullopt;
  google::rpc::Status rpc;
  if (!rpc.ParseFromString(std::string(*payload))) return std::nullopt;
  return rpc;
}

bool Resumable(absl::StatusCode code) {
  return code == absl::StatusCode::kUnavailable ||
         code == absl::StatusCode::kInternal ||
         code == absl::StatusCode::kUnknown ||
         code == absl::StatusCode::kResourceExhausted;
}

bool EndsJob(const v1::JobEvent& e) {
  if (e.has_state_changed()) return IsTerminal(e.state_changed().to());
  if (e.has_snapshot()) return IsTerminal(e.snapshot().state());
  return false;
}

// Reconnect delays: 50 ms doubling to 2 s, with +-20% jitter.
class Backoff {
 public:
  void Reset() { next_ = absl::Milliseconds(50); }
  // Waits the next delay (or `hint`). While `channel` is not connected the
  // wait ends as soon as it connects: waiting on the channel is what drives
  // its connection attempts, which a sleeping thread would leave unpolled.
  void Sleep(grpc::Channel* channel, std::optional<absl::Duration> hint) {
    thread_local std::mt19937 rng{std::random_device{}()};
    std::uniform_real_distribution<double> jitter(0.8, 1.2);
    const absl::Time end = absl::Now() + hint.value_or(next_) * jitter(rng);
    if (channel->GetState(/*try_to_connect=*/false) == GRPC_CHANNEL_READY) {
      absl::SleepFor(end - absl::Now());
    } else {
      channel->WaitForConnected(absl::ToChronoTime(end));
    }
    next_ = std::min(next_ * 2, absl::Seconds(2));
  }

 private:
  absl::Duration next_ = absl::Milliseconds(50);
};

// Runs a watch, reopening it after the last cursor passed to `fn` whenever
// it breaks with a resumable code, or the server says it is draining: then
// the stream is closed at once, so it does not hold the server's stop for
// its grace period. `open(context, cursor)` starts the call; `on_message`
// (may be empty) sees every message but heartbeats first.
// The one resume loop of the tree: the CLI's watch runs on it too.
template <typename Response, typename Open, typename CursorOf>
absl::Status Resuming(const Client& client, std::optional<int64_t> cursor,
                      const Open& open, const CursorOf& cursor_of,
                      bool stop_at_terminal, const EventFn& fn,
                      const std::function<void(const Response&)>& on_message,
                      const Client::WatchOptions& options) {
  Backoff backoff;
  bool answered = false;  // the server has sent something on some attempt
  // When the first failed attempt of the current outage ended.
  std::optional<absl::Time> failing_since;
  // The server said it is stopping, and no event came since: a call it
  // cancels while it stops (CANCELLED) is resumed too.
  bool server_stopping = false;
  for (;;) {
    std::unique_ptr<grpc::ClientContext> context = client.NewContext();
    std::unique_ptr<grpc::ClientReader<Response>> reader =
        open(context.get(), cursor);
    Response message;
    bool stopped = false;
    bool draining = false;
    while (reader->Read(&message)) {
      answered = true;
      failing_since.reset();
      if (on_message && (message.has_event() || message.has_draining() ||
                         message.has_reset())) {
        on_message(message);
      }
      if (message.has_draining()) {
        draining = true;
        server_stopping = true;
        context->TryCancel();
        break;
      }
      if (!message.has_event()) continue;  // heartbeat, reset
      backoff.Reset();
      server_stopping = false;
      cursor = cursor_of(message.event());
      if (!fn(message.event()) ||
          (stop_at_terminal && EndsJob(message.event()))) {
        stopped = true;
        break;
      }
    }
    if (stopped) {
      context->TryCancel();
      reader->Finish();
      return absl::OkStatus();
    }
    const absl::Status status = FromGrpc(reader->Finish());
    if (draining ||
        (server_stopping && status.code() == absl::StatusCode::kCancelled)) {
      backoff.Sleep(client.channel().get(), std::nullopt);
      continue;
    }
    if (status.ok()) return status;  // the server ended the stream
    if (!Resumable(status.code())) return status;
    if (options.fail_if_unreachable && !answered) return status;
    const absl::Time now = absl::Now();
    if (!failing_since.has_value()) failing_since = now;
    if (now - *failing_since >= options.give_up_after) {
      return absl::UnavailableError(absl::StrCat(
          "could not resume the watch for ",
          absl::FormatDuration(options.give_up_after), ": ", status.message()));
    }
    backoff.Sleep(client.channel().get(), RetryDelay(status));
  }
}

// The SDK's one paging loop (ListJobs, ListWebhookDeliveries): calls
// `page` with `request` and then each next page token, and `fn` with every
// item of `items(page)` until it returns false or `limit` items were passed
// (0: no limit; pages then ask for at most what is left, at most 1,000).
// `*next` is the token that continues after the last item passed (empty:
// no more), valid when the loop stops at a page's end or at `limit`.
template <typename Request, typename Page, typename Items, typename Fn>
absl::Status ForEachPage(Request request, int32_t limit, const Page& page,
                         const Items& items, const Fn& fn, std::string* next) {
  const int32_t page_size = request.page_size();
  int64_t passed = 0;
  for (;;) {
    if (limit > 0) {
      const int64_t left = limit - passed;
      if (left <= 0) return absl::OkStatus();
      request.set_page_size(static_cast<int32_t>(
          std::min<int64_t>(page_size > 0 ? page_size : 1000, left)));
    }
    auto one = page(request);
    if (!one.ok()) return one.status();
    *next = one->next_page_token();
    for (auto& item : *items(*one)) {
      ++passed;
      if (!fn(std::move(item))) return absl::OkStatus();
    }
    if (one->next_page_token().empty()) return absl::OkStatus();
    request.set_page_token(one->next_page_token());
  }
}

}  // namespace

absl::Status FromGrpc(const grpc::Status& status) {
  absl::Status out(static_cast<absl::StatusCode>(status.error_code()),
                   status.error_message());
  if (!out.ok() && !status.error_details().empty()) {
    out.SetPayload(kStatusPayload, absl::Cord(status.error_details()));
  }
  return out;
}

std::vector<FieldViolation> Violations(const absl::Status& status) {
  std::vector<FieldViolation> out;
  if (std::optional<google::rpc::Status> rpc = RpcStatus(status)) {
    for (const auto& any : rpc->details()) {
      google::rpc::BadRequest bad;
      if (!any.UnpackTo(&bad)) continue;
      for (const auto& v : bad.field_violations())
        out.push_back({v.field(), v.description()});
    }
  }
  return out;
}

std::optional<absl::Duration> RetryDelay(const absl::Status& status) {
  if (std::optional<google::rpc::Status> rpc = RpcStatus(status)) {
    for (const auto& any : rpc->details()) {
      google::rpc::RetryInfo info;
      if (any.UnpackTo(&info)) {
        return absl::Seconds(info.retry_delay().seconds()) +
               absl::Nanoseconds(info.retry_delay().nanos());
      }
    }
  }
  return std::nullopt;
}

bool IsTerminal(v1::Job::State state) {
  return state == v1::Job::STATE_SUCCEEDED || state == v1::Job::STATE_FAILED ||
         state == v1::Job::STATE_CANCELLED;
}

Client::Client(std::string addr) : Client(std::move(addr), Options()) {}

Client::Client(std::string addr, Options options)
    : addr_(addr.empty() ? EnvOr("JOBWIRE_ADDR", DefaultAddress())
                         : std::move(addr)),
      token_(options.token.empty() ? EnvOr("JOBWIRE_TOKEN", "")
                                   : std::move(options.token)),
      timeout_(options.timeout) {
  grpc::ChannelArguments args;
  // gRPC's reconnect backoff grows to minutes; a job server is worth
  // retrying sooner.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 5000);
  std::shared_ptr<grpc::ChannelCredentials> credentials =
      grpc::InsecureChannelCredentials();
  if (!options.tls_ca_pem.empty()) {
    grpc::SslCredentialsOptions tls;
    tls.pem_root_certs = options.tls_ca_pem;
    tls.pem_cert_chain = options.tls_cert_pem;
    tls.pem_private_key = options.tls_key_pem;
    credentials = grpc::SslCredentials(tls);
  }
  channel_ = grpc::CreateCustomChannel(addr_, credentials, args);
  jobs_ = v1::JobService::NewStub(channel_);
  workers_ = v1::WorkerService::NewStub(channel_);
  admin_ = v1::AdminService::NewStub(channel_);
  health_ = grpc::health::v1::Health::NewStub(channel_);
  wait_for_ready_ = options.wait_for_ready;
}

Client::Client(std::shared_ptr<grpc::Channel> channel, Options options)
    : token_(std::move(options.token)),
      timeout_(options.timeout),
      wait_for_ready_(options.wait_for_ready),
      channel_(std::move(channel)) {
  jobs_ = v1::JobService::NewStub(channel_);
  workers_ = v1::WorkerService::NewStub(channel_);
  admin_ = v1::AdminService::NewStub(channel_);
  health_ = grpc::health::v1::Health::NewStub(channel_);
}

std::unique_ptr<grpc::ClientContext> Client::NewContext(
    absl::Time deadline) const {
  auto context = std::make_unique<grpc::ClientContext>();
  // A restarting server costs a caller a short wait, not an UNAVAILABLE.
  context->set_wait_for_ready(wait_for_ready_);
  if (deadline != absl::InfiniteFuture())
    context->set_deadline(absl::ToChronoTime(deadline));
  if (!token_.empty())
    context->AddMetadata("authorization", absl::StrCat("Bearer ", token_));
  return context;
}

template <typename Response, typename Call>
absl::StatusOr<Response> Client::Unary(const Call& call) {
  std::unique_ptr<grpc::ClientContext> context =
      NewContext(absl::Now() + timeout_);
  Response response;
  absl::Status status = FromGrpc(call(context.get(), &response));
  if (status.ok()) return response;
  // Unreachable: UNAVAILABLE, or (waiting for ready) the deadline passed
  // without a connection.
  // (A client made over a channel knows no address to name.)
  if (!addr_.empty() &&
      (status.code() == absl::StatusCode::kUnavailable ||
       (status.code() == absl::StatusCode::kDeadlineExceeded &&
        channel_->GetState(false) != GRPC_CHANNEL_READY))) {
    absl::Status hinted(
        status.code(),
        absl::StrCat(status.message(), " (is jobwired serving ", addr_,
                     "? pass the address to Client or set JOBWIRE_ADDR)"));
    status.ForEachPayload([&](absl::string_view url, const absl::Cord& p) {
      hinted.SetPayload(url, p);
    });
    return hinted;
  }
  return status;
}

absl::StatusOr<v1::SubmitJobResponse> Client::SubmitJob(
    const v1::Job& job, const std::string& request_id) {
  v1::SubmitJobRequest request;
  *request.mutable_job() = job;
  request.set_request_id(request_id);
  return Unary<v1::SubmitJobResponse>([&](grpc::ClientContext* c, auto* r) {
    return jobs_->SubmitJob(c, request, r);
  });
}

absl::StatusOr<v1::Job> Client::GetJob(const std::string& id) {
  v1::GetJobRequest request;
  request.set_id(id);
  return Unary<v1::Job>([&](grpc::ClientContext* c, auto* r) {
    return jobs_->GetJob(c, request, r);
  });
}

absl::Status Client::ListJobs(const std::string& filter,
                              const std::function<bool(const v1::Job&)>& fn,
                              int32_t page_size, const std::string& order_by) {
  v1::ListJobsRequest request;
  request.set_filter(filter);
  request.set_page_size(page_size);
  request.set_order_by(order_by);
  std::string next;
  return ForEachPage(
      request, /*limit=*/0,
      [&](const v1::ListJobsRequest& r) {
        return Unary<v1::ListJobsResponse>(
            [&](grpc::ClientContext* c, auto* out) {
              return jobs_->ListJobs(c, r, out);
            });
      },
      [](v1::ListJobsResponse& page) { return page.mutable_jobs(); },
      [&](v1::Job&& job) { return fn(job); }, &next);
}

absl::StatusOr<v1::ListJobsResponse> Client::ListJobs(
    v1::ListJobsRequest request, int32_t limit) {
  v1::ListJobsResponse all;
  std::string next;
  absl::Status status = ForEachPage(
      std::move(request), limit,
      [&](const v1::ListJobsRequest& r) {
        return Unary<v1::ListJobsResponse>(
            [&](grpc::ClientContext* c, auto* out) {
              return jobs_->ListJobs(c, r, out);
            });
      },
      [](v1::ListJobsResponse& page) { return page.mutable_jobs(); },
      [&](v1::Job&& job) {
        *all.add_jobs() = std::move(job);
        return true;
      },
      &next);
  if (!status.ok()) return status;
  all.set_next_page_token(next);
  return all;
}

absl::StatusOr<v1::ListWebhookDeliveriesResponse> Client::ListWebhookDeliveries(
    v1::ListWebhookDeliveriesRequest request, int32_t limit) {
  v1::ListWebhookDeliveriesResponse all;
  std::string next;
  absl::Status status = ForEachPage(
      std::move(request), limit,
      [&](const v1::ListWebhookDeliveriesRequest& r) {
        return Unary<v1::ListWebhookDeliveriesResponse>(
            [&](grpc::ClientContext* c, auto* out) {
              return admin_->ListWebhookDeliveries(c, r, out);
            });
      },
      [](v1::ListWebhookDeliveriesResponse& page) {
        return page.mutable_deliveries();
      },
      [&](v1::WebhookDeliveryRecord&& d) {
        *all.add_deliveries() = std::move(d);
        return true;
      },
      &next);
  if (!status.ok()) return status;
  all.set_next_page_token(next);
  return all;
}

absl::StatusOr<v1::Job> Client::CancelJob(const std::string& id,
                                          const std::string& reason) {
  v1::CancelJobRequest request;
  request.set_id(id);
  request.set_reason(reason);
  return Unary<v1::Job>([&](grpc::ClientContext* c, auto* r) {
    return jobs_->CancelJob(c, request, r);
  });
}

absl::StatusOr<v1::Job> Client::PauseJob(const std::string& id) {
  v1::PauseJobRequest request;
  request.set_id(id);
  return Unary<v1::Job>([&](grpc::ClientContext* c, auto* r) {
    return jobs_->PauseJob(c, request, r);
  });
}

absl::StatusOr<v1::Job> Client::ResumeJob(const std::string& id) {
  v1::ResumeJobRequest request;
  request.set_id(id);
  return Unary<v1::Job>([&](grpc::ClientContext* c, auto* r) {
    return jobs_->ResumeJob(c, request, r);
  });
}

absl::StatusOr<v1::Job> Client::RetryJob(const std::string& id,
                                         int32_t additional_attempts) {
  v1::RetryJobRequest request;
  request.set_id(id);
  request.set_additional_attempts(additional_attempts);
  return Unary<v1::Job>([&](grpc::ClientContext* c, auto* r) {
    return jobs_->RetryJob(c, request, r);
  });
}

absl::StatusOr<v1::Job> Client::UpdateJob(const v1::UpdateJobRequest& request) {
  return Unary<v1::Job>([&](grpc::ClientContext* c, auto* r) {
    return jobs_->UpdateJob(c, request, r);
  });
}

absl::StatusOr<v1::ExplainJobResponse> Client::ExplainJob(
    const std::string& id) {
  v1::ExplainJobRequest request;
  request.set_id(id);
  return Unary<v1::ExplainJobResponse>([&](grpc::ClientContext* c, auto* r) {
    return jobs_->ExplainJob(c, request, r);
  });
}

absl::Status Client::WatchJob(const std::string& id,
                              std::optional<int64_t> after_seq,
                              const EventFn& fn) {
  return WatchJob(id, after_seq, fn, WatchOptions());
}

absl::Status Client::WatchJob(const std::string& id,
                              std::optional<int64_t> after_seq,
                              const EventFn& fn, const WatchOptions& options) {
  return Resuming<v1::WatchJobResponse>(
      *this, after_seq,
      [&](grpc::ClientContext* c, std::optional<int64_t> cursor) {
        v1::WatchJobRequest request;
        request.set_id(id);
        if (cursor.has_value()) request.set_after_seq(*cursor);
        return jobs_->WatchJob(c, request);
      },
      [](const v1::JobEvent& e) { return e.seq(); },
      /*stop_at_terminal=*/true, fn, options.on_message, options);
}

absl::Status Client::WatchJobs(const std::string& filter,
                               std::optional<int64_t> after_event_id,
                               const EventFn& fn) {
  return WatchJobs(filter, after_event_id, fn, WatchOptions());
}

absl::Status Client::WatchJobs(const std::string& filter,
                               std::optional<int64_t> after_event_id,
                               const EventFn& fn, const WatchOptions& options) {
  std::function<void(const v1::WatchJobsResponse&)> on_message;
  if (options.on_message) {
    // WatchOptions::on_message takes WatchJob's message: the same fields.
    on_message = [&](const v1::WatchJobsResponse& m) {
      v1::WatchJobResponse same;
      if (m.has_event()) *same.mutable_event() = m.event();
      if (m.has_draining()) *same.mutable_draining() = m.draining();
      if (m.has_reset()) *same.mutable_reset() = m.reset();
      options.on_message(same);
    };
  }
  return Resuming<v1::WatchJobsResponse>(
      *this, after_event_id,
      [&](grpc::ClientContext* c, std::optional<int64_t> cursor) {
        v1::WatchJobsRequest request;
        request.set_filter(filter);
        if (cursor.has_value()) request.set_after_event_id(*cursor);
        return jobs_->WatchJobs(c, request);
      },
      [](const v1::JobEvent& e) { return e.event_id(); },
      /*stop_at_terminal=*/false, fn, on_message, options);
}

absl::StatusOr<v1::Job> Client::WaitJob(const std::string& id) {
  absl::Status watched =
      WatchJob(id, std::nullopt, [](const v1::JobEvent&) { return true; });
  if (!watched.ok()) return watched;
  return GetJob(id);
}

namespace {

// What `job` adds to a SubmitJobsRequest's size: its tag, length and bytes.
size_t BatchEntryBytes(const v1::SubmitJobRequest& job) {
  const size_t bytes = job.ByteSizeLong();
  return 1 + google::protobuf::io::CodedOutputStream::VarintSize64(bytes) +
         bytes;
}

}  // namespace

absl::Status Client::SubmitJobs(
    const std::function<std::optional<v1::SubmitJobRequest>()>& next,
    const std::function<void(const std::string& id)>& on_id,
    SubmitJobsOptions options) {
  if (options.batch_size < 1 || options.batch_size > 1000 ||
      options.max_in_flight < 1) {
    return absl::InvalidArgumentError(
        "SubmitJobs: batch_size must be 1 to 1000, max_in_flight at least 1");
  }
  std::unique_ptr<grpc::ClientContext> context = NewContext();
  std::unique_ptr<
      grpc::ClientReaderWriter<v1::SubmitJobsRequest, v1::SubmitJobsResponse>>
      stream = jobs_->SubmitJobs(context.get());
  struct Window {
    absl::Mutex mu;
    int in_flight = 0;  // batches sent and not yet answered
    int max = 0;
    bool done = false;  // the reader stopped
    bool Room() const { return done || in_flight < max; }
  } window;
  window.max = options.max_in_flight;
  std::thread writer([&] {
    v1::SubmitJobsRequest batch;
    // Waits for room in the window; false once the reader has stopped.
    auto send = [&]() -> bool {
      {
        absl::MutexLock lock(&window.mu);
        window.mu.Await(absl::Condition(&window, &Window::Room));
        if (window.done) return false;
        ++window.in_flight;
      }
      const bool ok = stream->Write(batch);
      batch.Clear();
      return ok;
    };
    size_t batch_bytes = 0;
    while (std::optional<v1::SubmitJobRequest> request = next()) {
      const size_t bytes = BatchEntryBytes(*request);
      if (batch.jobs_size() > 0 && batch_bytes + bytes > options.batch_bytes) {
        if (!send()) return;
        batch_bytes = 0;
      }
      *batch.add_jobs() = std::move(*request);
      batch_bytes += bytes;
      if (batch.jobs_size() == options.batch_size) {
        if (!send()) return;
        batch_bytes = 0;
      }
    }
    if (batch.jobs_size() > 0 && !send()) return;
    stream->WritesDone();
  });
  v1::SubmitJobsResponse response;
  while (stream->Read(&response)) {
    {
      absl::MutexLock lock(&window.mu);
      --window.in_flight;
    }
    for (const std::string& id : response.ids()) on_id(id);
  }
  {
    // The stream is over: a writer waiting for room gives up, and one in
    // Write() gets false.
    absl::MutexLock lock(&window.mu);
    window.done = true;
  }
  writer.join();
  return FromGrpc(stream->Finish());
}

absl::StatusOr<v1::BulkUpdateJobsResponse> Client::BulkUpdateJobs(
    const v1::BulkUpdateJobsRequest& request) {
  std::unique_ptr<grpc::ClientContext> context = NewContext();
  auto stream = jobs_->BulkUpdateJobs(context.get());
  stream->Write(request);
  stream->WritesDone();
  v1::BulkUpdateJobsResponse response;
  const bool got = stream->Read(&response);
  v1::BulkUpdateJobsResponse extra;  // none expected: read to the end
  while (got && stream->Read(&extra)) {
  }
  const absl::Status status = FromGrpc(stream->Finish());
  if (got) return response;
  if (!status.ok()) return status;
  return absl::InternalError("BulkUpdateJobs ended without a response");
}

absl::Status Client::SubmitBatches(
    std::vector<v1::SubmitJobRequest> requests, int batch_size, int streams,
    const std::function<void(BatchOutcome)>& on_batch, int per_stream,
    size_t batch_bytes) {
  if (batch_size < 1 || batch_size > 1000 || streams < 1 || per_stream < 1) {
    return absl::InvalidArgumentError(
        "SubmitBatches: batch_size must be 1 to 1000, streams and per_stream "
        "at least 1");
  }
  // Batch b holds requests [starts[b], starts[b + 1]): at most batch_size
  // jobs and batch_bytes bytes (a larger job alone).
  std::vector<size_t> starts;
  size_t bytes = 0;
  for (size_t i = 0; i < requests.size(); ++i) {
    const size_t entry = BatchEntryBytes(requests[i]);
    if (starts.empty() ||
        i - starts.back() == static_cast<size_t>(batch_size) ||
        bytes + entry > batch_bytes) {
      starts.push_back(i);
      bytes = 0;
    }
    bytes += entry;
  }
  const size_t batches = starts.size();
  starts.push_back(requests.size());
  struct Answer {
    bool done = false;
    absl::Status status;
    v1::SubmitJobsResponse response;
  };
  std::vector<Answer> answers(batches);
  absl::Mutex mu;
  size_t next = 0;          // the next batch to send
  bool failed = false;      // a batch failed: send no more
  absl::Status end_status;  // of a stream that failed after its batches
  // Records the answer to batch `b` (under `mu`).
  auto answer = [&](size_t b, absl::Status status,
                    v1::SubmitJobsResponse response) {
    absl::MutexLock lock(&mu);
    answers[b].done = true;
    if (!status.ok()) failed = true;
    answers[b].status = std::move(status);
    answers[b].response = std::move(response);
  };
  // One stream: this thread writes batches, up to `per_stream` ahead of
  // their answers, and a second one reads the answers, which come in the
  // order of the writes.
  auto send = [&] {
    std::unique_ptr<grpc::ClientContext> context = NewContext();
    auto stream = jobs_->SubmitJobs(context.get());
    struct InFlight {
      absl::Mutex mu;
      std::deque<size_t> sent;  // written and not yet answered, in order
      bool writing = true;      // the writer may still write
      bool reading = true;      // the reader has not stopped
      size_t max = 0;
      bool Room() const { return !reading || sent.size() < max; }
      bool Work() const { return !sent.empty() || !writing; }
    } flight;
    flight.max = static_cast<size_t>(per_stream);
    std::thread reader([&] {
      for (;;) {
        {
          absl::MutexLock lock(&flight.mu);
          flight.mu.Await(absl::Condition(&flight, &InFlight::Work));
          if (flight.sent.empty()) break;  // the writer is done, all read
        }
        v1::SubmitJobsResponse response;
        if (!stream->Read(&response)) break;  // the stream ended early
        size_t b = 0;
        {
          absl::MutexLock lock(&flight.mu);
          b = flight.sent.front();
          flight.sent.pop_front();
        }
        answer(b, absl::OkStatus(), std::move(response));
      }
      absl::MutexLock lock(&flight.mu);
      flight.reading = false;
    });
    for (;;) {
      {
        absl::MutexLock lock(&flight.mu);
        flight.mu.Await(absl::Condition(&flight, &InFlight::Room));
        if (!flight.reading) break;
      }
      size_t b = 0;
      {
        absl::MutexLock lock(&mu);
        if (failed || next == batches) break;
        b = next++;
      }
      v1::SubmitJobsRequest batch;
      for (size_t i = starts[b]; i < starts[b + 1]; ++i) {
        *batch.add_jobs() = std::move(requests[i]);  // sent once
      }
      {
        absl::MutexLock lock(&flight.mu);
        flight.sent.push_back(b);
      }
      if (!stream->Write(batch)) break;  // the reader sees the end
    }
    stream->WritesDone();
    {
      absl::MutexLock lock(&flight.mu);
      flight.writing = false;
    }
    reader.join();
    absl::Status status = FromGrpc(stream->Finish());
    // Batches written and never answered: the first is the one the stream
    // failed on; the server read none after it.
    if (!flight.sent.empty()) {
      if (status.ok()) status = absl::UnknownError("the stream ended early");
      for (size_t b : flight.sent) answer(b, status, {});
      return;
    }
    if (!status.ok()) {
      absl::MutexLock lock(&mu);
      failed = true;
      if (end_status.ok()) end_status = status;
    }
  };
  std::vector<std::thread> senders;
  for (size_t i = 0; i < std::min<size_t>(streams, batches); ++i)
    senders.emplace_back(send);
  for (size_t b = 0; b < batches; ++b) {
    BatchOutcome outcome;
    {
      absl::MutexLock lock(&mu);
      auto ready = [&] {
        mu.AssertReaderHeld();
        return answers[b].done || (failed && b >= next);
      };
      mu.Await(absl::Condition(&ready));
      if (!answers[b].done) break;  // never sent
      outcome.index = static_cast<int64_t>(b);
      outcome.first = starts[b];
      outcome.count = starts[b + 1] - starts[b];
      outcome.status = std::move(answers[b].status);
      outcome.response = std::move(answers[b].response);
    }
    on_batch(std::move(outcome));
  }
  for (std::thread& sender : senders) sender.join();
  return end_status;
}

absl::StatusOr<v1::DispatchState> Client::PauseDispatch(
    const std::string& reason) {
  v1::PauseDispatchRequest request;
  request.set_reason(reason);
  return Unary<v1::DispatchState>([&](grpc::ClientContext* c, auto* r) {
    return admin_->PauseDispatch(c, request, r);
  });
}

absl::StatusOr<v1::DispatchState> Client::ResumeDispatch() {
  return Unary<v1::DispatchState>([&](grpc::ClientContext* c, auto* r) {
    return admin_->ResumeDispatch(c, v1::ResumeDispatchRequest(), r);
  });
}

absl::StatusOr<v1::Queue> Client::PauseQueue(
    const v1::PauseQueueRequest& request) {
  return Unary<v1::Queue>([&](grpc::ClientContext* c, auto* r) {
    return admin_->PauseQueue(c, request, r);
  });
}

absl::StatusOr<v1::Queue> Client::ResumeQueue(const std::string& name) {
  v1::ResumeQueueRequest request;
  request.set_name(name);
  return Unary<v1::Queue>([&](grpc::ClientContext* c, auto* r) {
    return admin_->ResumeQueue(c, request, r);
  });
}

absl::StatusOr<v1::ListQueuesResponse> Client::ListQueues() {
  return Unary<v1::ListQueuesResponse>([&](grpc::ClientContext* c, auto* r) {
    return admin_->ListQueues(c, v1::ListQueuesRequest(), r);
  });
}

absl::StatusOr<v1::Queue> Client::UpdateQueue(
    const v1::UpdateQueueRequest& request) {
  return Unary<v1::Queue>([&](grpc::ClientContext* c, auto* r) {
    return admin_->UpdateQueue(c, request, r);
  });
}

absl::StatusOr<v1::ServerInfo> Client::GetServerInfo() {
  return Unary<v1::ServerInfo>([&](grpc::ClientContext* c, auto* r) {
    return admin_->GetServerInfo(c, v1::GetServerInfoRequest(), r);
  });
}

absl::StatusOr<v1::WebhookDeliveryRecord> Client::RedeliverWebhook(int64_t id) {
  v1::RedeliverWebhookRequest request;
  request.set_id(id);
  return Unary<v1::WebhookDeliveryRecord>([&](grpc::ClientContext* c, auto* r) {
    return admin_->RedeliverWebhook(c, request, r);
  });
}

absl::Status Client::Backup(
    const std::function<bool(const v1::BackupChunk&)>& fn) {
  std::unique_ptr<grpc::ClientContext> context = NewContext();
  auto reader = admin_->Backup(context.get(), v1::BackupRequest());
  v1::BackupChunk chunk;
  bool stopped = false;
  while (reader->Read(&chunk)) {
    if (!stopped && !fn(chunk)) {
      stopped = true;
      context->TryCancel();
    }
  }
  absl::Status status = FromGrpc(reader->Finish());
  if (stopped && status.ok()) return absl::CancelledError("backup stopped");
  return status;
}

absl::StatusOr<grpc::health::v1::HealthCheckResponse> Client::CheckHealth(
    const std::string& service) {
  grpc::health::v1::HealthCheckRequest request;
  request.set_service(service);
  return Unary<grpc::health::v1::HealthCheckResponse>(
      [&](grpc::ClientContext* c, auto* r) {
        return health_->Check(c, request, r);
      });
}

}  // namespace jobwire::sdk
