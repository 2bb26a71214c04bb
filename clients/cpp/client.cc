#include "clients/cpp/client.h"

#include <cstdlib>
#include <random>
#include <utility>

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
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
  void Sleep(std::optional<absl::Duration> hint) {
    thread_local std::mt19937 rng{std::random_device{}()};
    std::uniform_real_distribution<double> jitter(0.8, 1.2);
    absl::SleepFor(hint.value_or(next_) * jitter(rng));
    next_ = std::min(next_ * 2, absl::Seconds(2));
  }

 private:
  absl::Duration next_ = absl::Milliseconds(50);
};

// Runs a watch, reopening it after the last cursor passed to `fn` whenever
// it breaks with a resumable code. `open(context, cursor)` starts the call.
template <typename Response, typename Open, typename CursorOf>
absl::Status Resuming(const Client& client, std::optional<int64_t> cursor,
                      const Open& open, const CursorOf& cursor_of,
                      bool stop_at_terminal, const EventFn& fn) {
  Backoff backoff;
  for (;;) {
    std::unique_ptr<grpc::ClientContext> context = client.NewContext();
    std::unique_ptr<grpc::ClientReader<Response>> reader =
        open(context.get(), cursor);
    Response message;
    bool stopped = false;
    while (reader->Read(&message)) {
      if (!message.has_event()) continue;  // heartbeat, draining, reset
      backoff.Reset();
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
    if (status.ok()) return status;  // the server ended the stream
    if (!Resumable(status.code())) return status;
    backoff.Sleep(RetryDelay(status));
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
    : addr_(addr.empty() ? EnvOr("JOBWIRE_ADDR", kDefaultAddr)
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
}

std::unique_ptr<grpc::ClientContext> Client::NewContext(
    absl::Time deadline) const {
  auto context = std::make_unique<grpc::ClientContext>();
  // A restarting server costs a caller a short wait, not an UNAVAILABLE.
  context->set_wait_for_ready(true);
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
  if (!status.ok()) return status;
  return response;
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
  for (;;) {
    absl::StatusOr<v1::ListJobsResponse> page =
        Unary<v1::ListJobsResponse>([&](grpc::ClientContext* c, auto* r) {
          return jobs_->ListJobs(c, request, r);
        });
    if (!page.ok()) return page.status();
    for (const v1::Job& job : page->jobs()) {
      if (!fn(job)) return absl::OkStatus();
    }
    if (page->next_page_token().empty()) return absl::OkStatus();
    request.set_page_token(page->next_page_token());
  }
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

absl::StatusOr<v1::Job> Client::RetryJob(const std::string& id) {
  v1::RetryJobRequest request;
  request.set_id(id);
  return Unary<v1::Job>([&](grpc::ClientContext* c, auto* r) {
    return jobs_->RetryJob(c, request, r);
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
  return Resuming<v1::WatchJobResponse>(
      *this, after_seq,
      [&](grpc::ClientContext* c, std::optional<int64_t> cursor) {
        v1::WatchJobRequest request;
        request.set_id(id);
        if (cursor.has_value()) request.set_after_seq(*cursor);
        return jobs_->WatchJob(c, request);
      },
      [](const v1::JobEvent& e) { return e.seq(); },
      /*stop_at_terminal=*/true, fn);
}

absl::Status Client::WatchJobs(const std::string& filter,
                               std::optional<int64_t> after_event_id,
                               const EventFn& fn) {
  return Resuming<v1::WatchJobsResponse>(
      *this, after_event_id,
      [&](grpc::ClientContext* c, std::optional<int64_t> cursor) {
        v1::WatchJobsRequest request;
        request.set_filter(filter);
        if (cursor.has_value()) request.set_after_event_id(*cursor);
        return jobs_->WatchJobs(c, request);
      },
      [](const v1::JobEvent& e) { return e.event_id(); },
      /*stop_at_terminal=*/false, fn);
}

absl::StatusOr<v1::Job> Client::WaitJob(const std::string& id) {
  absl::Status watched =
      WatchJob(id, std::nullopt, [](const v1::JobEvent&) { return true; });
  if (!watched.ok()) return watched;
  return GetJob(id);
}

}  // namespace jobwire::sdk
