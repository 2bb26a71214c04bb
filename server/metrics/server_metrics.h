// ServerMetrics: jobwired's Prometheus metrics, rendered as the text
// exposition format (prometheus-cpp's registry and TextSerializer) for the
// HTTP face to serve at GET /metrics.
//
// Where each number comes from:
//   - Committed events (it is a CommitListener of the store): the per-queue
//     counters (submitted, succeeded, failed, cancelled, retried), the run
//     time histogram (the RUNNING event to the event that leaves RUNNING,
//     both stamped by the store's clock), and jobwire_jobs{queue,state} for
//     the active states QUEUED, SCHEDULED, RUNNING and PAUSED, kept in memory
//     from every state change and queue move after LoadBlocking seeded them
//     from the store: they cost a scrape no SQL, whatever the database's
//     size (the outbox depth, with webhooks on, is one COUNT over the
//     pending rows' index).
//     Ended jobs are not in jobwire_jobs (retention and deletes remove them
//     without events); the _total counters count them instead.
//   - The store's writer (a CommitObserver): group-commit batch sizes and
//     transaction times.
//   - The Dispatcher (an AssignObserver): dispatch latency, from a job
//     becoming ready to its `assign` being sent; and, read at scrape time,
//     connected workers, free slots, leases, lease expiries, the dispatch
//     pause and each queue's pause.
//   - The webhook sender (a WebhookObserver): delivery attempts by result
//     (delivered, failed_will_retry, dead, refused) and their times; and,
//     read at scrape time through a hook, the outbox's pending rows.
//   - Hooks (Sources): open gRPC watch streams, SSE streams and HTTP
//     connections; a metric whose hook is null is left out.
//   - /proc/self: process_* metrics (process_metrics.h).
// Labels are low-cardinality only: `queue` and `state`, never a job id.
//
// Usage (server/app/app.cc): construct after the store and the Dispatcher;
// register with store->AddCommitListener(m), store->SetCommitObserver(m),
// dispatcher->SetAssignObserver(m) and, with webhooks on, as the
// HttpWebhookSender's Options::observer; call LoadBlocking() before the
// first write (before Dispatcher::RecoverBlocking); then RenderBlocking()
// per scrape, from the executor.
//
// Thread-safety: every method is thread-safe. OnCommit, OnCommitSample and
// OnAssigned take one short lock (or none; OnWebhookAttempt takes none),
// never block and allocate only
// when a queue is first seen or a job starts running. OnAssigned runs with
// the Dispatcher's mutex held (lock order: Dispatcher::mu_ before mu_);
// RenderBlocking never holds mu_ while calling the Dispatcher or a hook.
// Ownership: the Sources' pointees are not owned; they, and the objects the
// hooks reach, must outlive it (the store and the Dispatcher must stop
// calling it before it is destroyed).
#ifndef JOBWIRE_SERVER_METRICS_SERVER_METRICS_H_
#define JOBWIRE_SERVER_METRICS_SERVER_METRICS_H_

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/core/job.h"
#include "server/scheduling/dispatcher.h"
#include "server/storage/job_store.h"
#include "server/webhooks/webhook_observer.h"

namespace prometheus {
class Counter;
class Histogram;
template <typename T>
class Family;
class Registry;
}  // namespace prometheus

namespace jobwire {

class ServerMetrics final : public CommitListener,
                            public CommitObserver,
                            public AssignObserver,
                            public WebhookObserver {
 public:
  struct Sources {
    // Workers, slots, leases, lease expiries, pauses. Null: those metrics
    // are left out.
    Dispatcher* dispatcher = nullptr;
    // Read once, by LoadBlocking (job counts). Null: counts start at zero.
    JobStore* store = nullptr;
    // Open gRPC WatchJob/WatchJobs streams, open SSE streams, open HTTP
    // connections. Called at each render, on the rendering thread; they
    // must not block. Null: the metric is left out.
    std::function<int64_t()> watch_streams;
    std::function<int64_t()> sse_streams;
    std::function<int64_t()> http_connections;
    // Set when webhooks are on: the webhook metrics are shown, and this
    // reads the outbox's pending deliveries at each render (it may block:
    // RenderBlocking runs on the executor). Null: no webhook metrics.
    std::function<absl::StatusOr<int64_t>()> webhook_outbox_pending;
  };

  explicit ServerMetrics(Sources sources);
  ~ServerMetrics() override;
  ServerMetrics(const ServerMetrics&) = delete;
  ServerMetrics& operator=(const ServerMetrics&) = delete;

  // Seeds jobwire_jobs from the store's counts (kept in memory by the
  // store). Call once, after AddCommitListener(this) and before any write
  // commits, so no commit is counted twice or missed. Fails with the store's
  // error (then counts start at zero).
  absl::Status LoadBlocking();

  // CommitListener: counters, run times and job counts. Store completion
  // thread; never blocks.
  void OnCommit(const std::vector<JobEvent>& events) override;
  // CommitObserver: batch size and transaction time histograms. Store
  // writer thread; takes no lock of ours.
  void OnCommitSample(const CommitSample& sample) override;
  // AssignObserver: dispatch latency. Dispatcher mutex held.
  void OnAssigned(const std::string& queue,
                  absl::Duration ready_to_assigned) override;
  // WebhookObserver: deliveries by result, attempt times. Delivery thread;
  // takes no lock of ours. Ignored without Sources::webhook_outbox_pending.
  void OnWebhookAttempt(WebhookAttemptResult result,
                        absl::Duration duration) override;

  // Every metric in the Prometheus text exposition format (version 0.0.4,
  // Content-Type "text/plain; version=0.0.4; charset=utf-8"). Reads
  // /proc/self and calls the Dispatcher and the hooks: run it on the
  // executor, never on a network thread. Never fails: a source that cannot
  // be read is left out of that scrape (and logged).
  std::string RenderBlocking();

 private:
  // The active states counted in jobwire_jobs, in this order.
  static constexpr int kActiveStates = 4;
  struct QueueMetrics {
    prometheus::Counter* submitted = nullptr;
    prometheus::Counter* succeeded = nullptr;
    prometheus::Counter* failed = nullptr;
    prometheus::Counter* cancelled = nullptr;
    prometheus::Counter* retried = nullptr;
    prometheus::Histogram* dispatch_latency = nullptr;
    prometheus::Histogram* run_duration = nullptr;
    // Jobs in QUEUED, SCHEDULED, RUNNING, PAUSED.
    std::array<int64_t, kActiveStates> jobs{};
  };

  // The metrics of `queue`, made on first use.
  QueueMetrics& QueueLocked(const std::string& queue)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void OnStateChangedLocked(const JobEvent& e)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A kUpdated event that moved a job between queues; `state` is the job's
  // state before the update.
  void OnQueueMovedLocked(const JobEvent& e, JobState state)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const Sources sources_;
  const std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Counter>& submitted_;
  prometheus::Family<prometheus::Counter>& succeeded_;
  prometheus::Family<prometheus::Counter>& failed_;
  prometheus::Family<prometheus::Counter>& cancelled_;
  prometheus::Family<prometheus::Counter>& retried_;
  prometheus::Family<prometheus::Histogram>& dispatch_latency_;
  prometheus::Family<prometheus::Histogram>& run_duration_;
  // Unlabelled, so the writer observes them without mu_.
  prometheus::Histogram& batch_requests_;
  prometheus::Histogram& transaction_duration_;
  prometheus::Histogram& commit_duration_;
  prometheus::Histogram& queue_wait_;
  // Webhook deliveries by WebhookAttemptResult, and attempt times; null
  // while webhooks are off.
  std::array<prometheus::Counter*, std::size(kWebhookAttemptResults)>
      webhook_results_{};
  prometheus::Histogram* webhook_duration_ = nullptr;

  // Taken inside the Dispatcher's mutex by OnAssigned (see the class comment).
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, QueueMetrics> queues_ ABSL_GUARDED_BY(mu_);
  // Jobs now RUNNING, with the time their attempt started.
  absl::flat_hash_map<std::string, absl::Time> running_ ABSL_GUARDED_BY(mu_);
};

}  // namespace jobwire

#endif  // JOBWIRE_SERVER_METRICS_SERVER_METRICS_H_
