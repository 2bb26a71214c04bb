#include "server/metrics/server_metrics.h"

#include <prometheus/client_metric.h>
#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/histogram.h>
#include <prometheus/metric_family.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <algorithm>
#include <sstream>
#include <utility>

#include "absl/strings/ascii.h"
#include "server/common/logging.h"
#include "server/metrics/process_metrics.h"

namespace jobwire {
namespace {

using prometheus::BuildCounter;
using prometheus::BuildHistogram;
using prometheus::ClientMetric;
using prometheus::Histogram;
using prometheus::MetricFamily;
using prometheus::MetricType;

constexpr JobState kActive[] = {JobState::kQueued, JobState::kScheduled,
                                JobState::kRunning, JobState::kPaused};

// Index of `state` in QueueMetrics::jobs; -1 for a state not counted there.
int ActiveIndex(JobState state) {
  switch (state) {
    case JobState::kQueued:
      return 0;
    case JobState::kScheduled:
      return 1;
    case JobState::kRunning:
      return 2;
    case JobState::kPaused:
      return 3;
    default:
      return -1;
  }
}

// Dispatch waits: sub-millisecond on an idle server, up to minutes when
// every worker is busy.
const Histogram::BucketBoundaries& LatencyBuckets() {
  static const auto* b = new Histogram::BucketBoundaries{
      0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
      0.5,    1,     2.5,    5,     10,   30,    60,   300};
  return *b;
}

// Attempts: from no-op jobs to hours-long ones.
const Histogram::BucketBoundaries& RunBuckets() {
  static const auto* b = new Histogram::BucketBoundaries{
      0.005, 0.01, 0.05, 0.1, 0.5,  1,    5,    10,
      30,    60,   300,  900, 1800, 3600, 14400};
  return *b;
}

// Requests per transaction: powers of two up to the default group-commit cap
// (SqliteJobStore::Options::max_batch_jobs, 2,000).
const Histogram::BucketBoundaries& BatchBuckets() {
  static const auto* b = new Histogram::BucketBoundaries{
      1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048};
  return *b;
}

// Transaction and COMMIT times: an fsync is 0.1-10 ms on most disks.
const Histogram::BucketBoundaries& CommitBuckets() {
  static const auto* b = new Histogram::BucketBoundaries{
      0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
      0.025,  0.05,    0.1,    0.25,  0.5,    1};
  return *b;
}

// Webhook attempts: a local receiver answers in a millisecond; the default
// total timeout is 15 s.
const Histogram::BucketBoundaries& WebhookBuckets() {
  static const auto* b = new Histogram::BucketBoundaries{
      0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
      0.25,  0.5,    1,     2.5,  5,     10,   30};
  return *b;
}

MetricFamily Family(std::string name, std::string help, MetricType type) {
  MetricFamily f;
  f.name = std::move(name);
  f.help = std::move(help);
  f.type = type;
  return f;
}

ClientMetric Gauge(double value, std::vector<ClientMetric::Label> labels = {}) {
  ClientMetric m;
  m.label = std::move(labels);
  m.gauge.value = value;
  return m;
}

ClientMetric Counter(double value) {
  ClientMetric m;
  m.counter.value = value;
  return m;
}

MetricFamily OneGauge(std::string name, std::string help, double value) {
  MetricFamily f = Family(std::move(name), std::move(help), MetricType::Gauge);
  f.metric.push_back(Gauge(value));
  return f;
}

}  // namespace

ServerMetrics::ServerMetrics(Sources sources)
    : sources_(std::move(sources)),
      registry_(std::make_shared<prometheus::Registry>()),
      submitted_(BuildCounter()
                     .Name("jobwire_jobs_submitted_total")
                     .Help("Jobs created by SubmitJob or SubmitJobs.")
                     .Register(*registry_)),
      succeeded_(BuildCounter()
                     .Name("jobwire_jobs_succeeded_total")
                     .Help("Jobs that ended SUCCEEDED.")
                     .Register(*registry_)),
      failed_(BuildCounter()
                  .Name("jobwire_jobs_failed_total")
                  .Help("Jobs that ended FAILED (no attempt left, or a "
                        "permanent failure).")
                  .Register(*registry_)),
      cancelled_(BuildCounter()
                     .Name("jobwire_jobs_cancelled_total")
                     .Help("Jobs that ended CANCELLED.")
                     .Register(*registry_)),
      retried_(BuildCounter()
                   .Name("jobwire_jobs_retried_total")
                   .Help("Jobs sent back to wait for another attempt: a "
                         "failed, timed-out or lost attempt, or RetryJob of "
                         "an ended job.")
                   .Register(*registry_)),
      dispatch_latency_(BuildHistogram()
                            .Name("jobwire_dispatch_latency_seconds")
                            .Help("From a job becoming ready to its assign "
                                  "being sent to a worker.")
                            .Register(*registry_)),
      run_duration_(BuildHistogram()
                        .Name("jobwire_job_run_duration_seconds")
                        .Help("Attempts, from RUNNING to leaving RUNNING "
                              "(ended, requeued or paused).")
                        .Register(*registry_)),
      batch_requests_(BuildHistogram()
                          .Name("jobwire_store_commit_batch_requests")
                          .Help("Write requests per committed transaction "
                                "(group commit).")
                          .Register(*registry_)
                          .Add({}, BatchBuckets())),
      transaction_duration_(BuildHistogram()
                                .Name("jobwire_store_transaction_seconds")
                                .Help("Committed transactions, from BEGIN to "
                                      "the end of COMMIT.")
                                .Register(*registry_)
                                .Add({}, CommitBuckets())),
      commit_duration_(BuildHistogram()
                           .Name("jobwire_store_commit_seconds")
                           .Help("The COMMIT of each transaction: its WAL "
                                 "write and, with synchronous=FULL, fsync.")
                           .Register(*registry_)
                           .Add({}, CommitBuckets())),
      queue_wait_(BuildHistogram()
                      .Name("jobwire_store_queue_wait_seconds")
                      .Help("Committed transactions: the longest wait of "
                            "their write requests in the queue, from being "
                            "queued to BEGIN.")
                      .Register(*registry_)
                      .Add({}, CommitBuckets())) {
  if (!sources_.webhook_outbox_pending) return;
  auto& results = BuildCounter()
                      .Name("jobwire_webhook_deliveries_total")
                      .Help(
                          "Webhook delivery attempts by outcome: delivered "
                          "(2xx), failed_will_retry, dead (failed, the "
                          "last attempt allowed), refused (the SSRF guard "
                          "refused the destination).")
                      .Register(*registry_);
  for (size_t i = 0; i < std::size(kWebhookAttemptResults); ++i) {
    webhook_results_[i] = &results.Add(
        {{"outcome",
          std::string(WebhookAttemptResultName(kWebhookAttemptResults[i]))}});
  }
  webhook_duration_ = &BuildHistogram()
                           .Name("jobwire_webhook_delivery_duration_seconds")
                           .Help(
                               "Webhook delivery attempts, from their start "
                               "to the receiver's answer or the error.")
                           .Register(*registry_)
                           .Add({}, WebhookBuckets());
}

ServerMetrics::~ServerMetrics() = default;

absl::Status ServerMetrics::LoadBlocking() {
  if (sources_.store == nullptr) return absl::OkStatus();
  absl::StatusOr<std::vector<QueueStateCount>> counts =
      sources_.store->CountJobsByQueueAndStateBlocking();
  if (!counts.ok()) return counts.status();
  absl::MutexLock lock(&mu_);
  for (const QueueStateCount& c : *counts) {
    const int i = ActiveIndex(c.state);
    QueueMetrics& q = QueueLocked(c.queue);
    if (i >= 0) q.jobs[i] += c.count;
  }
  return absl::OkStatus();
}

ServerMetrics::QueueMetrics& ServerMetrics::QueueLocked(
    const std::string& queue) {
  auto [it, inserted] = queues_.try_emplace(queue);
  QueueMetrics& q = it->second;
  if (inserted) {
    const std::map<std::string, std::string> labels{{"queue", queue}};
    q.submitted = &submitted_.Add(labels);
    q.succeeded = &succeeded_.Add(labels);
    q.failed = &failed_.Add(labels);
    q.cancelled = &cancelled_.Add(labels);
    q.retried = &retried_.Add(labels);
    q.dispatch_latency = &dispatch_latency_.Add(labels, LatencyBuckets());
    q.run_duration = &run_duration_.Add(labels, RunBuckets());
  }
  return q;
}

void ServerMetrics::OnCommit(const std::vector<JobEvent>& events) {
  absl::MutexLock lock(&mu_);
  for (size_t i = 0; i < events.size(); ++i) {
    const JobEvent& e = events[i];
    if (e.type == EventType::kStateChanged) {
      OnStateChangedLocked(e);
    } else if (e.type == EventType::kUpdated && !e.from_queue.empty() &&
               e.from_queue != e.queue) {
      // Every event of a mutation carries the job's state after it; a state
      // change that the same update made (a reschedule) follows it and
      // names the state before.
      JobState before = e.state;
      if (i + 1 < events.size() && events[i + 1].job_id == e.job_id &&
          events[i + 1].type == EventType::kStateChanged) {
        before = events[i + 1].from;
      }
      OnQueueMovedLocked(e, before);
    }
  }
}

void ServerMetrics::OnStateChangedLocked(const JobEvent& e) {
  QueueMetrics& q = QueueLocked(e.queue);
  if (const int from = ActiveIndex(e.from); from >= 0) --q.jobs[from];
  if (const int to = ActiveIndex(e.to); to >= 0) ++q.jobs[to];
  switch (e.to) {
    case JobState::kSucceeded:
      q.succeeded->Increment();
      break;
    case JobState::kFailed:
      q.failed->Increment();
      break;
    case JobState::kCancelled:
      q.cancelled->Increment();
      break;
    case JobState::kQueued:
    case JobState::kScheduled:
      if (e.from == JobState::kUnspecified) {
        q.submitted->Increment();
      } else if (e.from == JobState::kRunning || IsTerminal(e.from)) {
        q.retried->Increment();
      }
      break;
    default:
      break;
  }
  if (e.from == JobState::kRunning) {
    if (auto it = running_.find(e.job_id); it != running_.end()) {
      q.run_duration->Observe(
          std::max(0.0, absl::ToDoubleSeconds(e.time - it->second)));
      running_.erase(it);
    }
  }
  if (e.to == JobState::kRunning) running_[e.job_id] = e.time;
}

void ServerMetrics::OnQueueMovedLocked(const JobEvent& e, JobState state) {
  const int i = ActiveIndex(state);
  if (i < 0) return;
  --QueueLocked(e.from_queue).jobs[i];
  ++QueueLocked(e.queue).jobs[i];
}

void ServerMetrics::OnCommitSample(const CommitSample& sample) {
  batch_requests_.Observe(static_cast<double>(sample.requests));
  transaction_duration_.Observe(
      absl::ToDoubleSeconds(sample.apply + sample.commit));
  commit_duration_.Observe(absl::ToDoubleSeconds(sample.commit));
  queue_wait_.Observe(absl::ToDoubleSeconds(sample.queue_wait));
}

void ServerMetrics::OnAssigned(const std::string& queue,
                               absl::Duration ready_to_assigned) {
  absl::MutexLock lock(&mu_);
  QueueLocked(queue).dispatch_latency->Observe(
      std::max(0.0, absl::ToDoubleSeconds(ready_to_assigned)));
}

void ServerMetrics::OnWebhookAttempt(WebhookAttemptResult result,
                                     absl::Duration duration) {
  if (webhook_duration_ == nullptr) return;
  webhook_results_[static_cast<size_t>(result)]->Increment();
  webhook_duration_->Observe(std::max(0.0, absl::ToDoubleSeconds(duration)));
}

std::string ServerMetrics::RenderBlocking() {
  std::vector<MetricFamily> families = registry_->Collect();

  MetricFamily jobs =
      Family("jobwire_jobs",
             "Jobs not yet ended, by queue and state (QUEUED, SCHEDULED, "
             "RUNNING, PAUSED).",
             MetricType::Gauge);
  {
    absl::MutexLock lock(&mu_);
    std::vector<std::string> names;
    names.reserve(queues_.size());
    for (const auto& [name, q] : queues_) names.push_back(name);
    std::sort(names.begin(), names.end());
    for (const std::string& name : names) {
      const QueueMetrics& q = queues_.at(name);
      for (int i = 0; i < kActiveStates; ++i) {
        jobs.metric.push_back(Gauge(
            static_cast<double>(q.jobs[i]),
            {{"queue", name},
             {"state", absl::AsciiStrToLower(JobStateName(kActive[i]))}}));
      }
    }
  }
  families.push_back(std::move(jobs));

  if (Dispatcher* d = sources_.dispatcher; d != nullptr) {
    const DispatcherStats st = d->Stats();
    families.push_back(OneGauge("jobwire_workers_connected",
                                "Worker sessions (WorkerService.Connect "
                                "streams) open.",
                                static_cast<double>(st.sessions)));
    families.push_back(OneGauge("jobwire_worker_slots_free",
                                "Slots of connected workers not holding a job.",
                                static_cast<double>(st.free_slots)));
    families.push_back(OneGauge("jobwire_leases",
                                "Jobs held by workers (leases, including "
                                "assignments being committed).",
                                static_cast<double>(st.leases)));
    MetricFamily expiries =
        Family("jobwire_lease_expiries_total",
               "Leases ended because their worker went silent for the lease "
               "TTL.",
               MetricType::Counter);
    expiries.metric.push_back(Counter(static_cast<double>(st.lease_expiries)));
    families.push_back(std::move(expiries));
    families.push_back(OneGauge(
        "jobwire_dispatch_paused",
        "1 while dispatch is paused server-wide (PauseDispatch), else 0.",
        d->dispatch_pause().paused ? 1 : 0));
    MetricFamily paused = Family(
        "jobwire_queue_paused",
        "1 while the queue is paused (PauseQueue), else 0; every queue with "
        "settings, workers or jobs.",
        MetricType::Gauge);
    std::vector<std::string> known;
    {
      absl::MutexLock lock(&mu_);
      known.reserve(queues_.size());
      for (const auto& [name, q] : queues_) known.push_back(name);
    }
    for (const Dispatcher::QueueView& v : d->Queues(known)) {
      paused.metric.push_back(
          Gauge(v.settings.paused ? 1 : 0, {{"queue", v.settings.name}}));
    }
    families.push_back(std::move(paused));
  }
  auto hook = [&families](const std::function<int64_t()>& f, const char* name,
                          const char* help) {
    if (f) families.push_back(OneGauge(name, help, static_cast<double>(f())));
  };
  hook(sources_.watch_streams, "jobwire_grpc_watch_streams",
       "Open gRPC WatchJob and WatchJobs streams.");
  hook(sources_.sse_streams, "jobwire_sse_streams",
       "Open Server-Sent Events streams of the HTTP face.");
  hook(sources_.http_connections, "jobwire_http_connections",
       "Open connections of the HTTP face.");
  if (sources_.webhook_outbox_pending) {
    absl::StatusOr<int64_t> pending = sources_.webhook_outbox_pending();
    if (pending.ok()) {
      families.push_back(OneGauge("jobwire_webhook_outbox_pending",
                                  "Webhook deliveries waiting in the outbox "
                                  "(neither delivered nor dead).",
                                  static_cast<double>(*pending)));
    } else {
      JW_LOG(WARNING) << "metrics: webhook outbox depth left out: "
                      << pending.status();
    }
  }

  absl::StatusOr<ProcessSample> process = ReadProcessSampleBlocking();
  if (process.ok()) {
    MetricFamily cpu = Family("process_cpu_seconds_total",
                              "Total user and system CPU time spent in "
                              "seconds.",
                              MetricType::Counter);
    cpu.metric.push_back(Counter(process->cpu_seconds));
    families.push_back(std::move(cpu));
    families.push_back(OneGauge("process_start_time_seconds",
                                "Start time of the process since unix epoch "
                                "in seconds.",
                                process->start_time_seconds));
    families.push_back(
        OneGauge("process_resident_memory_bytes",
                 "Resident memory size in "
                 "bytes.",
                 static_cast<double>(process->resident_memory_bytes)));
    families.push_back(OneGauge(
        "process_virtual_memory_bytes", "Virtual memory size in bytes.",
        static_cast<double>(process->virtual_memory_bytes)));
    families.push_back(OneGauge("process_open_fds",
                                "Number of open file descriptors.",
                                static_cast<double>(process->open_fds)));
    if (process->max_fds > 0) {
      families.push_back(OneGauge("process_max_fds",
                                  "Maximum number of open file descriptors.",
                                  static_cast<double>(process->max_fds)));
    }
  } else {
    JW_LOG(WARNING) << "metrics: process metrics left out: "
                    << process.status();
  }

  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, families);
  return out.str();
}

}  // namespace jobwire
