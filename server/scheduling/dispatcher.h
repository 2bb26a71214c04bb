// Dispatcher: hands QUEUED jobs to connected workers, holds their leases,
// and runs the timers of scheduled jobs, backoffs, leases and attempt
// timeouts.
//
// How it learns: it is a CommitListener of the JobStore. Every committed
// state change updates the in-memory ready index (per queue and kind,
// priority then age) and the timer heap; nothing polls SQLite. At start-up
// RecoverBlocking() rebuilds both from the store's active jobs.
//
// How it assigns: one loop thread serves every queue. For each worker session
// with a free slot, in turn, it picks one of the session's queues that has
// work of a kind the worker runs, by smooth weighted round robin (FairChoice),
// below the queue's concurrency limit, and takes the best job of it. The
// job's slot is reserved at once and worker_transitions::Assign is submitted
// to the store (many Assigns in flight, so the store's group commit batches
// them). When the Assign commits, the `assign` goes to the worker's
// connection; when it fails (the job was cancelled or paused meanwhile) the
// slot is freed and the job dropped.
//
// Leases: each attempt's lease lasts `lease_ttl` after the later of its start
// and the last message from the worker (Touch). Leases and attempt timeouts
// run on the clock's monotonic timeline, so a step of the system clock
// neither expires nor extends them; schedule times, backoffs and timed queue
// pauses are wall-clock times (stored, and set by clients) and follow it. An
// expired lease tells the worker `cancel` and requeues the job (ExpireLease); a
// closed session releases its leases at once (ReleaseLease, "worker
// disconnected"); an attempt past the job's attempt_timeout is cancelled and
// retried with backoff. A session that lost a lease to silence gets no new work
// until it sends something again. A lease ends, and its slot is freed, when the
// store commits the job's move out of RUNNING, whoever caused it.
//
// Gates: the durable dispatch and queue pauses, concurrency limits and
// weights live in DispatchGates (dispatch_gates.h), under mu_; the ...Blocking
// setters below write them through the store. Explain() gathers its facts
// under mu_ and words them outside it (explain.h).
//
// Fencing: worker reports name (job, attempt). A report from a session that
// does not hold that attempt's live lease is refused with ABORTED before it
// reaches the store, and the store-side mutation checks again.
//
// Thread-safety: every public method is thread-safe and never blocks on I/O
// (except those named ...Blocking). Store callbacks (OnCommit and the `done`s
// of its mutations) run on the store's completion thread, or on its writer
// when that is idle (job_store.h), so they never wait for a store write; its
// mutations run on the store's writer thread and only read the job they are
// given.
// WorkerConnection methods are called with the dispatcher's mutex held (lock
// order: Dispatcher::mu_ before the connection's own lock). Work that needs no
// shared state stays outside mu_: an assign's message is built before it is
// taken (AssignEncoder), ExplainJob's words after it is released.
// Ownership: store, clock and random are not owned and must outlive it.
#ifndef JOBWIRE_SERVER_SCHEDULING_DISPATCHER_H_
#define JOBWIRE_SERVER_SCHEDULING_DISPATCHER_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/node_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/common/clock.h"
#include "server/core/job.h"
#include "server/core/job_change.h"
#include "server/core/retry.h"
#include "server/core/worker_transitions.h"
#include "server/scheduling/dispatch_gates.h"
#include "server/scheduling/explain.h"
#include "server/scheduling/fair_choice.h"
#include "server/scheduling/ready_index.h"
#include "server/scheduling/timer_heap.h"
#include "server/storage/job_store.h"

namespace jobwire {

struct DispatcherOptions {
  // How long a lease lasts without a message from its worker.
  absl::Duration lease_ttl = absl::Seconds(30);
  // Per-queue limit of running jobs (leases); absent or <= 0: unlimited.
  std::map<std::string, int32_t> queue_concurrency;
  // Per-queue weight used when a worker gives none; absent: 1.
  std::map<std::string, int32_t> queue_weights;
  // Assign mutations in flight at once (a bound on memory, not on speed).
  int max_assigns_in_flight = 8192;
};

struct WorkerQueueSpec {
  std::string name;
  int32_t weight = 0;  // 0: the queue's default weight
};

// What a worker declares in its hello.
struct WorkerHello {
  std::string worker_id;
  std::vector<WorkerQueueSpec> queues;  // empty: {"default"}
  std::vector<std::string> kinds;       // empty: every kind
  int32_t slots = 1;
};

// An `assign` in the wire form of the connection that sends it, made by that
// connection's AssignEncoder.
class EncodedAssign {
 public:
  virtual ~EncodedAssign() = default;
};

// Builds the wire form of `assign` messages for one kind of connection: the
// CPU cost of an assign (the job, its args JSON and labels, into the
// message). The Dispatcher calls it without holding its lock, on the store's
// completion thread, once the job's Assign committed. Thread-safe and
// stateless; it must outlive the Dispatcher (connections return a shared,
// never-destroyed instance).
class AssignEncoder {
 public:
  virtual ~AssignEncoder() = default;
  virtual std::unique_ptr<EncodedAssign> Encode(
      const Job& job, absl::Time lease_deadline) const = 0;
};

// An assign that is the committed Job itself, for connections that want the
// Job rather than a wire message (tests, in-process consumers).
struct JobAssign final : EncodedAssign {
  Job job;
  absl::Time lease_deadline;
};
// The encoder of JobAssigns. Never destroyed.
const AssignEncoder& JobAssignEncoder();

// The sending side of one worker session, implemented by the stream reactor
// in api/. The Send... methods and EndSession are called with the
// Dispatcher's mutex held: implementations queue the message and return;
// they must not block or call into the Dispatcher.
//
// Ordering: a job's assign is queued in the same critical section that makes
// its lease live, and every cancel or pause of that job is queued later under
// the same mutex (only a live lease is told), so a connection that writes its
// queue in order delivers the assign first.
class WorkerConnection {
 public:
  virtual ~WorkerConnection() = default;
  // The encoder of this connection's assigns (read with the Dispatcher's
  // mutex held; see AssignEncoder for its lifetime).
  virtual const AssignEncoder& assign_encoder() const = 0;
  // `assign` was made by assign_encoder().
  virtual void SendAssign(std::unique_ptr<EncodedAssign> assign) = 0;
  virtual void SendCancel(const std::string& job_id, int32_t attempt,
                          const std::string& reason) = 0;
  virtual void SendPause(const std::string& job_id, int32_t attempt) = 0;
  virtual void SendDrain(absl::Time deadline) = 0;
  // While draining: the session holds no lease any more, so its stream may
  // end (with UNAVAILABLE, after the queued messages).
  virtual void EndSession() = 0;
};

struct DispatcherStats {
  int64_t sessions = 0;
  int64_t ready = 0;      // jobs in the ready index
  int64_t leases = 0;     // reserved or running
  int64_t scheduled = 0;  // waiting for schedule time or backoff
  int64_t assigned = 0;   // assigns sent since start
  // Slots of the connected sessions not holding a lease (a silent session's
  // too: it gets work again once heard).
  int64_t free_slots = 0;
  int64_t lease_expiries = 0;  // leases ended by silence since start
};

// Told of every job handed to a worker, with mu_ of the Dispatcher held:
// implementations must return at once (no I/O, no call into the Dispatcher).
class AssignObserver {
 public:
  virtual ~AssignObserver() = default;
  // `ready_to_assigned`: from the commit that made the job ready (or the
  // timer that did) to its `assign` being sent.
  virtual void OnAssigned(const std::string& queue,
                          absl::Duration ready_to_assigned) = 0;
};

class Dispatcher final : public CommitListener {
 public:
  Dispatcher(JobStore* store, Clock* clock, RandomSource* random,
             DispatcherOptions options);
  // Stops the loop if it still runs.
  ~Dispatcher() override;
  Dispatcher(const Dispatcher&) = delete;
  Dispatcher& operator=(const Dispatcher&) = delete;

  // Loads the active jobs: QUEUED into the index, SCHEDULED onto the timer
  // heap, and RUNNING ones (their workers are gone with the previous process)
  // released back to QUEUED ("server restarted"), or to CANCELLED / PAUSED
  // when a cancel / pause was pending. Also loads the durable gates (dispatch
  // pause, queue rows). Call once, after the
  // Dispatcher is registered as a CommitListener and before Start().
  absl::Status RecoverBlocking();

  // Starts / stops the dispatch loop thread. Stop() is idempotent; mutations
  // already submitted still complete.
  void Start();
  void Stop();

  // CommitListener. Runs on the store's completion thread; only updates
  // memory.
  void OnCommit(const std::vector<JobEvent>& events) override;

  // Makes the loop re-read the clock now (tests call it after advancing a
  // FakeClock; timers are otherwise re-checked at their deadline).
  void Wake();

  // --- Worker sessions (called by the WorkerService stream) ---

  // Opens a session. INVALID_ARGUMENT for slots < 1 or an empty worker id;
  // UNAVAILABLE while draining. `conn` is not owned and must stay valid
  // until CloseSession returns.
  absl::StatusOr<int64_t> AddSession(const WorkerHello& hello,
                                     WorkerConnection* conn);
  // Closes a session: its running jobs are released at once ("worker
  // disconnected"; a job with a pending cancel ends CANCELLED; while
  // draining, "server shutting down", which does not count as a failed
  // attempt). After it returns `conn` is never called again. Idempotent.
  void CloseSession(int64_t session);
  // Renews every lease of the session (any message from the worker); a
  // session that lost a lease to silence gets work again.
  void Touch(int64_t session);
  // Adds slots to a session; a negative count withdraws slots (a worker that
  // drains sends -slots). The session never has fewer than 0 slots.
  void AddSlots(int64_t session, int32_t slots);

  // Worker reports. `done` gets OK once the change is durable, ABORTED when
  // the session does not hold the attempt's lease, or the store's error.
  void ReportProgress(int64_t session, const std::string& job_id,
                      int32_t attempt, const Progress& progress,
                      const std::string& log_line, StatusCallback done);
  void Complete(int64_t session, const std::string& job_id, int32_t attempt,
                const JobResult& result, StatusCallback done);
  void Fail(int64_t session, const std::string& job_id, int32_t attempt,
            const JobError& error, StatusCallback done);
  void Checkpoint(int64_t session, const std::string& job_id, int32_t attempt,
                  const std::string& data, bool release, StatusCallback done);
  // An ack of our cancel or pause. With `stopped` the job ends CANCELLED (or
  // PAUSED); without it nothing changes. FAILED_PRECONDITION when neither a
  // cancel nor a pause was asked of this attempt.
  void Ack(int64_t session, const std::string& job_id, int32_t attempt,
           bool stopped, StatusCallback done);

  // --- Job control (called by JobService) ---

  // Asks the worker of a RUNNING job to stop: `cancel` goes over its stream;
  // the job ends CANCELLED on the worker's ack or when the lease ends.
  // `done` gets the job as it is (still RUNNING), NOT_FOUND, or
  // FAILED_PRECONDITION when the job is not RUNNING (cancel it with
  // core/transitions instead). The request is committed with the job
  // (Job::stop_request, an `updated` event) before the worker is told, so a
  // server restart ends the job CANCELLED instead of requeueing it.
  void RequestCancel(const std::string& job_id, const std::string& reason,
                     JobCallback done);
  // Reads the durable gates (dispatch pause, queue rows) from the store:
  // at recovery, and when another node changed them (several nodes on one
  // database). Blocking (store reads); the store's error when a read fails.
  absl::Status ReloadGatesBlocking();

  // Hands back the lease of a RUNNING job whose node died (several nodes on
  // one database: the store's orphan handler): requeued (or ended CANCELLED
  // / PAUSED when that was requested) by a Mutate that checks `attempt`, so
  // it happens once whichever nodes try. Non-blocking.
  void HandBackOrphan(const std::string& job_id, int32_t attempt);

  // Asks the worker of a RUNNING job to pause (checkpoint with release, or
  // ack). Same contract as RequestCancel; a pending pause makes any end of
  // the lease (a restart too) leave the job PAUSED.
  void RequestPause(const std::string& job_id, JobCallback done);

  // Every reason `job` (as just read from the store) is not running now;
  // empty when it is about to run.
  std::vector<ExplainGate> Explain(const Job& job);

  // --- Gates (called by AdminService) ---
  //
  // The gates are durable: the ...Blocking setters write the store (the
  // "dispatch.paused" setting, the queues table) and wait for the commit
  // before the gate changes in memory, so a gate that was answered OK
  // survives a restart (RecoverBlocking loads them). Setters are serialised
  // with each other (lock order: gate_mu_ before mu_). They block on the
  // store: call them from the Executor, never from a gRPC thread. They fail
  // with the store's error, and change nothing then.

  // Pauses (or resumes) every new assignment, server-wide. Submissions are
  // still taken and running jobs go on. `reason` is kept while paused.
  absl::Status SetDispatchPausedBlocking(bool paused,
                                         const std::string& reason);
  struct DispatchPause {
    bool paused = false;
    std::string reason;
  };
  DispatchPause dispatch_pause();

  // Rewrites the settings of queue `name`: `edit` gets the queue's current
  // settings (the stored row, or the defaults from DispatcherOptions) and
  // changes them; the result is stored and applied. A pause with a
  // resume_time ends by itself at that time (by the injected clock); until
  // then it holds. Returns the row as stored.
  absl::StatusOr<QueueRow> UpdateQueueBlocking(
      const std::string& name, const std::function<void(QueueRow*)>& edit);

  // What the dispatcher knows of one queue, for ListQueues.
  struct QueueView {
    // Effective settings: paused is false (and resume_time InfinitePast)
    // once a timed pause has ended.
    QueueRow settings;
    bool stored = false;  // the queue has a row in the store
    int32_t workers = 0;  // connected sessions serving it
    // Slots of those sessions not holding a lease (as DispatcherStats'
    // free_slots); a session serving several queues counts in each.
    int32_t free_slots = 0;
    int32_t running = 0;  // leases (reserved or running)
    int64_t finished_last_minute = 0;
  };
  // Every queue with a stored row, a connected worker, or jobs that the
  // dispatcher saw finish in the last minute, ordered by name; plus `also`
  // (queues the caller knows from elsewhere, e.g. job counts).
  std::vector<QueueView> Queues(const std::vector<std::string>& also);

  // --- Shutdown (called by WorkerService::Shutdown) ---

  // Stops assigning and sends `drain` with `deadline` to every session;
  // sessions without leases (now or later) are ended (EndSession).
  void Drain(absl::Time deadline);
  // Number of leases (reserved or running).
  int64_t LeaseCount();
  // Waits (real time, at most `timeout`) until no lease is left; true if so.
  bool AwaitNoLeasesBlocking(absl::Duration timeout);
  // Releases every lease back to QUEUED ("server shutting down") and waits
  // (at most `timeout`) until the store committed them. True when none is
  // left.
  bool ReleaseAllLeasesBlocking(absl::Duration timeout);

  DispatcherStats Stats();
  // Sets the observer of assignments (not owned; must outlive the
  // Dispatcher, or be removed with null first).
  void SetAssignObserver(AssignObserver* observer);
  // Dispatch latencies (ready commit -> assign sent) recorded since the last
  // call, at most 1,000,000 of them.
  std::vector<absl::Duration> TakeLatencySamples();

  absl::Duration lease_ttl() const { return options_.lease_ttl; }

 private:
  struct Session {
    int64_t id = 0;
    std::string worker_id;
    std::vector<WorkerQueueSpec> queues;
    std::set<std::string> kinds;  // empty: all
    int32_t slots = 0;
    int32_t used = 0;       // leases held (reserved or running)
    absl::Time last_heard;  // Clock::Monotonic
    // Lost a lease to silence: gets no work until it sends something.
    bool silent = false;
    WorkerConnection* conn = nullptr;
    FairChoice choice;
  };
  struct Lease {
    std::string job_id;
    std::string queue;
    int64_t session = 0;  // 0 once its session closed
    std::string worker_id;
    int32_t attempt = 0;  // known once the Assign committed
    bool active = false;  // Assign committed (and assign sent)
    bool ending = false;  // a mutation that ends it is in flight
    absl::Time started;   // Clock::Monotonic
    bool cancel_requested = false;
    std::string cancel_reason;
    bool pause_requested = false;
  };
  // Pointer-stable: Lease pointers and references are held across inserts.
  using LeaseMap = absl::node_hash_map<std::string, Lease>;
  // Work the loop does outside the lock.
  struct Action {
    std::string job_id;
    JobMutation mutation;
    JobCallback done;
  };

  void Loop();
  // Sends a cancel or pause another node committed (a remote `updated`
  // event) to the worker holding the job here, if any.
  void ForwardRemoteStopLocked(const JobEvent& e)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Puts the jobs held for `queue`'s limit back in the ready index.
  void ReleaseHeldLocked(const std::string& queue)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Pops due timers and turns them into actions: wall-clock timers due at
  // `now`, lease and attempt timers due at `monotonic` (Clock::Monotonic).
  void RunTimersLocked(absl::Time now, absl::Time monotonic,
                       std::vector<Action>* actions)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // True when a session has a free slot, so a newly ready job may be
  // assigned by a pass now. Without one a pass would find nothing: whatever
  // frees a slot (a session's hello or credits, a lease ending, a silent
  // session heard again) marks the dispatcher dirty itself.
  bool AnySessionHasRoomLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Picks jobs for free slots.
  void DispatchLocked(absl::Time now, std::vector<Action>* actions)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The Assign of `job_id`, reserved for `session`, committed (or failed).
  // Builds the assign with `encoder` (the session's) before taking mu_.
  void OnAssignDone(int64_t session, const ReadyJob& ready,
                    const AssignEncoder* encoder, absl::StatusOr<Job> result);
  // Ends `lease` with `cause` through the store (queued as an action).
  void EndLeaseLocked(Lease* lease, worker_transitions::LeaseEndCause cause)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void RemoveLeaseLocked(const std::string& job_id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The same for a lease already found (no second lookup).
  void RemoveLeaseLocked(LeaseMap::iterator it)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // OK when `session` holds the live lease of (job_id, attempt).
  absl::Status CheckLeaseLocked(int64_t session, const std::string& job_id,
                                int32_t attempt)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Checks the lease, then submits `mutation`; `done` gets its status.
  void Report(int64_t session, const std::string& job_id, int32_t attempt,
              JobMutation mutation, StatusCallback done);
  // Leases (reserved or running) of `queue`.
  int32_t QueueLeasesLocked(const std::string& queue) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Puts a stored queue row in force (and arms the timer of a timed pause).
  void ApplyQueueRowLocked(const QueueRow& row)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Counts a job of `queue` that finished at `now` (finished_last_minute).
  void CountFinishedLocked(const std::string& queue, absl::Time now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  int64_t FinishedLastMinuteLocked(const std::string& queue,
                                   absl::Time now) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Submit(std::vector<Action> actions);
  // RequestCancel (cancel) or RequestPause (!cancel).
  void RequestStop(const std::string& job_id, bool cancel,
                   const std::string& reason, JobCallback done);

  JobStore* const store_;
  Clock* const clock_;
  RandomSource* const random_;
  const DispatcherOptions options_;

  // Serialises the gate setters (taken before mu_, held across the store
  // write).
  absl::Mutex gate_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  absl::Mutex mu_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  bool dirty_ ABSL_GUARDED_BY(mu_) = true;
  bool draining_ ABSL_GUARDED_BY(mu_) = false;
  // Leases are being released for shutdown: new ones end at once.
  bool releasing_ ABSL_GUARDED_BY(mu_) = false;
  DispatchGates gates_ ABSL_GUARDED_BY(mu_);
  // Jobs finished per queue in each of the last 60 seconds: second -> count.
  std::map<std::string, std::map<int64_t, int64_t>> finished_
      ABSL_GUARDED_BY(mu_);
  // The ready jobs, each with when it became ready.
  ReadyIndex index_ ABSL_GUARDED_BY(mu_);
  // Wall-clock timers: schedule times, backoffs, timed queue pauses.
  TimerHeap timers_ ABSL_GUARDED_BY(mu_);
  // Lease and attempt-timeout timers, on the monotonic timeline.
  TimerHeap lease_timers_ ABSL_GUARDED_BY(mu_);
  // SCHEDULED jobs and when they are due.
  absl::flat_hash_map<std::string, absl::Time> scheduled_ ABSL_GUARDED_BY(mu_);
  std::map<int64_t, Session> sessions_ ABSL_GUARDED_BY(mu_);
  int64_t next_session_ ABSL_GUARDED_BY(mu_) = 1;
  int64_t rr_cursor_ ABSL_GUARDED_BY(mu_) = 0;
  LeaseMap leases_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, int32_t> queue_leases_ ABSL_GUARDED_BY(mu_);
  // Ready jobs whose Assign the store refused because their queue is at its
  // concurrency limit across nodes (RESOURCE_EXHAUSTED), by queue: back in
  // the index when a job of the queue leaves RUNNING (on any node) or the
  // queue's settings change.
  std::map<std::string, std::vector<ReadyJob>> held_ ABSL_GUARDED_BY(mu_);
  int assigns_in_flight_ ABSL_GUARDED_BY(mu_) = 0;
  // Mutations raised under mu_ (also in store callbacks, on the store's
  // completion thread), submitted by the loop.
  std::vector<Action> deferred_ ABSL_GUARDED_BY(mu_);
  int64_t assigned_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t lease_expiries_ ABSL_GUARDED_BY(mu_) = 0;
  AssignObserver* assign_observer_ ABSL_GUARDED_BY(mu_) = nullptr;
  std::vector<absl::Duration> latencies_ ABSL_GUARDED_BY(mu_);

  std::thread loop_;
};

}  // namespace jobwire

#endif  // JOBWIRE_SERVER_SCHEDULING_DISPATCHER_H_
