#include "server/api/job_service.h"

#include <algorithm>
#include <cstddef>
#include <memory>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/arena.h"
#include "google/protobuf/io/coded_stream.h"
#include "server/api/convert.h"
#include "server/api/inline_arena.h"
#include "server/api/request_stream.h"
#include "server/common/errors.h"
#include "server/common/logging.h"
#include "server/common/status_macros.h"
#include "server/core/ids.h"
#include "server/core/job_update.h"
#include "server/core/transitions.h"
#include "server/core/validation.h"
#include "server/transport/grpc_status.h"

namespace jobwire {
namespace {

// Converts and validates one job of a request. `prefix` ("" or "jobs[3].")
// goes in front of every violation path ("job.kind", "request_id").
// `check_webhook` (JobServiceImpl::Options) judges a webhook; null refuses
// every one.
absl::StatusOr<Job> PrepareNewJob(const v1::SubmitJobRequest& request,
                                  const std::string& prefix,
                                  const WebhookCheck& check_webhook) {
  absl::StatusOr<Job> job = NewJobFromProto(request.job(), request.request_id(),
                                            absl::StrCat(prefix, "job"));
  absl::Status status = job.status();
  if (job.ok()) status = ValidateNewJob(*job);
  if (status.ok() && job->webhook.has_value()) {
    status = check_webhook
                 ? check_webhook(*job->webhook)
                 : FailedPreconditionError(
                       "this server sends no webhooks: start "
                       "jobwired with --webhook-secret-file",
                       PreconditionViolation{"WEBHOOKS", "jobwired",
                                             "no --webhook-secret-file"});
  }
  if (status.ok()) return job;
  std::vector<FieldViolation> violations = GetFieldViolations(status);
  if (violations.empty()) return status;
  for (FieldViolation& v : violations) {
    if (!absl::StartsWith(v.field, prefix))
      v.field = absl::StrCat(prefix, v.field);
  }
  return InvalidArgumentError(std::move(violations));
}

absl::Status CheckId(const std::string& id, absl::string_view field = "id") {
  return CheckJobId(id, field);
}

// SubmitJobs: read a batch, commit it, answer, and only then read the next,
// so at most one batch per stream is in memory.
class SubmitJobsReactor final
    : public RequestStream<v1::SubmitJobsRequest, v1::SubmitJobsResponse> {
 public:
  SubmitJobsReactor(JobStore* store, StreamRegistry* registry,
                    const std::atomic<bool>* draining,
                    absl::Duration retry_delay,
                    const WebhookCheck* check_webhook, size_t max_request_bytes)
      : RequestStream(registry, max_request_bytes),
        store_(store),
        draining_(draining),
        retry_delay_(retry_delay),
        check_webhook_(check_webhook) {}

 private:
  void Handle(const v1::SubmitJobsRequest& request) override {
    absl::StatusOr<std::vector<NewJob>> batch = PrepareBatch(request);
    if (!batch.ok()) return Answer(batch.status());
    store_->Submit(*std::move(batch),
                   [this](absl::StatusOr<std::vector<SubmitOutcome>> outcomes) {
                     if (!outcomes.ok()) return Answer(outcomes.status());
                     v1::SubmitJobsResponse response;
                     int created = 0;
                     for (const SubmitOutcome& o : *outcomes) {
                       response.add_ids(o.job.id);
                       if (o.created) ++created;
                     }
                     response.set_created(created);
                     Answer(std::move(response));
                   });
  }

  absl::StatusOr<std::vector<NewJob>> PrepareBatch(
      const v1::SubmitJobsRequest& request) {
    if (draining_->load()) {
      return UnavailableError("server is shutting down", retry_delay_);
    }
    if (request.jobs_size() > kMaxSubmitBatch) {
      return InvalidArgumentError(
          "jobs", absl::StrCat("at most ", kMaxSubmitBatch,
                               " jobs per batch, got ", request.jobs_size()));
    }
    std::vector<NewJob> jobs;
    jobs.reserve(request.jobs_size());
    std::vector<FieldViolation> violations;
    for (int i = 0; i < request.jobs_size(); ++i) {
      absl::StatusOr<Job> job = PrepareNewJob(
          request.jobs(i), absl::StrCat("jobs[", i, "]."), *check_webhook_);
      if (!job.ok()) {
        // Not a field's fault (no webhooks here): the whole batch fails.
        if (GetFieldViolations(job.status()).empty()) return job.status();
        for (FieldViolation& v : GetFieldViolations(job.status())) {
          violations.push_back(std::move(v));
        }
        continue;
      }
      jobs.push_back(NewJob{*std::move(job)});
    }
    if (!violations.empty()) return InvalidArgumentError(std::move(violations));
    return jobs;
  }

  JobStore* const store_;
  const std::atomic<bool>* const draining_;
  const absl::Duration retry_delay_;
  const WebhookCheck* const check_webhook_;
};

// Bytes of a SubmitJob's inline arena block: the parsed request and the
// response's Job (args as a Struct, labels, strings) of a typical job fit, so
// parsing, answering and freeing them cost one allocation instead of one per
// submessage, map entry and string; bigger jobs spill into blocks the arena
// allocates.
constexpr size_t kSubmitArenaBytes = 4096;

// A SubmitJob's request and response on one arena whose first block is
// inline. gRPC calls Release() once the call is done with both.
class SubmitJobMessages final
    : public grpc::MessageHolder<v1::SubmitJobRequest, v1::SubmitJobResponse> {
 public:
  SubmitJobMessages() {
    set_request(google::protobuf::Arena::CreateMessage<v1::SubmitJobRequest>(
        arena_.get()));
    set_response(google::protobuf::Arena::CreateMessage<v1::SubmitJobResponse>(
        arena_.get()));
  }
  SubmitJobMessages(const SubmitJobMessages&) = delete;
  SubmitJobMessages& operator=(const SubmitJobMessages&) = delete;

  void Release() override { delete this; }

 private:
  InlineArena<kSubmitArenaBytes> arena_;
};

}  // namespace

class JobServiceImpl::SubmitJobAllocator final
    : public grpc::MessageAllocator<v1::SubmitJobRequest,
                                    v1::SubmitJobResponse> {
 public:
  grpc::MessageHolder<v1::SubmitJobRequest, v1::SubmitJobResponse>*
  AllocateMessages() override {
    return new SubmitJobMessages();
  }
};

JobServiceImpl::JobServiceImpl(JobStore* store, EventBus* bus,
                               Executor* executor, Clock* clock,
                               Options options)
    : store_(store),
      bus_(bus),
      executor_(executor),
      clock_(clock),
      options_(std::move(options)),
      submit_allocator_(std::make_unique<SubmitJobAllocator>()) {
  SetMessageAllocatorFor_SubmitJob(submit_allocator_.get());
  if (options_.tick_period > absl::ZeroDuration()) {
    ticker_ = std::thread([this] { TickerLoop(); });
  }
}

JobServiceImpl::~JobServiceImpl() {
  {
    absl::MutexLock lock(&ticker_mu_);
    stop_ticker_ = true;
  }
  if (ticker_.joinable()) ticker_.join();
}

void JobServiceImpl::TickerLoop() {
  absl::MutexLock lock(&ticker_mu_);
  while (!ticker_mu_.AwaitWithTimeout(absl::Condition(&stop_ticker_),
                                      options_.tick_period)) {
    ticker_mu_.Unlock();
    Tick();
    ticker_mu_.Lock();
  }
}

WatchDeps JobServiceImpl::watch_deps() {
  return WatchDeps{store_, bus_, executor_, clock_, &streams_, options_.watch};
}

absl::Status JobServiceImpl::UnavailableIfDraining() const {
  if (draining_.load()) {
    return UnavailableError("server is shutting down", options_.retry_delay);
  }
  return absl::OkStatus();
}

void JobServiceImpl::RunBlocking(const UnaryDone& done,
                                 std::function<absl::Status()> body) {
  if (!executor_->Schedule([done, body = std::move(body)] { done(body()); })) {
    done(UnavailableError("server is shutting down", options_.retry_delay));
  }
}

void JobServiceImpl::AddUnaryMethods(UnaryMethods* table) {
  const char* const service = v1::JobService::service_full_name();
  table->Add(service, "SubmitJob", this, &JobServiceImpl::ServeSubmitJob);
  table->Add(service, "GetJob", this, &JobServiceImpl::ServeGetJob);
  table->Add(service, "ListJobs", this, &JobServiceImpl::ServeListJobs);
  table->Add(service, "CancelJob", this, &JobServiceImpl::ServeCancelJob);
  table->Add(service, "PauseJob", this, &JobServiceImpl::ServePauseJob);
  table->Add(service, "ResumeJob", this, &JobServiceImpl::ServeResumeJob);
  table->Add(service, "RetryJob", this, &JobServiceImpl::ServeRetryJob);
  table->Add(service, "UpdateJob", this, &JobServiceImpl::ServeUpdateJob);
  table->Add(service, "ExplainJob", this, &JobServiceImpl::ServeExplainJob);
}

grpc::ServerUnaryReactor* JobServiceImpl::SubmitJob(
    grpc::CallbackServerContext* context, const v1::SubmitJobRequest* request,
    v1::SubmitJobResponse* response) {
  return ServeOverGrpc(context, this, &JobServiceImpl::ServeSubmitJob, request,
                       response);
}

void JobServiceImpl::ServeSubmitJob(const v1::SubmitJobRequest& request,
                                    v1::SubmitJobResponse* response,
                                    UnaryDone done) {
  absl::Status status = UnavailableIfDraining();
  absl::StatusOr<Job> job =
      status.ok() ? PrepareNewJob(request, "", options_.check_webhook) : status;
  if (!job.ok()) return done(job.status());
  // Half of the answer is built here, on a gRPC thread: the store keeps what
  // was submitted as given, and `done` runs on its writer thread.
  JobSubmittedToProto(*job, response->mutable_job());
  std::vector<NewJob> jobs;
  jobs.push_back(NewJob{*std::move(job)});
  store_->Submit(
      std::move(jobs),
      [done = std::move(done),
       response](absl::StatusOr<std::vector<SubmitOutcome>> outcomes) {
        if (outcomes.ok() && outcomes->size() != 1) {
          outcomes = absl::InternalError("store answered a different count");
        }
        if (!outcomes.ok()) return done(outcomes.status());
        const SubmitOutcome& outcome = (*outcomes)[0];
        if (outcome.created) {
          JobStoredToProto(outcome.job, response->mutable_job());
        } else {
          // An earlier job with this request_id, maybe with other inputs.
          response->mutable_job()->Clear();
          JobToProto(outcome.job, response->mutable_job());
        }
        response->set_created(outcome.created);
        done(absl::OkStatus());
      });
}

grpc::ServerBidiReactor<v1::SubmitJobsRequest, v1::SubmitJobsResponse>*
JobServiceImpl::SubmitJobs(grpc::CallbackServerContext* context) {
  auto* stream = new SubmitJobsReactor(
      store_, &streams_, &draining_, options_.retry_delay,
      &options_.check_webhook, options_.max_request_bytes);
  stream->Start();
  return stream;
}

grpc::ServerUnaryReactor* JobServiceImpl::GetJob(
    grpc::CallbackServerContext* context, const v1::GetJobRequest* request,
    v1::Job* response) {
  return ServeOverGrpc(context, this, &JobServiceImpl::ServeGetJob, request,
                       response);
}

void JobServiceImpl::ServeGetJob(const v1::GetJobRequest& request,
                                 v1::Job* response, UnaryDone done) {
  absl::Status status = CheckId(request.id());
  if (!status.ok()) return done(status);
  RunBlocking(done, [this, &request, response]() -> absl::Status {
    JW_ASSIGN_OR_RETURN(Job job, store_->GetJobBlocking(request.id()));
    JobToProto(job, response);
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* JobServiceImpl::ListJobs(
    grpc::CallbackServerContext* context, const v1::ListJobsRequest* request,
    v1::ListJobsResponse* response) {
  return ServeOverGrpc(context, this, &JobServiceImpl::ServeListJobs, request,
                       response);
}

void JobServiceImpl::ServeListJobs(const v1::ListJobsRequest& request,
                                   v1::ListJobsResponse* response,
                                   UnaryDone done) {
  RunBlocking(done, [this, &request, response]() -> absl::Status {
    ListJobsQuery query;
    query.filter = request.filter();
    query.order_by = request.order_by();
    query.page_size = request.page_size();
    query.page_token = request.page_token();
    // Each job is converted once, as the store reads it, to learn its
    // serialized size; the page keeps the conversions of the jobs it holds.
    std::vector<v1::Job> converted;
    query.max_bytes = options_.list_max_bytes;
    query.job_bytes = [&converted](const Job& job) -> size_t {
      JobToProto(job, &converted.emplace_back());
      const size_t size = converted.back().ByteSizeLong();
      // The field's tag and length prefix in the response.
      return size + 1 +
             google::protobuf::io::CodedOutputStream::VarintSize64(
                 static_cast<uint64_t>(size));
    };
    JW_ASSIGN_OR_RETURN(ListJobsResult result, store_->ListJobsBlocking(query));
    response->mutable_jobs()->Reserve(static_cast<int>(result.jobs.size()));
    for (size_t i = 0; i < result.jobs.size(); ++i) {
      if (i < converted.size()) {
        *response->add_jobs() = std::move(converted[i]);
      } else {  // list_max_bytes 0: the store measured nothing
        JobToProto(result.jobs[i], response->add_jobs());
      }
    }
    response->set_next_page_token(result.next_page_token);
    return absl::OkStatus();
  });
}

grpc::ServerWriteReactor<v1::WatchJobResponse>* JobServiceImpl::WatchJob(
    grpc::CallbackServerContext* context, const v1::WatchJobRequest* request) {
  absl::Status size = CheckRequestBytes(*request, options_.max_request_bytes);
  if (!size.ok()) return new FinishedWriter<v1::WatchJobResponse>(size);
  return StartWatchJobReactor(watch_deps(), *request);
}

grpc::ServerWriteReactor<v1::WatchJobsResponse>* JobServiceImpl::WatchJobs(
    grpc::CallbackServerContext* context, const v1::WatchJobsRequest* request) {
  absl::Status size = CheckRequestBytes(*request, options_.max_request_bytes);
  if (!size.ok()) return new FinishedWriter<v1::WatchJobsResponse>(size);
  return StartWatchJobsReactor(watch_deps(), *request);
}

absl::StatusOr<WatchReactorCore*> JobServiceImpl::NewWatch(
    const v1::WatchJobRequest& request) {
  return NewWatchJob(watch_deps(), request);
}

absl::StatusOr<WatchReactorCore*> JobServiceImpl::NewWatch(
    const v1::WatchJobsRequest& request) {
  return NewWatchJobs(watch_deps(), request);
}

void JobServiceImpl::MutateJob(const std::string& id, JobMutation mutation,
                               const RunningJobHook& running_hook,
                               const std::string& reason, v1::Job* response,
                               UnaryDone done) {
  absl::Status status = CheckId(id);
  if (!status.ok()) return done(status);
  auto answer = [done = std::move(done), response](absl::StatusOr<Job> job) {
    if (!job.ok()) return done(job.status());
    JobToProto(*job, response);
    done(absl::OkStatus());
  };
  store_->Mutate(
      id, std::move(mutation),
      [id, reason, answer, running_hook](absl::StatusOr<Job> job) {
        // A RUNNING job goes to the dispatcher, which tells the worker.
        if (!job.ok() && running_hook && RefusedBecauseRunning(job.status())) {
          running_hook(id, reason, answer);
          return;
        }
        answer(std::move(job));
      });
}

grpc::ServerUnaryReactor* JobServiceImpl::CancelJob(
    grpc::CallbackServerContext* context, const v1::CancelJobRequest* request,
    v1::Job* response) {
  return ServeOverGrpc(context, this, &JobServiceImpl::ServeCancelJob, request,
                       response);
}

void JobServiceImpl::ServeCancelJob(const v1::CancelJobRequest& request,
                                    v1::Job* response, UnaryDone done) {
  if (request.reason().size() > kMaxReasonBytes) {
    return done(InvalidArgumentError(
        "reason", absl::StrCat("is longer than ", kMaxReasonBytes, " bytes")));
  }
  MutateJob(request.id(), CancelMutation(request.reason()),
            options_.cancel_running, request.reason(), response,
            std::move(done));
}

grpc::ServerUnaryReactor* JobServiceImpl::PauseJob(
    grpc::CallbackServerContext* context, const v1::PauseJobRequest* request,
    v1::Job* response) {
  return ServeOverGrpc(context, this, &JobServiceImpl::ServePauseJob, request,
                       response);
}

void JobServiceImpl::ServePauseJob(const v1::PauseJobRequest& request,
                                   v1::Job* response, UnaryDone done) {
  MutateJob(request.id(), PauseMutation(), options_.pause_running, "", response,
            std::move(done));
}

grpc::ServerUnaryReactor* JobServiceImpl::ResumeJob(
    grpc::CallbackServerContext* context, const v1::ResumeJobRequest* request,
    v1::Job* response) {
  return ServeOverGrpc(context, this, &JobServiceImpl::ServeResumeJob, request,
                       response);
}

void JobServiceImpl::ServeResumeJob(const v1::ResumeJobRequest& request,
                                    v1::Job* response, UnaryDone done) {
  MutateJob(request.id(), ResumeMutation(), nullptr, "", response,
            std::move(done));
}

grpc::ServerUnaryReactor* JobServiceImpl::RetryJob(
    grpc::CallbackServerContext* context, const v1::RetryJobRequest* request,
    v1::Job* response) {
  return ServeOverGrpc(context, this, &JobServiceImpl::ServeRetryJob, request,
                       response);
}

void JobServiceImpl::ServeRetryJob(const v1::RetryJobRequest& request,
                                   v1::Job* response, UnaryDone done) {
  if (request.additional_attempts() < 0 ||
      request.additional_attempts() > kMaxMaxAttempts) {
    return done(InvalidArgumentError(
        "additional_attempts", absl::StrCat("must be 0 to ", kMaxMaxAttempts)));
  }
  MutateJob(request.id(), RetryMutation(request.additional_attempts()), nullptr,
            "", response, std::move(done));
}

grpc::ServerUnaryReactor* JobServiceImpl::UpdateJob(
    grpc::CallbackServerContext* context, const v1::UpdateJobRequest* request,
    v1::Job* response) {
  return ServeOverGrpc(context, this, &JobServiceImpl::ServeUpdateJob, request,
                       response);
}

void JobServiceImpl::ServeUpdateJob(const v1::UpdateJobRequest& request,
                                    v1::Job* response, UnaryDone done) {
  const absl::Status id = CheckId(request.job().id(), "job.id");
  absl::StatusOr<JobPatch> patch =
      id.ok() ? PatchFromProto(request.job(), request.update_mask(), "job",
                               "update_mask")
              : id;
  if (!patch.ok()) return done(patch.status());
  std::string etag =
      request.etag().empty() ? request.job().etag() : request.etag();
  MutateJob(request.job().id(),
            UpdateMutation(*std::move(patch), std::move(etag)), nullptr, "",
            response, std::move(done));
}

grpc::ServerBidiReactor<v1::BulkUpdateJobsRequest, v1::BulkUpdateJobsResponse>*
JobServiceImpl::BulkUpdateJobs(grpc::CallbackServerContext* context) {
  BulkDeps deps;
  deps.store = store_;
  deps.executor = executor_;
  deps.clock = clock_;
  deps.cancel_running = options_.cancel_running;
  deps.pause_running = options_.pause_running;
  deps.chunk_jobs = options_.bulk_chunk_jobs;
  deps.max_request_bytes = options_.max_request_bytes;
  return NewBulkUpdateReactor(std::move(deps), &streams_, &draining_,
                              options_.retry_delay);
}

grpc::ServerUnaryReactor* JobServiceImpl::ExplainJob(
    grpc::CallbackServerContext* context, const v1::ExplainJobRequest* request,
    v1::ExplainJobResponse* response) {
  return ServeOverGrpc(context, this, &JobServiceImpl::ServeExplainJob, request,
                       response);
}

void JobServiceImpl::ServeExplainJob(const v1::ExplainJobRequest& request,
                                     v1::ExplainJobResponse* response,
                                     UnaryDone done) {
  absl::Status status = CheckId(request.id());
  if (status.ok() && options_.dispatcher == nullptr) {
    status = absl::UnimplementedError(
        "jobwire.v1.JobService.ExplainJob needs the dispatcher");
  }
  if (!status.ok()) return done(status);
  RunBlocking(done, [this, &request, response]() -> absl::Status {
    JW_ASSIGN_OR_RETURN(Job job, store_->GetJobBlocking(request.id()));
    JobToProto(job, response->mutable_job());
    for (const ExplainGate& gate : options_.dispatcher->Explain(job)) {
      v1::ExplainJobResponse::Gate* out = response->add_gates();
      out->set_type(gate.type);
      out->set_description(gate.description);
    }
    return absl::OkStatus();
  });
}

void JobServiceImpl::Tick() {
  const absl::Time now = clock_->Now();
  streams_.ForEach([now](ServiceStream* s) { s->Tick(now); });
}

void JobServiceImpl::StartShutdown(absl::Time deadline) {
  if (draining_.exchange(true)) return;
  JW_LOG(INFO) << "job service draining " << streams_.size() << " streams";
  streams_.ForEach([deadline](ServiceStream* s) { s->Drain(deadline); });
}

void JobServiceImpl::FinishShutdown(absl::Duration wait_for_streams) {
  draining_ = true;
  const absl::Status status =
      UnavailableError("server is shutting down", options_.retry_delay);
  streams_.ForEach([&status](ServiceStream* s) { s->Abort(status); });
  if (wait_for_streams > absl::ZeroDuration() &&
      !streams_.WaitUntilEmpty(wait_for_streams)) {
    JW_LOG(WARNING) << streams_.size() << " streams still open after shutdown";
  }
}

void JobServiceImpl::Shutdown(absl::Time deadline) {
  StartShutdown(deadline);
  while (clock_->Now() < deadline && streams_.size() > 0) {
    streams_.WaitUntilEmpty(
        std::min(deadline - clock_->Now(), absl::Milliseconds(50)));
  }
  FinishShutdown(absl::Seconds(2));
}

size_t JobServiceImpl::open_streams() { return streams_.size(); }

size_t JobServiceImpl::buffered_messages() {
  size_t total = 0;
  streams_.ForEach(
      [&total](ServiceStream* s) { total += s->BufferedMessages(); });
  return total;
}

}  // namespace jobwire
