// jobwire::sdk::Client: the C++ client of jobwired.
//
// Submit, read, control and watch jobs over one gRPC channel (a Unix
// socket or TCP). Method names are the RPCs' (SubmitJob, WatchJob, ...);
// they return the generated messages (jobwire/v1/*.pb.h). The error
// currency is absl::Status with the gRPC code and message; the server's
// rich details (BadRequest field violations, RetryInfo) ride along as the
// google.rpc.Status payload and are read with Violations() / RetryDelay().
// Watches resume on their own: when the stream breaks (a server restart or
// drain), WatchJob reconnects with backoff after the last cursor it passed
// to the callback, so the callback sees every event exactly once, in order.
// On the server's `draining` message a watch closes its stream at once (it
// never holds a stop for the server's grace period) and resumes the same
// way once the server is back.
//
// Usage:
//   jobwire::sdk::Client client;  // $JOBWIRE_ADDR, else DefaultAddress()
//   jobwire::v1::Job job;
//   job.set_kind("resize");
//   absl::StatusOr<jobwire::v1::SubmitJobResponse> r = client.SubmitJob(job);
//   absl::Status s = client.WatchJob(r->job().id(), std::nullopt,
//       [](const jobwire::v1::JobEvent& e) { ...; return true; });
//
// Thread-safe: share one Client. Every method blocks its caller (the
// synchronous gRPC API); unary calls wait for a restarting server up to
// Options::timeout, then fail with DEADLINE_EXCEEDED.
#ifndef JOBWIRE_CLIENTS_CPP_CLIENT_H_
#define JOBWIRE_CLIENTS_CPP_CLIENT_H_

#include <grpcpp/grpcpp.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "clients/cpp/default_address.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "jobwire/v1/admin_service.grpc.pb.h"
#include "jobwire/v1/job_service.grpc.pb.h"
#include "jobwire/v1/worker_service.grpc.pb.h"

namespace jobwire::sdk {

// One bad field of a request: `field` is its path ("job.kind").
struct FieldViolation {
  std::string field;
  std::string description;
};

// grpc::Status -> absl::Status: the same code and message, and the
// serialized google.rpc.Status (when the server sent one) as the payload
// "type.googleapis.com/google.rpc.Status".
absl::Status FromGrpc(const grpc::Status& status);
// The BadRequest field violations carried by `status` (none when absent).
std::vector<FieldViolation> Violations(const absl::Status& status);
// The RetryInfo delay carried by `status`, if any.
std::optional<absl::Duration> RetryDelay(const absl::Status& status);

// Whether a job state is SUCCEEDED, FAILED or CANCELLED.
bool IsTerminal(v1::Job::State state);

// Called with each event of a watch; returning false ends the watch (OK).
using EventFn = std::function<bool(const v1::JobEvent&)>;

class Client {
 public:
  struct Options {
    std::string token;  // bearer token; empty: $JOBWIRE_TOKEN
    absl::Duration timeout = absl::Seconds(10);  // per unary call
    // Calls wait for a server that is away (up to `timeout`); false: they
    // fail at once with UNAVAILABLE.
    bool wait_for_ready = true;
    // TLS (a TCP address of a jobwired with --tls-cert): the PEM text of
    // the CA to trust; empty: plaintext. With a server that asks for
    // client certificates (--tls-client-ca), also the client's PEM
    // certificate chain and key.
    std::string tls_ca_pem;
    std::string tls_cert_pem;
    std::string tls_key_pem;
  };

  // What a WatchJob does besides calling its EventFn.
  struct WatchOptions {
    // Called with every message but heartbeats: events (before the
    // EventFn), `draining` and `reset` (which the watch then acts on).
    std::function<void(const v1::WatchJobResponse&)> on_message;
    // Fail with the call's error when the server cannot be reached before
    // it has sent anything (a wrong address), rather than keep trying.
    bool fail_if_unreachable = false;
    // Give up with UNAVAILABLE once attempts to resume have failed for
    // this long.
    absl::Duration give_up_after = absl::InfiniteDuration();
  };

  // `addr`: "unix:PATH", "unix:///ABS" or "HOST:PORT"; empty means
  // $JOBWIRE_ADDR, else DefaultAddress() (default_address.h). Connects
  // lazily. A call that cannot reach the server fails with a message naming
  // this address and how to choose another.
  explicit Client(std::string addr = "");
  Client(std::string addr, Options options);
  // Over `channel` (for one made with other channel arguments).
  Client(std::shared_ptr<grpc::Channel> channel, Options options);

  const std::string& addr() const { return addr_; }
  const std::shared_ptr<grpc::Channel>& channel() const { return channel_; }

  // Durable when it returns OK. With `request_id` a retry returns the first
  // job (created() false). INVALID_ARGUMENT names each bad field.
  absl::StatusOr<v1::SubmitJobResponse> SubmitJob(
      const v1::Job& job, const std::string& request_id = "");
  absl::StatusOr<v1::Job> GetJob(const std::string& id);
  // Calls `fn` for every job matching `filter` (AIP-160 subset), following
  // the page tokens; stops early (OK) when `fn` returns false.
  absl::Status ListJobs(const std::string& filter,
                        const std::function<bool(const v1::Job&)>& fn,
                        int32_t page_size = 0,
                        const std::string& order_by = "");
  // The jobs `request` selects (its filter and order_by), from its
  // page_token on, following the page tokens until `limit` jobs are in (0:
  // every match; pages of at most 1,000, or request.page_size): one
  // response holding them all, whose next_page_token continues after the
  // last (empty: no more match). INVALID_ARGUMENT names the bad field
  // ("filter: ...").
  absl::StatusOr<v1::ListJobsResponse> ListJobs(v1::ListJobsRequest request,
                                                int32_t limit);
  absl::StatusOr<v1::Job> CancelJob(const std::string& id,
                                    const std::string& reason = "");
  absl::StatusOr<v1::Job> PauseJob(const std::string& id);
  absl::StatusOr<v1::Job> ResumeJob(const std::string& id);
  // Runs a FAILED or CANCELLED job again with `additional_attempts` more
  // attempts (0: the server's default, 1).
  absl::StatusOr<v1::Job> RetryJob(const std::string& id,
                                   int32_t additional_attempts = 0);
  // Changes the fields of request.job() that request.update_mask() names;
  // with request.etag(), only if the job still has it (else ABORTED).
  absl::StatusOr<v1::Job> UpdateJob(const v1::UpdateJobRequest& request);
  absl::StatusOr<v1::ExplainJobResponse> ExplainJob(const std::string& id);

  // The events of one job, live, until its terminal event (then OK).
  // Without `after_seq` the first event is a snapshot. Resumes after breaks
  // from the last seq passed to `fn`; a reset is followed by a fresh
  // snapshot event. Fails for a non-resumable error (NOT_FOUND, ...).
  absl::Status WatchJob(const std::string& id, std::optional<int64_t> after_seq,
                        const EventFn& fn);
  absl::Status WatchJob(const std::string& id, std::optional<int64_t> after_seq,
                        const EventFn& fn, const WatchOptions& options);
  // The events of every job matching `filter` until `fn` returns false.
  // Without `after_event_id` it starts from now (a break before the first
  // event resumes from now again); with it, it replays what came after.
  absl::Status WatchJobs(const std::string& filter,
                         std::optional<int64_t> after_event_id,
                         const EventFn& fn);
  absl::Status WatchJobs(const std::string& filter,
                         std::optional<int64_t> after_event_id,
                         const EventFn& fn, const WatchOptions& options);
  // Blocks until the job ends; returns it as it ended.
  absl::StatusOr<v1::Job> WaitJob(const std::string& id);

  // The most bytes (as protobuf) of one SubmitJobs batch: jobwired's
  // default --max-receive-message-bytes. A batch ends early rather than pass
  // it; a single larger job goes alone (and the server answers
  // RESOURCE_EXHAUSTED, reason REQUEST_TOO_LARGE, naming the limit). Lower
  // it for a server with a lower limit.
  static constexpr size_t kDefaultBatchBytes = 4 << 20;
  struct SubmitJobsOptions {
    int batch_size = 1000;  // jobs per batch, 1 to 1000
    int max_in_flight = 4;  // batches sent and not yet answered
    size_t batch_bytes = kDefaultBatchBytes;  // bytes per batch, at most
  };
  // Submits many jobs over one SubmitJobs stream. `next` is called (on a
  // thread of its own) for each request until it returns std::nullopt;
  // `on_id` gets each job's id, in order, once its batch is durable.
  // Back-pressure: at most `max_in_flight` batches are sent and not yet
  // answered; `next` waits for the server meanwhile. Fails with the first
  // refused batch's status (the batches before it are in); with request
  // ids, submitting again is safe.
  absl::Status SubmitJobs(
      const std::function<std::optional<v1::SubmitJobRequest>()>& next,
      const std::function<void(const std::string& id)>& on_id,
      SubmitJobsOptions options);
  // One BulkUpdateJobs change (a patch with its mask, or an action) to the
  // jobs `request` selects; the counts and the first failures. No deadline:
  // a large selection takes as long as it takes.
  absl::StatusOr<v1::BulkUpdateJobsResponse> BulkUpdateJobs(
      const v1::BulkUpdateJobsRequest& request);
  // Submits `requests` in batches of `batch_size` (1 to 1,000) jobs and
  // at most `batch_bytes` (as kDefaultBatchBytes says) on
  // `streams` SubmitJobs streams at once: a stream answers one batch before
  // it reads its next, so several streams commit batches in parallel; on
  // each, up to `per_stream` batches are sent ahead of their answers (the
  // next is on the wire while the server commits one). Calls
  // `on_batch` (on the caller's thread) with every batch's outcome in batch
  // order: its index, and its response or the status it failed with. After
  // a batch fails no new batch is sent; the ones already in flight are
  // still reported, OK or not (those sent after it on its stream with the
  // stream's status: the server read none of them), and the ones never sent
  // are not. INVALID_ARGUMENT for a bad batch_size, streams or per_stream.
  // Returns OK,
  // or the status of a stream that failed after answering its batches. No
  // deadline. With request ids, submitting again is safe.
  struct BatchOutcome {
    int64_t index = 0;
    // The batch is requests [first, first + count).
    size_t first = 0;
    size_t count = 0;
    absl::Status status;  // OK: `response` holds the batch's ids
    v1::SubmitJobsResponse response;
  };
  absl::Status SubmitBatches(std::vector<v1::SubmitJobRequest> requests,
                             int batch_size, int streams,
                             const std::function<void(BatchOutcome)>& on_batch,
                             int per_stream = 1,
                             size_t batch_bytes = kDefaultBatchBytes);

  // The AdminService, one method per RPC (see admin_service.proto).
  absl::StatusOr<v1::DispatchState> PauseDispatch(
      const std::string& reason = "");
  absl::StatusOr<v1::DispatchState> ResumeDispatch();
  absl::StatusOr<v1::Queue> PauseQueue(const v1::PauseQueueRequest& request);
  absl::StatusOr<v1::Queue> ResumeQueue(const std::string& name);
  absl::StatusOr<v1::ListQueuesResponse> ListQueues();
  absl::StatusOr<v1::Queue> UpdateQueue(const v1::UpdateQueueRequest& request);
  // Version, listeners, storage, counts, and last_event_id: a WatchJobs
  // cursor taken now (see WatchProgress).
  absl::StatusOr<v1::ServerInfo> GetServerInfo();
  // Deliveries `request` selects, newest first, paged as ListJobs above.
  absl::StatusOr<v1::ListWebhookDeliveriesResponse> ListWebhookDeliveries(
      v1::ListWebhookDeliveriesRequest request, int32_t limit);
  absl::StatusOr<v1::WebhookDeliveryRecord> RedeliverWebhook(int64_t id);
  // A consistent copy of the database: `fn` gets each chunk in order
  // (returning false cancels the call: CANCELLED). No deadline.
  absl::Status Backup(const std::function<bool(const v1::BackupChunk&)>& fn);
  // grpc.health.v1.Health/Check of `service` ("": the whole server).
  absl::StatusOr<grpc::health::v1::HealthCheckResponse> CheckHealth(
      const std::string& service = "");

  // The AdminService stub over this client's channel, for what the methods
  // above do not cover; FromGrpc() turns its statuses into absl::Status.
  // Use NewContext() for its calls.
  v1::AdminService::Stub* admin_stub() { return admin_.get(); }

  // A context for one call of this client: the token, wait-for-ready, and
  // `deadline` unless it is infinite. Also used by Worker.
  std::unique_ptr<grpc::ClientContext> NewContext(
      absl::Time deadline = absl::InfiniteFuture()) const;

  v1::WorkerService::Stub* worker_stub() { return workers_.get(); }

 private:
  template <typename Response, typename Call>
  absl::StatusOr<Response> Unary(const Call& call);

  std::string addr_;
  std::string token_;
  absl::Duration timeout_;
  bool wait_for_ready_ = true;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::JobService::Stub> jobs_;
  std::unique_ptr<v1::WorkerService::Stub> workers_;
  std::unique_ptr<v1::AdminService::Stub> admin_;
  std::unique_ptr<grpc::health::v1::Health::Stub> health_;
};

}  // namespace jobwire::sdk

#endif  // JOBWIRE_CLIENTS_CPP_CLIENT_H_
