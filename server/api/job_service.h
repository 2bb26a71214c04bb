// JobServiceImpl: the jobwire.v1.JobService, on the gRPC callback API.
//
// Validate -> convert -> call the store -> convert back. Each unary method is
// written once, as a ServeFoo function (unary_methods.h) that the gRPC
// handler calls with a `done` finishing its context->DefaultReactor(), and
// the HTTP face calls through AddUnaryMethods' table: reads (GetJob,
// ListJobs) run on the Executor; writes (SubmitJob, CancelJob, ...) go
// through the store's asynchronous write and answer in its `done` callback,
// after the commit is durable.
// Streams are reactor classes: WatchJob/WatchJobs in watch_reactors.h,
// SubmitJobs here. No handler blocks a gRPC thread.
//
// State changes for jobs that are not running (cancel, pause, resume, retry)
// are the pure mutations of core/transitions.h. A RUNNING job is handed to
// Options::cancel_running / pause_running (the dispatcher, which tells the
// worker); without a hook such a request fails with FAILED_PRECONDITION.
// ExplainJob reads the job and asks Options::dispatcher for its gates
// (UNIMPLEMENTED without one). UpdateJob is the pure mutation of
// core/job_update.h; it reaches RUNNING jobs too (their next attempt sees
// the new values). BulkUpdateJobs applies the same mutations (and
// JobStore::Delete) to many jobs, in chunks (bulk_update.h).
//
// Time: heartbeats and stall checks run in Tick(), which reads the injected
// Clock. With Options::tick_period > 0 a single ticker thread calls it (not a
// thread per stream); tests set it to zero and call Tick() themselves.
//
// Shutdown: StartShutdown(deadline) makes new submissions fail with
// UNAVAILABLE + RetryInfo and sends `draining` on every open watch;
// FinishShutdown() finishes every open stream with UNAVAILABLE; Shutdown()
// does both, waiting in between (by the Clock) until the deadline or until
// every stream has ended. Call it before grpc::Server::Shutdown.
//
// Thread-safe. Does not own the store, bus, executor or clock; they must
// outlive the service, and the service must outlive the grpc::Server it is
// registered with (the server's Shutdown/Wait returns after every reactor's
// OnDone). Errors: see job_service.proto; every absl::Status goes out through
// ToGrpcStatus.
#ifndef JOBWIRE_SERVER_API_JOB_SERVICE_H_
#define JOBWIRE_SERVER_API_JOB_SERVICE_H_

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "jobwire/v1/job_service.grpc.pb.h"
#include "server/api/bulk_update.h"
#include "server/api/stream_registry.h"
#include "server/api/unary_methods.h"
#include "server/api/watch_reactors.h"
#include "server/common/clock.h"
#include "server/common/executor.h"
#include "server/events/event_bus.h"
#include "server/scheduling/dispatcher.h"
#include "server/storage/job_store.h"

namespace jobwire {

// Most jobs in one SubmitJobs batch.
inline constexpr int kMaxSubmitBatch = 1000;

// Judges the webhook of a job to be submitted (Options::check_webhook): OK,
// INVALID_ARGUMENT with a field violation on "job.webhook.url", or
// FAILED_PRECONDITION when the server sends none. Called on gRPC threads:
// must not block.
using WebhookCheck = std::function<absl::Status(const WebhookSpec&)>;

class JobServiceImpl final : public v1::JobService::CallbackService {
 public:
  // See bulk_update.h.
  using RunningJobHook = jobwire::RunningJobHook;

  struct Options {
    WatchOptions watch;
    // How often the ticker thread calls Tick(); zero: no thread.
    absl::Duration tick_period = absl::Seconds(1);
    // RetryInfo delay sent with UNAVAILABLE while shutting down.
    absl::Duration retry_delay = absl::Seconds(1);
    RunningJobHook cancel_running;
    RunningJobHook pause_running;
    // Answers ExplainJob; not owned, must outlive the service. Null:
    // ExplainJob fails with UNIMPLEMENTED.
    Dispatcher* dispatcher = nullptr;
    // Most jobs of one BulkUpdateJobs request in the store's queue at a
    // time (BulkDeps::chunk_jobs).
    int bulk_chunk_jobs = 500;
    // Judges the webhook of every submitted job that has one. Null: the
    // server sends no webhooks, and SubmitJob/SubmitJobs refuse any with
    // FAILED_PRECONDITION naming --webhook-secret-file (never accept what
    // is not done).
    WebhookCheck check_webhook;
    // Byte budget of one ListJobs response (serialized jobs): a page ends
    // early, with a next_page_token, before the job that would pass it, and
    // always holds at least one job. 3 MiB stays below the 4 MiB that gRPC
    // clients accept by default.
    size_t list_max_bytes = 3 << 20;
    // Largest request message, as protobuf, that the gRPC methods accept,
    // each message of a stream too (--max-receive-message-bytes); a larger
    // one gets RESOURCE_EXHAUSTED (CheckRequestBytes in unary_methods.h).
    size_t max_request_bytes = 4 << 20;
  };

  JobServiceImpl(JobStore* store, EventBus* bus, Executor* executor,
                 Clock* clock, Options options);
  ~JobServiceImpl() override;
  JobServiceImpl(const JobServiceImpl&) = delete;
  JobServiceImpl& operator=(const JobServiceImpl&) = delete;

  // v1::JobService.
  grpc::ServerUnaryReactor* SubmitJob(grpc::CallbackServerContext* context,
                                      const v1::SubmitJobRequest* request,
                                      v1::SubmitJobResponse* response) override;
  grpc::ServerBidiReactor<v1::SubmitJobsRequest, v1::SubmitJobsResponse>*
  SubmitJobs(grpc::CallbackServerContext* context) override;
  grpc::ServerUnaryReactor* GetJob(grpc::CallbackServerContext* context,
                                   const v1::GetJobRequest* request,
                                   v1::Job* response) override;
  grpc::ServerUnaryReactor* ListJobs(grpc::CallbackServerContext* context,
                                     const v1::ListJobsRequest* request,
                                     v1::ListJobsResponse* response) override;
  grpc::ServerWriteReactor<v1::WatchJobResponse>* WatchJob(
      grpc::CallbackServerContext* context,
      const v1::WatchJobRequest* request) override;
  grpc::ServerWriteReactor<v1::WatchJobsResponse>* WatchJobs(
      grpc::CallbackServerContext* context,
      const v1::WatchJobsRequest* request) override;
  grpc::ServerUnaryReactor* CancelJob(grpc::CallbackServerContext* context,
                                      const v1::CancelJobRequest* request,
                                      v1::Job* response) override;
  grpc::ServerUnaryReactor* PauseJob(grpc::CallbackServerContext* context,
                                     const v1::PauseJobRequest* request,
                                     v1::Job* response) override;
  grpc::ServerUnaryReactor* ResumeJob(grpc::CallbackServerContext* context,
                                      const v1::ResumeJobRequest* request,
                                      v1::Job* response) override;
  grpc::ServerUnaryReactor* RetryJob(grpc::CallbackServerContext* context,
                                     const v1::RetryJobRequest* request,
                                     v1::Job* response) override;
  // Writes the masked fields (core/job_update.h). The etag is the request's,
  // else job.etag. Fails: INVALID_ARGUMENT (bad id, mask or value), NOT_FOUND,
  // ABORTED (stale etag), FAILED_PRECONDITION (ended job; args or payload of
  // a started job; max_attempts below the attempts made).
  grpc::ServerUnaryReactor* UpdateJob(grpc::CallbackServerContext* context,
                                      const v1::UpdateJobRequest* request,
                                      v1::Job* response) override;
  // Patches or actions on many jobs, chunk by chunk (bulk_update.h).
  grpc::ServerBidiReactor<v1::BulkUpdateJobsRequest,
                          v1::BulkUpdateJobsResponse>*
  BulkUpdateJobs(grpc::CallbackServerContext* context) override;
  // The job and every gate that holds it (Dispatcher::Explain). Fails:
  // INVALID_ARGUMENT (bad id), NOT_FOUND.
  grpc::ServerUnaryReactor* ExplainJob(
      grpc::CallbackServerContext* context,
      const v1::ExplainJobRequest* request,
      v1::ExplainJobResponse* response) override;

  // Adds the unary methods above (all but the streams), as the functions
  // their gRPC handlers call, to `table` (unary_methods.h).
  void AddUnaryMethods(UnaryMethods* table);
  size_t max_request_bytes() const { return options_.max_request_bytes; }

  // A watch for a face other than gRPC (the HTTP face's Server-Sent Events),
  // to Begin() on the caller's sink (watch_sink.h): the same validation
  // (INVALID_ARGUMENT), core and registry as WatchJob / WatchJobs, so it
  // gets the same catch-up, bounded buffer, heartbeats, stall checks,
  // `draining` and shutdown, and counts in open_streams().
  absl::StatusOr<WatchReactorCore*> NewWatch(
      const v1::WatchJobRequest& request);
  absl::StatusOr<WatchReactorCore*> NewWatch(
      const v1::WatchJobsRequest& request);

  // Heartbeats on idle watches and RESOURCE_EXHAUSTED for stalled ones, at
  // the Clock's now. Non-blocking; any thread.
  void Tick();

  // See the class comment. StartShutdown does not block; FinishShutdown
  // waits up to `wait_for_streams` (real time) for the finished streams to
  // end (a stream whose peer stopped reading may not end until its
  // connection goes: App::Stop passes zero and handles that); Shutdown
  // blocks until `deadline` by the injected Clock, plus 2 s at most (pass
  // clock->Now() with a FakeClock). Idempotent.
  void StartShutdown(absl::Time deadline);
  void FinishShutdown(absl::Duration wait_for_streams);
  void Shutdown(absl::Time deadline);

  // Open streams (watches and SubmitJobs) and the messages they hold.
  size_t open_streams();
  size_t buffered_messages();

 private:
  // The unary methods (unary_methods.h); the gRPC handlers of the same
  // names and the HTTP face's in-process calls both call them. Each calls
  // `done` exactly once, in one of three shapes:
  //  1. inline, on the calling thread (gRPC's or the HTTP thread), for
  //     microseconds of in-memory work (refusing bad input, ExplainJob's
  //     validation);
  //  2. RunBlocking: the body runs on the Executor (reads: SQLite, files);
  //  3. in the store's completion: a write (SubmitJob, MutateJob, UpdateJob,
  //     AdminService::RedeliverWebhook) hands `done` to the store's
  //     asynchronous write, which calls it once the commit is durable. No
  //     Executor hop: `done` runs on the store's completion thread (or its
  //     writer when that is idle, job_store.h), so it must only convert and
  //     answer, never block.
  // gRPC's `done` finishes the reactor through ToGrpcStatus.
  void ServeSubmitJob(const v1::SubmitJobRequest& request,
                      v1::SubmitJobResponse* response, UnaryDone done);
  void ServeGetJob(const v1::GetJobRequest& request, v1::Job* response,
                   UnaryDone done);
  void ServeListJobs(const v1::ListJobsRequest& request,
                     v1::ListJobsResponse* response, UnaryDone done);
  void ServeCancelJob(const v1::CancelJobRequest& request, v1::Job* response,
                      UnaryDone done);
  void ServePauseJob(const v1::PauseJobRequest& request, v1::Job* response,
                     UnaryDone done);
  void ServeResumeJob(const v1::ResumeJobRequest& request, v1::Job* response,
                      UnaryDone done);
  void ServeRetryJob(const v1::RetryJobRequest& request, v1::Job* response,
                     UnaryDone done);
  void ServeUpdateJob(const v1::UpdateJobRequest& request, v1::Job* response,
                      UnaryDone done);
  void ServeExplainJob(const v1::ExplainJobRequest& request,
                       v1::ExplainJobResponse* response, UnaryDone done);

  // Runs `body` on the Executor and calls `done` with its status
  // (UNAVAILABLE + RetryInfo when the Executor has shut down).
  void RunBlocking(const UnaryDone& done, std::function<absl::Status()> body);
  // Applies a state-changing mutation to job `id` and answers with the job
  // (shape 3 above).
  void MutateJob(const std::string& id, JobMutation mutation,
                 const RunningJobHook& running_hook, const std::string& reason,
                 v1::Job* response, UnaryDone done);
  absl::Status UnavailableIfDraining() const;
  WatchDeps watch_deps();
  void TickerLoop();

  // Puts each SubmitJob's request and response on one arena (see .cc).
  class SubmitJobAllocator;

  JobStore* const store_;
  EventBus* const bus_;
  Executor* const executor_;
  Clock* const clock_;
  const Options options_;

  StreamRegistry streams_;
  std::atomic<bool> draining_{false};
  // Registered with the SubmitJob handler; outlives every call, as the
  // service outlives the server.
  const std::unique_ptr<SubmitJobAllocator> submit_allocator_;

  absl::Mutex ticker_mu_;
  bool stop_ticker_ ABSL_GUARDED_BY(ticker_mu_) = false;
  std::thread ticker_;
};

}  // namespace jobwire

#endif  // JOBWIRE_SERVER_API_JOB_SERVICE_H_
