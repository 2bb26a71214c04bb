#include "server/api/watch_reactors.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/api/convert.h"
#include "server/api/write_coalescing.h"
#include "server/common/errors.h"
#include "server/common/logging.h"
#include "server/transport/grpc_status.h"

namespace jobwire {
namespace {

// What a queued message holds, for the queue's byte bound.
size_t BytesOf(const WatchMessage& m) {
  switch (m.kind) {
    case WatchMessage::Kind::kEvent:
      return ApproxBytes(m.event);
    case WatchMessage::Kind::kSnapshot:
      return ApproxBytes(m.job);
    default:
      return sizeof(WatchMessage) + m.reason.size();
  }
}

// Whether a log read of `events`, asked for at most `limit` events and
// `max_bytes` (the store stops at the event that reaches it), reached the
// log's end.
bool AtLogEnd(const std::vector<JobEvent>& events, int limit,
              size_t max_bytes) {
  if (static_cast<int>(events.size()) >= limit) return false;
  size_t bytes = 0;
  for (const JobEvent& e : events) bytes += ApproxBytes(e);
  return bytes < max_bytes;
}

// A write reactor that finishes at once with an error (invalid request).
template <typename Response>
class FinishedReactor final : public grpc::ServerWriteReactor<Response> {
 public:
  explicit FinishedReactor(const absl::Status& status) {
    this->Finish(ToGrpcStatus(status));
  }
  void OnDone() override { delete this; }
};

// Fills either response type: both carry the same oneof.
template <typename Response>
void Fill(const WatchMessage& m, Response* out) {
  using Kind = WatchMessage::Kind;
  out->Clear();
  switch (m.kind) {
    case Kind::kEvent:
      EventToProto(m.event, out->mutable_event());
      break;
    case Kind::kSnapshot:
      SnapshotToProto(m.job, out->mutable_event());
      break;
    case Kind::kHeartbeat:
      TimeToProto(m.time, out->mutable_heartbeat()->mutable_time());
      break;
    case Kind::kDraining:
      TimeToProto(m.time, out->mutable_draining()->mutable_deadline());
      break;
    case Kind::kReset:
      out->mutable_reset()->set_oldest_retained(m.oldest_retained);
      out->mutable_reset()->set_reason(m.reason);
      break;
  }
}

bool IsTerminalEvent(const JobEvent& e) {
  return e.type == EventType::kStateChanged && IsTerminal(e.to);
}

}  // namespace

void WatchMessageToProto(const WatchMessage& message,
                         v1::WatchJobResponse* out) {
  Fill(message, out);
}

void WatchMessageToProto(const WatchMessage& message,
                         v1::WatchJobsResponse* out) {
  Fill(message, out);
}

// ---------------------------------------------------------------------------
// WatchReactorCore

WatchReactorCore::WatchReactorCore(const WatchDeps& deps) : deps_(deps) {
  const absl::Time now = deps_.clock->Now();
  write_started_ = now;
  last_write_ = now;
}

WatchReactorCore::~WatchReactorCore() = default;

void WatchReactorCore::Begin(WatchSink* sink) {
  sink_ = sink;
  deps_.registry->Add(this);
  if (StartsLive()) {
    // Live from the first event after the subscription; OnEvent may run on
    // the store's completion thread before Subscribe returns.
    {
      absl::MutexLock lock(&mu_);
      lagging_ = false;
      started_ = true;
    }
    int64_t cursor = 0;
    subscription_ = Subscribe(&cursor);
    absl::MutexLock lock(&mu_);
    cursor_ = std::max(cursor_, cursor);
    return;
  }
  int64_t unused = 0;
  subscription_ = Subscribe(&unused);
  RunOnExecutor([this] { StartStep(); });
}

void WatchReactorCore::Unref() {
  if (refs_.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
  deps_.registry->Remove(this);
  deps_.bus->Unsubscribe(subscription_);
  delete this;
}

void WatchReactorCore::RunOnExecutor(std::function<void()> fn) {
  Ref();
  if (deps_.executor->Schedule([this, fn = std::move(fn)] {
        fn();
        Unref();
      })) {
    return;
  }
  {
    absl::MutexLock lock(&mu_);
    catching_up_ = false;
    FinishLocked(ShuttingDownError());
  }
  Unref();
}

void WatchReactorCore::StartStep() {
  absl::Status status = StartBlocking();
  {
    absl::MutexLock lock(&mu_);
    if (!status.ok()) {
      FinishLocked(status);
      return;
    }
    started_ = true;
    PumpLocked();
  }
  CatchUp();
}

void WatchReactorCore::CatchUp() {
  int64_t cursor;
  bool read_now = false;
  {
    absl::MutexLock lock(&mu_);
    if (finished_ || end_after_queue_ || !started_ || !lagging_ || catching_up_)
      return;
    if (HalfFullLocked()) return;  // wait for the peer
    catching_up_ = true;
    cursor = cursor_;
    if (read_log_first_) {
      read_now = true;
    } else {
      // Optimistic: OnEvent calls during Resume may set it again.
      lagging_ = false;
    }
  }
  if (read_now) {
    RunOnExecutor([this] { ReadStep(); });
    return;
  }
  const EventBus::ResumeResult result = Resume(subscription_, cursor);
  {
    absl::MutexLock lock(&mu_);
    if (result == EventBus::ResumeResult::kLagging) lagging_ = true;
    if (result != EventBus::ResumeResult::kReadStore) {
      catching_up_ = false;
      PumpLocked();
      return;
    }
    lagging_ = true;
  }
  RunOnExecutor([this] { ReadStep(); });
}

void WatchReactorCore::ReadStep() {
  int64_t cursor;
  int limit;
  size_t max_bytes;
  {
    absl::MutexLock lock(&mu_);
    if (finished_) {
      catching_up_ = false;
      return;
    }
    cursor = cursor_;
    limit = static_cast<int>(std::max<size_t>(
        1,
        deps_.options.buffer - std::min(queue_.size(), deps_.options.buffer)));
    max_bytes = std::max<size_t>(
        1, deps_.options.buffer_bytes -
               std::min(queue_bytes_, deps_.options.buffer_bytes));
  }
  absl::StatusOr<LogPage> page = ReadLogBlocking(cursor, limit, max_bytes);
  {
    absl::MutexLock lock(&mu_);
    catching_up_ = false;
    if (!page.ok()) {
      FinishLocked(page.status());
      return;
    }
    if (page->reset.has_value()) {
      EnqueueLocked(*std::move(page->reset));
      if (page->snapshot.has_value()) {
        cursor_ = page->snapshot->last_seq;
        Outgoing snap;
        snap.kind = Outgoing::Kind::kSnapshot;
        snap.job = *std::move(page->snapshot);
        if (IsTerminal(snap.job.state)) end_after_queue_ = true;
        EnqueueLocked(std::move(snap));
      }
    }
    for (const JobEvent& e : page->events) {
      if (end_after_queue_) break;
      AcceptLocked(e, /*from_log=*/true);
    }
    read_log_first_ = !page->at_end;
    PumpLocked();
  }
  CatchUp();
}

bool WatchReactorCore::AcceptLocked(const JobEvent& event, bool from_log) {
  if (finished_ || end_after_queue_) return true;
  const int64_t c = CursorOf(event);
  if (c <= cursor_) return true;  // already taken (read from the log first)
  if (!from_log && Dense() && c != cursor_ + 1) return false;  // gap: catch up
  if (!Wants(event)) {
    cursor_ = c;
    return true;
  }
  // Coalesce progress while the peer lags: latest value wins.
  if (event.type == EventType::kProgress && HalfFullLocked() &&
      !queue_.empty()) {
    Outgoing& last = queue_.back();
    if (last.kind == Outgoing::Kind::kEvent &&
        last.event.type == EventType::kProgress &&
        last.event.job_id == event.job_id) {
      queue_bytes_ -= ApproxBytes(last.event);
      last.event = event;
      queue_bytes_ += ApproxBytes(last.event);
      cursor_ = c;
      return true;
    }
  }
  if (!from_log) {
    if (queue_.size() >= deps_.options.buffer) return false;
    // Over the byte budget: refused, unless the queue is empty (an event
    // larger than the whole budget then goes out alone).
    if (!queue_.empty() &&
        queue_bytes_ + ApproxBytes(event) > deps_.options.buffer_bytes) {
      return false;
    }
  }
  Outgoing m;
  m.kind = Outgoing::Kind::kEvent;
  m.event = event;
  EnqueueLocked(std::move(m));
  cursor_ = c;
  if (Ends(event)) end_after_queue_ = true;
  return true;
}

bool WatchReactorCore::OnEvent(const JobEvent& event) {
  absl::MutexLock lock(&mu_);
  if (!AcceptLocked(event, /*from_log=*/false)) {
    lagging_ = true;
    return false;
  }
  PumpLocked();
  return true;
}

void WatchReactorCore::PumpLocked() {
  if (finished_ || writing_) return;
  if (queue_.empty()) {
    if (end_after_queue_) FinishLocked(absl::OkStatus());
    return;
  }
  in_flight_ = std::move(queue_.front());
  queue_.pop_front();
  queue_bytes_ -= BytesOf(in_flight_);
  writing_ = true;
  write_started_ = deps_.clock->Now();
  sink_->WriteMessage(in_flight_, /*more_queued=*/!queue_.empty());
}

void WatchReactorCore::FinishLocked(const absl::Status& status) {
  if (finished_) return;
  finished_ = true;
  queue_.clear();
  queue_bytes_ = 0;
  sink_->FinishWatch(status);
}

void WatchReactorCore::WriteDone(bool ok) {
  {
    absl::MutexLock lock(&mu_);
    writing_ = false;
    last_write_ = deps_.clock->Now();
    if (!ok) {
      FinishLocked(absl::CancelledError("write failed"));
      return;
    }
    PumpLocked();
  }
  CatchUp();
}

void WatchReactorCore::Cancelled() {
  absl::MutexLock lock(&mu_);
  FinishLocked(absl::CancelledError());
}

void WatchReactorCore::Done() {
  // gRPC runs OnDone after OnCancel has returned, but orders the two through
  // its own (uninstrumented) reference counts. Taking mu_ here, which
  // Cancelled() holds, makes that order one ThreadSanitizer sees too.
  { absl::MutexLock lock(&mu_); }
  Unref();
}

void WatchReactorCore::Push(Outgoing message) {
  absl::MutexLock lock(&mu_);
  if (message.kind == Outgoing::Kind::kSnapshot &&
      IsTerminal(message.job.state)) {
    end_after_queue_ = true;
  }
  EnqueueLocked(std::move(message));
}

void WatchReactorCore::EnqueueLocked(Outgoing m, bool front) {
  queue_bytes_ += BytesOf(m);
  if (front) {
    queue_.push_front(std::move(m));
  } else {
    queue_.push_back(std::move(m));
  }
}

bool WatchReactorCore::HalfFullLocked() const {
  return queue_.size() >= deps_.options.buffer / 2 ||
         queue_bytes_ >= deps_.options.buffer_bytes / 2;
}

void WatchReactorCore::SetCursor(int64_t cursor, bool read_log_first) {
  absl::MutexLock lock(&mu_);
  cursor_ = cursor;
  read_log_first_ = read_log_first;
}

void WatchReactorCore::EndAfterQueue() {
  absl::MutexLock lock(&mu_);
  end_after_queue_ = true;
}

void WatchReactorCore::Tick(absl::Time now) {
  absl::MutexLock lock(&mu_);
  if (finished_) return;
  if (writing_) {
    if (now - write_started_ >= deps_.options.stall_timeout) {
      JW_LOG(WARNING) << "ending a watch whose peer stopped reading";
      FinishLocked(ResourceExhaustedError(
          absl::StrCat("the watcher took no message for ",
                       absl::FormatDuration(now - write_started_)),
          "WATCHER_STALLED"));
    }
    return;
  }
  if (queue_.empty() && now - last_write_ >= deps_.options.heartbeat_interval) {
    Outgoing m;
    m.kind = Outgoing::Kind::kHeartbeat;
    m.time = now;
    EnqueueLocked(std::move(m));
    PumpLocked();
  }
}

void WatchReactorCore::Drain(absl::Time deadline) {
  absl::MutexLock lock(&mu_);
  if (finished_) return;
  Outgoing m;
  m.kind = Outgoing::Kind::kDraining;
  m.time = deadline;
  EnqueueLocked(std::move(m), /*front=*/true);
  PumpLocked();
}

void WatchReactorCore::Abort(const absl::Status& status) {
  absl::MutexLock lock(&mu_);
  FinishLocked(status);
}

size_t WatchReactorCore::BufferedMessages() {
  absl::MutexLock lock(&mu_);
  return queue_.size() + (writing_ ? 1 : 0);
}

// ---------------------------------------------------------------------------
// The two kinds of watch and the gRPC sink.

namespace {

// WatchJob: one job by id, cursor seq.
class WatchJobCore final : public WatchReactorCore {
 public:
  WatchJobCore(const WatchDeps& deps, const v1::WatchJobRequest& request);

 private:
  bool StartsLive() const override { return false; }
  EventBus::Subscription* Subscribe(int64_t* cursor) override;
  absl::Status StartBlocking() override;
  absl::StatusOr<LogPage> ReadLogBlocking(int64_t cursor, int limit,
                                          size_t max_bytes) override;
  EventBus::ResumeResult Resume(EventBus::Subscription* s,
                                int64_t cursor) override;
  int64_t CursorOf(const JobEvent& event) const override { return event.seq; }
  bool Wants(const JobEvent& event) const override { return true; }
  bool Ends(const JobEvent& event) const override;
  bool Dense() const override { return true; }

  const std::string job_id_;
  const std::optional<int64_t> after_seq_;
};

// WatchJobs: every job matching a filter, cursor event_id.
class WatchJobsCore final : public WatchReactorCore {
 public:
  WatchJobsCore(const WatchDeps& deps, const v1::WatchJobsRequest& request,
                FilterExpr filter);

 private:
  bool StartsLive() const override { return !after_event_id_.has_value(); }
  EventBus::Subscription* Subscribe(int64_t* cursor) override;
  absl::Status StartBlocking() override;
  absl::StatusOr<LogPage> ReadLogBlocking(int64_t cursor, int limit,
                                          size_t max_bytes) override;
  EventBus::ResumeResult Resume(EventBus::Subscription* s,
                                int64_t cursor) override;
  int64_t CursorOf(const JobEvent& event) const override {
    return event.event_id;
  }
  bool Wants(const JobEvent& event) const override;
  bool Ends(const JobEvent& event) const override { return false; }
  bool Dense() const override { return false; }

  const FilterExpr filter_;
  const std::optional<int64_t> after_event_id_;
};

// The gRPC write reactor as a watch's sink; deletes itself after OnDone.
template <typename Response>
class GrpcWatchSink final : public grpc::ServerWriteReactor<Response>,
                            public WatchSink {
 public:
  explicit GrpcWatchSink(WatchReactorCore* core) {
    core_.store(core, std::memory_order_release);
  }

  void WriteMessage(const WatchMessage& message, bool more_queued) override {
    WatchMessageToProto(message, &response_);
    // A burst of events leaves in one socket write; the last one, or a lone
    // one, is not held back (server/api/write_coalescing.h).
    this->StartWrite(&response_, coalescer_.Next(more_queued));
  }
  void FinishWatch(const absl::Status& status) override {
    this->Finish(ToGrpcStatus(status));
  }

  void OnWriteDone(bool ok) override { core()->WriteDone(ok); }
  void OnCancel() override { core()->Cancelled(); }
  void OnDone() override {
    core()->Done();
    delete this;
  }

 private:
  // The reactions run on gRPC's threads, after the handler's thread made
  // this sink and handed it over through gRPC's own (uninstrumented) queues.
  // Set once; the release store and acquire loads make that hand-off one
  // ThreadSanitizer sees.
  WatchReactorCore* core() const {
    return core_.load(std::memory_order_acquire);
  }

  std::atomic<WatchReactorCore*> core_;
  Response response_;         // the write in flight
  WriteCoalescer coalescer_;  // used under the core's lock
};

template <typename Response>
grpc::ServerWriteReactor<Response>* StartReactor(
    absl::StatusOr<WatchReactorCore*> core) {
  if (!core.ok()) return new FinishedReactor<Response>(core.status());
  auto* sink = new GrpcWatchSink<Response>(*core);
  (*core)->Begin(sink);
  return sink;
}

}  // namespace

absl::StatusOr<WatchReactorCore*> NewWatchJob(
    const WatchDeps& deps, const v1::WatchJobRequest& request) {
  if (request.id().empty()) return InvalidArgumentError("id", "is required");
  if (request.has_after_seq() && request.after_seq() < 0) {
    return InvalidArgumentError("after_seq", "must not be negative");
  }
  return new WatchJobCore(deps, request);
}

absl::StatusOr<WatchReactorCore*> NewWatchJobs(
    const WatchDeps& deps, const v1::WatchJobsRequest& request) {
  absl::StatusOr<FilterExpr> filter = ParseFilter(request.filter());
  if (!filter.ok()) return filter.status();
  if (!IsEvaluableInMemory(*filter)) {
    return InvalidArgumentError(
        "filter",
        "WatchJobs filters may use only id, queue, kind, priority, "
        "state and labels.KEY");
  }
  if (request.has_after_event_id() && request.after_event_id() < 0) {
    return InvalidArgumentError("after_event_id", "must not be negative");
  }
  return new WatchJobsCore(deps, request, *std::move(filter));
}

grpc::ServerWriteReactor<v1::WatchJobResponse>* StartWatchJobReactor(
    const WatchDeps& deps, const v1::WatchJobRequest& request) {
  return StartReactor<v1::WatchJobResponse>(NewWatchJob(deps, request));
}

grpc::ServerWriteReactor<v1::WatchJobsResponse>* StartWatchJobsReactor(
    const WatchDeps& deps, const v1::WatchJobsRequest& request) {
  return StartReactor<v1::WatchJobsResponse>(NewWatchJobs(deps, request));
}

// ---------------------------------------------------------------------------
// WatchJobCore

WatchJobCore::WatchJobCore(const WatchDeps& deps,
                           const v1::WatchJobRequest& request)
    : WatchReactorCore(deps),
      job_id_(request.id()),
      after_seq_(request.has_after_seq()
                     ? std::optional<int64_t>(request.after_seq())
                     : std::nullopt) {}

EventBus::Subscription* WatchJobCore::Subscribe(int64_t* cursor) {
  return deps_.bus->SubscribeJob(job_id_, this, /*live=*/false);
}

absl::Status WatchJobCore::StartBlocking() {
  absl::StatusOr<Job> job = deps_.store->GetJobBlocking(job_id_);
  if (!job.ok()) return job.status();
  if (!after_seq_.has_value()) {
    SetCursor(job->last_seq, /*read_log_first=*/false);
    Outgoing snap;
    snap.kind = Outgoing::Kind::kSnapshot;
    snap.job = *std::move(job);
    Push(std::move(snap));
    return absl::OkStatus();
  }
  if (*after_seq_ > job->last_seq) {
    return InvalidArgumentError(
        "after_seq",
        absl::StrCat("is beyond the job's last seq ", job->last_seq));
  }
  SetCursor(*after_seq_, /*read_log_first=*/true);
  if (*after_seq_ == job->last_seq && IsTerminal(job->state)) EndAfterQueue();
  return absl::OkStatus();
}

absl::StatusOr<WatchReactorCore::LogPage> WatchJobCore::ReadLogBlocking(
    int64_t cursor, int limit, size_t max_bytes) {
  LogPage page;
  absl::StatusOr<std::vector<JobEvent>> events =
      deps_.store->ReadJobEventsBlocking(job_id_, cursor, limit, max_bytes);
  if (!events.ok()) return events.status();
  page.at_end = AtLogEnd(*events, limit, max_bytes);
  if (!events->empty() && events->front().seq > cursor + 1) {
    // The log no longer holds the cursor: reset, then a fresh snapshot.
    Outgoing reset;
    reset.kind = Outgoing::Kind::kReset;
    reset.oldest_retained = events->front().seq - 1;
    reset.reason =
        absl::StrCat("events after seq ", cursor, " were pruned by retention");
    page.reset = std::move(reset);
    absl::StatusOr<Job> job = deps_.store->GetJobBlocking(job_id_);
    if (!job.ok()) return job.status();
    page.snapshot = *std::move(job);
    page.at_end = true;
    return page;
  }
  page.events = *std::move(events);
  return page;
}

EventBus::ResumeResult WatchJobCore::Resume(EventBus::Subscription* s,
                                            int64_t cursor) {
  return deps_.bus->ResumeJob(s, cursor);
}

bool WatchJobCore::Ends(const JobEvent& event) const {
  return IsTerminalEvent(event);
}

// ---------------------------------------------------------------------------
// WatchJobsCore

WatchJobsCore::WatchJobsCore(const WatchDeps& deps,
                             const v1::WatchJobsRequest& request,
                             FilterExpr filter)
    : WatchReactorCore(deps),
      filter_(std::move(filter)),
      after_event_id_(request.has_after_event_id()
                          ? std::optional<int64_t>(request.after_event_id())
                          : std::nullopt) {}

EventBus::Subscription* WatchJobsCore::Subscribe(int64_t* cursor) {
  // Without a cursor the watch starts live at the bus's last event.
  return deps_.bus->SubscribeAll(this, StartsLive(), cursor);
}

absl::Status WatchJobsCore::StartBlocking() {
  const int64_t after = *after_event_id_;
  absl::StatusOr<int64_t> last = deps_.store->LastEventIdBlocking();
  if (!last.ok()) return last.status();
  if (after > *last) {
    return InvalidArgumentError(
        "after_event_id", absl::StrCat("is beyond the last event_id ", *last));
  }
  absl::StatusOr<int64_t> pruned = deps_.store->MaxPrunedEventIdBlocking();
  if (!pruned.ok()) return pruned.status();
  if (after < *pruned) {
    Outgoing reset;
    reset.kind = Outgoing::Kind::kReset;
    reset.oldest_retained = *pruned;
    reset.reason = absl::StrCat(
        "retention deleted finished jobs with events up to event_id ", *pruned,
        "; every retained event after ", after, " follows");
    Push(std::move(reset));
  }
  SetCursor(after, /*read_log_first=*/true);
  return absl::OkStatus();
}

absl::StatusOr<WatchReactorCore::LogPage> WatchJobsCore::ReadLogBlocking(
    int64_t cursor, int limit, size_t max_bytes) {
  LogPage page;
  absl::StatusOr<std::vector<JobEvent>> events =
      deps_.store->ReadEventsBlocking(cursor, limit, max_bytes);
  if (!events.ok()) return events.status();
  page.at_end = AtLogEnd(*events, limit, max_bytes);
  page.events = *std::move(events);
  return page;
}

EventBus::ResumeResult WatchJobsCore::Resume(EventBus::Subscription* s,
                                             int64_t cursor) {
  return deps_.bus->ResumeAll(s, cursor);
}

bool WatchJobsCore::Wants(const JobEvent& event) const {
  return Matches(filter_, event);
}

}  // namespace jobwire
