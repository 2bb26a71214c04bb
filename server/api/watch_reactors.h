// The watches of WatchJob and WatchJobs: one core, any transport.
//
// WatchReactorCore is a watch: one EventBus subscription joined with the
// durable log. It writes to a WatchSink (watch_sink.h): the gRPC reactor
// made by StartWatchJobReactor / StartWatchJobsReactor, or the HTTP face's
// Server-Sent Events writer, which gets the core from NewWatchJob /
// NewWatchJobs (through JobServiceImpl::NewWatch) and calls Begin(sink).
// Everything below holds for both.
//
// A watch joins the durable log and the live EventBus with no gap and no
// duplicate, without a thread per stream and with bounded memory:
//
//  1. It subscribes to the bus *lagging* (nothing is pushed yet), then, on
//     the Executor, reads its starting point: the job's snapshot (WatchJob
//     without cursor) or the cursor (after_seq / after_event_id), checked
//     against the store.
//  2. Catch-up: it asks the bus to resume from its cursor (EventBus::ResumeJob
//     / ResumeAll). The bus either marks it live, atomically with the last
//     event it published, or replays the missed events from its ring, or says
//     the ring no longer reaches back; then one page of the durable log is
//     read on the Executor and the reactor tries again.
//  3. Live: OnEvent (on the store's commit-callback thread) appends each event
//     to the reactor's queue and starts a write if none is in flight. Events at
//     or below the cursor are dropped (committed, read from the log, then
//     published), so every event reaches the peer exactly once, in order.
//
// Bounded memory. The queue holds at most WatchOptions::buffer events and
// WatchOptions::buffer_bytes (ApproxBytes of its events and snapshots); a log
// page is read within the same room. When it is full, OnEvent refuses the
// event and the reactor is lagging again: the bus stops pushing, and once the
// peer has read half the queue the reactor catches up from the bus ring or
// the log, one page at a time. An event larger than buffer_bytes is taken
// when the queue is empty, so it goes out alone rather than wedging the
// watch. While the
// queue is at least half full, a progress event replaces a progress event of
// the same job still waiting in the queue (latest value wins; the replaced
// event's seq is skipped; state changes and other events are never dropped).
// A peer that does not take a write for WatchOptions::stall_timeout is
// finished with RESOURCE_EXHAUSTED (ErrorInfo reason "WATCHER_STALLED").
//
// Heartbeats, stall checks and draining are driven by the service through
// ServiceStream (Tick/Drain/Abort) with time from the injected Clock; every
// watch registers with the service's StreamRegistry, whatever its sink.
//
// Ending: WatchJob finishes OK right after writing a state_changed event to a
// terminal state (or a terminal snapshot). Both finish CANCELLED when the peer
// cancels, UNAVAILABLE at shutdown (after `draining`), and with the store's
// error (NOT_FOUND, INVALID_ARGUMENT, ...) when the start fails.
//
// Threads and locks. Sink reactions run on the sink's threads, OnEvent on the
// store's completion thread or idle writer (or inside a Resume call), reads on
// the Executor; none blocks except the Executor reads. Lock order:
// EventBus::mu_ and StreamRegistry::mu_ before WatchReactorCore::mu_; the
// reactor never calls the bus or the registry while holding mu_. One write in
// flight (the gRPC sink coalesces a burst of queued events into few socket
// writes, the last one never held back: server/api/write_coalescing.h);
// FinishWatch exactly once behind finished_.
//
// Lifetime: reference counted. The sink holds one reference until Done();
// each scheduled Executor task holds one. The last release unregisters,
// ends the bus subscription and deletes the core.
#ifndef JOBWIRE_SERVER_API_WATCH_REACTORS_H_
#define JOBWIRE_SERVER_API_WATCH_REACTORS_H_

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "jobwire/v1/job_service.grpc.pb.h"
#include "server/api/stream_registry.h"
#include "server/api/watch_sink.h"
#include "server/common/clock.h"
#include "server/common/executor.h"
#include "server/core/filter.h"
#include "server/core/job.h"
#include "server/events/event_bus.h"
#include "server/storage/job_store.h"

namespace jobwire {

struct WatchOptions {
  // Events queued per stream before it falls back to catching up.
  size_t buffer = 256;
  // Bytes (ApproxBytes) queued per stream before it falls back to catching
  // up; a single larger event still goes out, alone.
  size_t buffer_bytes = 8 << 20;
  // A `heartbeat` goes out when nothing was written for this long.
  absl::Duration heartbeat_interval = absl::Seconds(15);
  // A write the peer does not take for this long ends the stream with
  // RESOURCE_EXHAUSTED.
  absl::Duration stall_timeout = absl::Seconds(60);
};

// What every watch reactor needs; none owned.
struct WatchDeps {
  JobStore* store = nullptr;
  EventBus* bus = nullptr;
  Executor* executor = nullptr;
  Clock* clock = nullptr;
  StreamRegistry* registry = nullptr;
  WatchOptions options;
};

// A watch: queue, writes, catch-up, heartbeat, drain and lifetime. See the
// file comment. Made by NewWatchJob / NewWatchJobs.
class WatchReactorCore : public EventSubscriber, public ServiceStream {
 public:
  using Outgoing = WatchMessage;

  // Starts the watch on `sink` (not owned; it lives until it calls Done()):
  // registers with the service, subscribes to the bus and schedules the
  // start. Messages and the end go to the sink, maybe before Begin returns.
  // Call once.
  void Begin(WatchSink* sink);

  // The sink's reactions (watch_sink.h): a write ended; the peer went away;
  // the sink lets go of the core (the last call it makes).
  void WriteDone(bool ok);
  void Cancelled();
  void Done();

  // EventSubscriber.
  bool OnEvent(const JobEvent& event) override;
  // ServiceStream.
  void Tick(absl::Time now) override;
  void Drain(absl::Time deadline) override;
  void Abort(const absl::Status& status) override;
  size_t BufferedMessages() override;

 protected:
  // The result of one read of the log.
  struct LogPage {
    std::vector<JobEvent> events;
    // True when the read returned fewer events than asked: the log's end.
    bool at_end = false;
    // Set when the cursor is older than what the log holds: a `reset` and,
    // for WatchJob, a fresh snapshot follow; the cursor jumps there.
    std::optional<Outgoing> reset;
    std::optional<Job> snapshot;
  };

  explicit WatchReactorCore(const WatchDeps& deps);
  ~WatchReactorCore() override;

  // Hooks for the concrete reactor.
  // Whether the watch starts live at the bus's last event (WatchJobs without
  // a cursor); then StartBlocking is not run.
  virtual bool StartsLive() const = 0;
  // Subscribes this to the bus, live when StartsLive(); a live subscription
  // sets `*cursor` to the bus's last event_id.
  virtual EventBus::Subscription* Subscribe(int64_t* cursor) = 0;
  // Runs on the Executor: checks the request against the store and fills the
  // first messages and the cursor. An error finishes the stream.
  virtual absl::Status StartBlocking() = 0;
  // Runs on the Executor: one page of the log after `cursor`, at most
  // `limit` events, ending with the one that reaches `max_bytes`.
  virtual absl::StatusOr<LogPage> ReadLogBlocking(int64_t cursor, int limit,
                                                  size_t max_bytes) = 0;
  virtual EventBus::ResumeResult Resume(EventBus::Subscription* s,
                                        int64_t cursor) = 0;
  // The cursor value of an event (seq or event_id).
  virtual int64_t CursorOf(const JobEvent& event) const = 0;
  // Whether the peer wants this event (WatchJobs filter).
  virtual bool Wants(const JobEvent& event) const = 0;
  // Whether this event is the last one of the stream (WatchJob: terminal).
  virtual bool Ends(const JobEvent& event) const = 0;
  // Whether live events must be contiguous (WatchJob: seq + 1).
  virtual bool Dense() const = 0;

  // For StartBlocking: queue a message / set the cursor / end after the queue.
  // `read_log_first`: the log may hold events after `cursor` that the bus
  // never published (older than the subscription); read it to its end
  // before resuming from the bus.
  void Push(Outgoing message) ABSL_LOCKS_EXCLUDED(mu_);
  void SetCursor(int64_t cursor, bool read_log_first) ABSL_LOCKS_EXCLUDED(mu_);
  void EndAfterQueue() ABSL_LOCKS_EXCLUDED(mu_);

  const WatchDeps deps_;

 private:
  void Ref() { refs_.fetch_add(1, std::memory_order_relaxed); }
  void Unref();
  // Runs `fn` on the Executor holding a reference; finishes the stream with
  // UNAVAILABLE when the Executor is shut down.
  void RunOnExecutor(std::function<void()> fn);
  void StartStep();
  void ReadStep();
  // Drives catch-up (see the file comment). Takes no lock on entry.
  void CatchUp() ABSL_LOCKS_EXCLUDED(mu_);

  // Takes an event from the log or the bus. False when it does not fit.
  bool AcceptLocked(const JobEvent& event, bool from_log)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void PumpLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Queues `m` (at the back, or at the front) and counts its bytes.
  void EnqueueLocked(Outgoing m, bool front = false)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Whether the queue is at least half full, in events or in bytes.
  bool HalfFullLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void FinishLocked(const absl::Status& status)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  std::atomic<int> refs_{1};  // the sink's, released in Done()
  EventBus::Subscription* subscription_ = nullptr;  // set once in Begin()
  WatchSink* sink_ = nullptr;                       // set once in Begin()

  absl::Mutex mu_;
  std::deque<Outgoing> queue_ ABSL_GUARDED_BY(mu_);
  size_t queue_bytes_ ABSL_GUARDED_BY(mu_) = 0;  // BytesOf the queued
  Outgoing in_flight_ ABSL_GUARDED_BY(mu_);
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  bool started_ ABSL_GUARDED_BY(mu_) = false;
  bool end_after_queue_ ABSL_GUARDED_BY(mu_) = false;
  // The bus does not push to us; catch-up must run.
  bool lagging_ ABSL_GUARDED_BY(mu_) = true;
  // The log must be read to its end before the bus can resume us.
  bool read_log_first_ ABSL_GUARDED_BY(mu_) = false;
  // A Resume call or a log read is under way.
  bool catching_up_ ABSL_GUARDED_BY(mu_) = false;
  // The last seq / event_id taken (queued or skipped as unwanted).
  int64_t cursor_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Time write_started_ ABSL_GUARDED_BY(mu_);
  absl::Time last_write_ ABSL_GUARDED_BY(mu_);
};

// Validate a request (INVALID_ARGUMENT with the field: the id, a negative
// cursor, a WatchJobs filter that does not parse or uses fields a live event
// does not carry) and make its watch, which does nothing until Begin(sink).
// WatchJob: one job by id, cursor seq, ends after the terminal event.
// WatchJobs: every job matching a filter, cursor event_id.
absl::StatusOr<WatchReactorCore*> NewWatchJob(
    const WatchDeps& deps, const v1::WatchJobRequest& request);
absl::StatusOr<WatchReactorCore*> NewWatchJobs(
    const WatchDeps& deps, const v1::WatchJobsRequest& request);

// The gRPC methods: a watch on a gRPC write reactor (the sink), or a reactor
// that finishes at once with the request's error. The reactor deletes itself
// after OnDone.
grpc::ServerWriteReactor<v1::WatchJobResponse>* StartWatchJobReactor(
    const WatchDeps& deps, const v1::WatchJobRequest& request);
grpc::ServerWriteReactor<v1::WatchJobsResponse>* StartWatchJobsReactor(
    const WatchDeps& deps, const v1::WatchJobsRequest& request);

// A watch message as either response (both carry the same oneof).
void WatchMessageToProto(const WatchMessage& message,
                         v1::WatchJobResponse* out);
void WatchMessageToProto(const WatchMessage& message,
                         v1::WatchJobsResponse* out);

}  // namespace jobwire

#endif  // JOBWIRE_SERVER_API_WATCH_REACTORS_H_
