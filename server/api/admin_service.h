// AdminServiceImpl: jobwire.v1.AdminService, for operators.
//
// GetServerInfo (version, start time, uptime, listeners, storage path and
// size, dispatch pause, draining, job counts by state, connected workers,
// open watch streams); the dispatch and queue controls (PauseDispatch,
// ResumeDispatch, PauseQueue, ResumeQueue, UpdateQueue, ListQueues), which
// the Dispatcher keeps durable in the store. Backup streams a consistent
// snapshot of the database (JobStore::BackupBlocking into a temporary file
// `DB.backup-XXXXXX` beside it, removed when the call ends, or at the next
// start after a crash) in chunks of 1 MiB, each with its offset and the
// snapshot's total size; UNIMPLEMENTED without a store.
// ListWebhookDeliveries and RedeliverWebhook read and reset rows of the
// webhook outbox (JobStore; sent by server/webhooks).
//
// Shutdown() (an App shutdown hook, before grpc::Server::Shutdown) refuses new
// Backups and ends those in progress with UNAVAILABLE + RetryInfo; the unary
// calls need nothing: grpc::Server::Shutdown waits for them.
//
// Thread-safe. Every body reads or writes the store, so it runs on the
// Executor, never on a gRPC thread. Failures: INVALID_ARGUMENT (BadRequest
// naming the field) for a bad queue name, resume_time, mask or value;
// NOT_FOUND from ResumeQueue for a queue never seen; UNIMPLEMENTED for the
// controls when no dispatcher is wired in; the store's errors otherwise.
#ifndef JOBWIRE_SERVER_API_ADMIN_SERVICE_H_
#define JOBWIRE_SERVER_API_ADMIN_SERVICE_H_

#include <atomic>
#include <cstddef>
#include <functional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "jobwire/v1/admin_service.grpc.pb.h"
#include "server/api/stream_registry.h"
#include "server/api/unary_methods.h"
#include "server/common/clock.h"
#include "server/common/executor.h"
#include "server/scheduling/dispatcher.h"
#include "server/storage/job_store.h"

namespace jobwire {

// Removes what backups interrupted by a crash left beside `db_path`
// (`DB.backup-XXXXXX`); returns how many. Call at start, holding the
// database lock (database_lock.h) and before serving, so no backup of this
// database is in progress.
int RemoveStaleBackupsBlocking(const std::string& db_path);

class AdminServiceImpl final
    : public jobwire::v1::AdminService::CallbackService {
 public:
  struct Options {
    std::string version;
    // Absolute path of the database file; for PostgreSQL, its address
    // ("postgresql://user@host:port/dbname", never the password).
    std::string storage_path;
    // The database's size in bytes for ServerInfo.storage_bytes. Null: the
    // size of the SQLite file at storage_path and its WAL.
    std::function<int64_t()> storage_bytes;
    // Not OK: Backup answers it at once (the PostgreSQL store, which is
    // backed up with pg_dump).
    absl::Status backup_refusal;
    // Whether the server is draining; called on the executor.
    std::function<bool()> draining;
    // Source of ServerInfo.job_counts (summed over queues); not owned, must
    // outlive the service. Null: no counts.
    JobStore* store = nullptr;
    // Connected worker sessions and open job streams; called on the
    // executor, must be cheap. Null: 0.
    std::function<int()> workers;
    std::function<int()> watchers;
    // The gates' owner; not owned, must outlive the service. Null: the
    // controls answer UNIMPLEMENTED and ServerInfo shows dispatch unpaused.
    Dispatcher* dispatcher = nullptr;
    // Whether the server sends webhooks (a --webhook-secret-file was
    // given); RedeliverWebhook fails with FAILED_PRECONDITION without.
    bool webhooks_enabled = false;
    // Called after a redelivery committed, so the sender looks at the
    // outbox now (HttpWebhookSender::Wake). Null: nothing.
    std::function<void()> webhooks_wake;
    // Largest request message, as protobuf, that the gRPC methods accept
    // (--max-receive-message-bytes); a larger one gets RESOURCE_EXHAUSTED
    // (CheckRequestBytes in unary_methods.h).
    size_t max_request_bytes = 4 << 20;
  };

  // `clock` and `executor` are not owned and must outlive the service.
  // Start time is clock->Now() at construction.
  AdminServiceImpl(Options options, Clock* clock, Executor* executor);
  // A Backup stream's last step (on the Executor) may still run after its
  // call ended: waits up to 5 s (real time) until every one has let go.
  ~AdminServiceImpl() override;

  // Refuses new Backups (UNAVAILABLE + RetryInfo) and finishes those in
  // progress with the same status; returns at once (each removes its file,
  // on the Executor, before its stream ends). Idempotent.
  void Shutdown();
  // Backup streams not yet ended (for tests).
  size_t open_backups();

  // The addresses actually served (ports resolved), set once the server is
  // bound.
  void SetListeners(std::vector<std::string> listeners);

  // The body of GetServerInfo. Blocking (stats files, counts jobs); fails
  // with the store's error.
  absl::Status GetServerInfoBlocking(jobwire::v1::ServerInfo* info) const;

  // The bodies of the controls (blocking, see the class comment).
  absl::Status PauseDispatchBlocking(
      const jobwire::v1::PauseDispatchRequest& request,
      jobwire::v1::DispatchState* response);
  absl::Status ResumeDispatchBlocking(jobwire::v1::DispatchState* response);
  absl::Status PauseQueueBlocking(const jobwire::v1::PauseQueueRequest& request,
                                  jobwire::v1::Queue* response);
  absl::Status ResumeQueueBlocking(
      const jobwire::v1::ResumeQueueRequest& request,
      jobwire::v1::Queue* response);
  absl::Status UpdateQueueBlocking(
      const jobwire::v1::UpdateQueueRequest& request,
      jobwire::v1::Queue* response);
  absl::Status ListQueuesBlocking(jobwire::v1::ListQueuesResponse* response);
  absl::Status ListWebhookDeliveriesBlocking(
      const jobwire::v1::ListWebhookDeliveriesRequest& request,
      jobwire::v1::ListWebhookDeliveriesResponse* response);

  grpc::ServerUnaryReactor* GetServerInfo(
      grpc::CallbackServerContext* context,
      const jobwire::v1::GetServerInfoRequest* request,
      jobwire::v1::ServerInfo* response) override;

  grpc::ServerUnaryReactor* PauseDispatch(
      grpc::CallbackServerContext* context,
      const jobwire::v1::PauseDispatchRequest* request,
      jobwire::v1::DispatchState* response) override;
  grpc::ServerUnaryReactor* ResumeDispatch(
      grpc::CallbackServerContext* context,
      const jobwire::v1::ResumeDispatchRequest* request,
      jobwire::v1::DispatchState* response) override;
  grpc::ServerUnaryReactor* PauseQueue(
      grpc::CallbackServerContext* context,
      const jobwire::v1::PauseQueueRequest* request,
      jobwire::v1::Queue* response) override;
  grpc::ServerUnaryReactor* ResumeQueue(
      grpc::CallbackServerContext* context,
      const jobwire::v1::ResumeQueueRequest* request,
      jobwire::v1::Queue* response) override;
  grpc::ServerUnaryReactor* ListQueues(
      grpc::CallbackServerContext* context,
      const jobwire::v1::ListQueuesRequest* request,
      jobwire::v1::ListQueuesResponse* response) override;
  grpc::ServerUnaryReactor* UpdateQueue(
      grpc::CallbackServerContext* context,
      const jobwire::v1::UpdateQueueRequest* request,
      jobwire::v1::Queue* response) override;
  grpc::ServerUnaryReactor* ListWebhookDeliveries(
      grpc::CallbackServerContext* context,
      const jobwire::v1::ListWebhookDeliveriesRequest* request,
      jobwire::v1::ListWebhookDeliveriesResponse* response) override;
  // A write: finishes in the store's callback once it is durable (no
  // executor hop).
  grpc::ServerUnaryReactor* RedeliverWebhook(
      grpc::CallbackServerContext* context,
      const jobwire::v1::RedeliverWebhookRequest* request,
      jobwire::v1::WebhookDeliveryRecord* response) override;
  grpc::ServerWriteReactor<jobwire::v1::BackupChunk>* Backup(
      grpc::CallbackServerContext* context,
      const jobwire::v1::BackupRequest* request) override;

  // Adds the unary methods above (all but Backup), as the functions their
  // gRPC handlers call, to `table` (unary_methods.h).
  void AddUnaryMethods(UnaryMethods* table);
  size_t max_request_bytes() const { return options_.max_request_bytes; }

 private:
  // The unary methods (unary_methods.h); the gRPC handlers of the same
  // names call them.
  void ServeGetServerInfo(const jobwire::v1::GetServerInfoRequest& request,
                          jobwire::v1::ServerInfo* response, UnaryDone done);
  void ServePauseDispatch(const jobwire::v1::PauseDispatchRequest& request,
                          jobwire::v1::DispatchState* response, UnaryDone done);
  void ServeResumeDispatch(const jobwire::v1::ResumeDispatchRequest& request,
                           jobwire::v1::DispatchState* response,
                           UnaryDone done);
  void ServePauseQueue(const jobwire::v1::PauseQueueRequest& request,
                       jobwire::v1::Queue* response, UnaryDone done);
  void ServeResumeQueue(const jobwire::v1::ResumeQueueRequest& request,
                        jobwire::v1::Queue* response, UnaryDone done);
  void ServeListQueues(const jobwire::v1::ListQueuesRequest& request,
                       jobwire::v1::ListQueuesResponse* response,
                       UnaryDone done);
  void ServeUpdateQueue(const jobwire::v1::UpdateQueueRequest& request,
                        jobwire::v1::Queue* response, UnaryDone done);
  void ServeListWebhookDeliveries(
      const jobwire::v1::ListWebhookDeliveriesRequest& request,
      jobwire::v1::ListWebhookDeliveriesResponse* response, UnaryDone done);
  void ServeRedeliverWebhook(
      const jobwire::v1::RedeliverWebhookRequest& request,
      jobwire::v1::WebhookDeliveryRecord* response, UnaryDone done);

  // Runs `body` on the executor and calls `done` with its status.
  void RunBlocking(const UnaryDone& done, std::function<absl::Status()> body);
  absl::Status NeedDispatcher() const;
  // Every queue (the dispatcher's and those with jobs), with counts; only
  // `name` when it is not empty.
  absl::StatusOr<std::vector<jobwire::v1::Queue>> QueuesBlocking(
      const std::string& name);
  // `response` = the queue `name` as ListQueues shows it.
  absl::Status DescribeQueueBlocking(const std::string& name,
                                     jobwire::v1::Queue* response);

  const Options options_;
  Clock* const clock_;
  Executor* const executor_;
  const absl::Time start_time_;
  const absl::Time start_monotonic_;  // uptime does not follow clock steps

  std::atomic<bool> shutting_down_{false};
  StreamRegistry backups_;

  mutable absl::Mutex mu_;
  std::vector<std::string> listeners_ ABSL_GUARDED_BY(mu_);
};

}  // namespace jobwire

#endif  // JOBWIRE_SERVER_API_ADMIN_SERVICE_H_
