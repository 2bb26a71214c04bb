// GroupCommit: the write path of a JobStore, apart from its database. It
// implements the write half of job_store.h's contract (queue, group commit,
// ordered answers, shutdown) over any database that has transactions and
// savepoints; the backend (SqliteJobStore's writer, a PostgreSQL one) only
// runs requests and statements.
//
// How it is used. The store makes one GroupCommit over its Transaction (the
// writing connection), Start()s it once the database is open, turns each
// write into a Request and Enqueue()s it; Shutdown() before it closes the
// connection.
//
// What it does. One writer thread (`jw-writer`) takes every pending request
// (up to Options::max_batch_jobs jobs or max_batch_bytes bytes; a single
// request above the caps still goes in, alone), runs them in ONE transaction
// (Transaction::Begin, then Apply for each) and commits once. A request that
// fails alone is answered with its error while the others commit: when it
// failed before writing, nothing is undone; when it wrote part of its rows,
// the writer rolls the transaction back and runs the batch again with one
// savepoint per request (savepoints cost the backend work, so only the rerun
// pays for them), undoing the failed request's savepoint alone. A failed
// COMMIT, or a failure after which the backend lost the whole transaction,
// answers every request of the batch with that error: nothing is
// acknowledged that is not durable.
//
// After each commit the writer hands the batch to the completion thread
// (`jw-complete`) and goes on with the next one. The completion thread gives
// the commit's events to the CommitListeners, in registration order, and
// only then runs each request's Finish, in queue order; commits are
// completed one after the other in commit order. At most
// kMaxPendingCompletions commits wait for it; when that many do, the writer
// waits (its queue, and the next batch, grow). When the completion thread is
// idle and either nothing else is queued or the commit is small and every
// request is Request::light_finish (Options::complete_on_idle_writer,
// inline_completion_items), the writer completes the commit itself: one
// thread wake-up less per commit, same order.
//
// Bulk requests (Request::bulk) never share a transaction with small ones,
// and give way to them: small requests queued behind a bulk one go first;
// after a small commit, with a bulk request waiting, the writer waits up to
// 1 ms for the next small request (a client writing in a loop sends it right
// after its answer), at most 8 small batches per bulk request, so a bulk
// request is held up a bounded time. A bulk transaction goes on with the
// next queued bulk request after each one it applied, while no small request
// is queued and its jobs stay within Options::max_bulk_jobs: one commit (one
// fsync) for several chunks, and a small request that arrives meanwhile
// waits for the request being applied and that commit, no more.
//
// Threads. Enqueue, AddCommitListener, SetCommitObserver, write_stats and
// Shutdown are thread-safe. Transaction methods and Request::Apply (through
// Transaction::Apply) run on the writer thread only; listeners and
// Request::Finish run on the completion thread, or on the writer when it
// completes a commit itself, never two at once. The CommitObserver runs on
// the writer right after each COMMIT. Finish and listeners must not block
// (they hold up every later commit's answers) and must not call Shutdown()
// (it joins the thread they run on); they may Enqueue new requests, which
// go in a later batch (or, once Shutdown started, are answered at once with
// UNAVAILABLE).
//
// Ownership. The GroupCommit owns its threads and the requests it was
// given; the Transaction, the Clock, listeners and the observer are not
// owned and must outlive it (or Shutdown, for the Transaction).
#ifndef JOBWIRE_SERVER_STORAGE_GROUP_COMMIT_H_
#define JOBWIRE_SERVER_STORAGE_GROUP_COMMIT_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/common/clock.h"
#include "server/core/job.h"
#include "server/storage/job_store.h"

namespace jobwire {

class GroupCommit {
 public:
  // One queued write. The backend subclasses it with what its Apply needs
  // (GroupCommit never looks inside; Transaction::Apply runs it); Finish
  // answers the caller.
  class Request {
   public:
    virtual ~Request() = default;
    // Gets the request's own error (from Transaction::Apply), else the
    // batch's (a failed COMMIT, a lost transaction), else OK once the
    // commit is durable; or UNAVAILABLE when it was enqueued after Shutdown
    // started (then on the caller's thread, inside Enqueue). Called exactly
    // once per request; see the class comment for the thread.
    virtual void Finish(absl::Status status) = 0;

    // Set by the backend before Enqueue. What the request weighs against
    // the batch caps: jobs it writes, and payload bytes.
    int64_t jobs = 1;
    int64_t bytes = 0;
    // Finish only answers its caller (e.g. a Submit): cheap enough for the
    // writer to run between two transactions (Options::
    // inline_completion_items).
    bool light_finish = false;
    // Committed alone (a BulkWrite chunk): see the class comment.
    bool bulk = false;

   private:
    friend class GroupCommit;
    absl::Time queued_;  // when Enqueue took it (WriteStats::queue_wait)
  };

  // The backend's write connection, driven by the writer thread: one
  // transaction at a time, Begin, then Apply (between Savepoint and
  // ReleaseSavepoint or RollbackToSavepoint on a rerun) for each request,
  // then Commit and Committed, or Rollback. Methods that return a status
  // return the backend's error mapped (UNAVAILABLE for busy, ...); none
  // throws.
  class Transaction {
   public:
    // What a request that failed left in the transaction.
    enum class Residue {
      // Nothing: it failed before its first write, or the database undid
      // its failed statement itself. The batch goes on.
      kNone,
      // Some of its writes. Without a savepoint to undo them alone, the
      // writer rolls the transaction back and reruns the batch with
      // savepoints. (A PostgreSQL transaction in the aborted state after a
      // failed statement is this too.)
      kPartial,
      // The database rolled the whole transaction back (SQLite on a full
      // disk or an I/O error): every request of the batch fails with the
      // request's error.
      kLost,
    };

    virtual ~Transaction() = default;
    // Starts a write transaction. `now` is the batch's time, the one its
    // requests see (e.g. create_time of submitted jobs). An error fails
    // every request of the batch (Rollback follows).
    virtual absl::Status Begin(absl::Time now) = 0;
    // Runs `request` (one that this backend enqueued, so it may
    // static_cast it to its own type) and completes its writes (e.g.
    // flushes rows it buffered). On an error the writer then calls Failed().
    virtual absl::Status Apply(Request& request) = 0;
    // Right after a Begin that succeeded, before the first Apply: lets the
    // backend read at once what the batch's requests will read (their rows,
    // in one statement rather than one each). An error fails the batch as
    // Begin's does. Default: nothing.
    virtual absl::Status Prefetch(
        const std::vector<std::unique_ptr<Request>>& batch) {
      return absl::OkStatus();
    }
    // Right after Apply (or ReleaseSavepoint) failed: drops what the backend
    // holds in memory of that request alone (its events, cached rows,
    // counters; the backend marks them at the start of each Apply), and says
    // what the request left in the transaction.
    virtual Residue Failed() = 0;
    // On a rerun, around each request: a savepoint before Apply;
    // after an Apply that succeeded, its release; after one that failed,
    // the undo of its writes and the end of the savepoint. An error fails
    // the batch.
    virtual absl::Status Savepoint() = 0;
    virtual absl::Status ReleaseSavepoint() = 0;
    virtual absl::Status RollbackToSavepoint() = 0;
    // Commits. On an error, Rollback follows.
    virtual absl::Status Commit() = 0;
    // After a Commit that succeeded: publishes what the backend keeps in
    // memory of the transaction (caches, counters), and moves the
    // transaction's events, in event_id order, into `events` (empty on
    // entry; the backend may swap it with its own emptied vector, to keep
    // the capacity), for the CommitListeners. Must not fail.
    virtual void Committed(std::vector<JobEvent>* events) = 0;
    // Ends the transaction without committing, if one is open, and forgets
    // what the backend holds of it in memory. Before a rerun, and after
    // every failed batch (a failed Begin, a lost transaction, a failed
    // Commit...). Must not fail (errors are the backend's to log).
    virtual void Rollback() = 0;
    // Between two batches, outside any transaction, after the first one
    // was handed off: the backend's housekeeping (SQLite's WAL checkpoint).
    virtual void BetweenBatches() {}
  };

  struct Options {
    // Not owned. Null means Clock::Real().
    Clock* clock = nullptr;
    // Group commit caps, per transaction.
    int max_batch_jobs = 2000;
    int64_t max_batch_bytes = 8 << 20;
    // Jobs of the bulk requests one transaction takes (see the class
    // comment); a first bulk request above it still goes in, alone. 0 or
    // less: each bulk request commits alone.
    int64_t max_bulk_jobs = 4000;
    // See the class comment: the writer completes a commit itself when the
    // completion thread is idle and nothing is queued, or the commit has at
    // most inline_completion_items requests plus events, all light_finish.
    bool complete_on_idle_writer = true;
    int inline_completion_items = 128;
  };

  // Commits handed off by the writer and not yet taken by the completion
  // thread; the writer waits while this many are pending.
  static constexpr size_t kMaxPendingCompletions = 2;

  // `transaction` is not owned; it is used from Start() to Shutdown().
  GroupCommit(Options options, Transaction* transaction);
  // Runs Shutdown().
  ~GroupCommit();
  GroupCommit(const GroupCommit&) = delete;
  GroupCommit& operator=(const GroupCommit&) = delete;

  // Starts the writer and completion threads. Call once, before the first
  // Enqueue can be taken (requests enqueued earlier wait for it).
  void Start();

  // Queues `request`; it is answered exactly once through its Finish. After
  // Shutdown started, Finish(UNAVAILABLE) runs at once on this thread.
  void Enqueue(std::unique_ptr<Request> request);

  // See JobStore::AddCommitListener (not owned; call before the first
  // write, a later one is logged and takes effect from the next batch).
  void AddCommitListener(CommitListener* listener);
  // See SqliteJobStore::SetCommitObserver: takes effect from the next batch.
  void SetCommitObserver(CommitObserver* observer);

  // Stops taking requests, commits what is queued, answers every request
  // exactly once and joins both threads: no listener or Finish runs after
  // it returns. Idempotent. Must not run on the writer or completion thread
  // (from a Finish or a listener).
  void Shutdown();

  // Totals so far (atomic reads), from any thread. Counted before a
  // commit's hand-off, so they include a commit when its Finish runs.
  WriteStats write_stats() const;
  // Batches run a second time, with savepoints.
  int64_t rerun_batches() const {
    return rerun_batches_.load(std::memory_order_relaxed);
  }

 private:
  // One batch, from the writer to the completion thread: the requests, each
  // one's final status, the commit's events (empty when it failed) and the
  // listeners as of the batch. Emptied and reused: the vectors keep their
  // capacity, so a batch of a thousand requests allocates nothing.
  struct Completion {
    std::vector<std::unique_ptr<Request>> requests;
    std::vector<absl::Status> results;
    std::vector<JobEvent> events;
    std::vector<CommitListener*> listeners;
  };
  // What ApplyBatch leaves for RunBatch.
  enum class Applied { kDone, kRerun };

  void WriterLoop();
  // Writer: moves the next batch from queue_ into `c`; false when stopping
  // with nothing queued.
  bool TakeBatch(Completion& c);
  // Writer, during the first run of a bulk batch: moves the next queued
  // request into `c` when it is a bulk one, no small request is queued and
  // the batch's jobs stay within max_bulk_jobs (`jobs` counts them); false
  // otherwise.
  bool TakeMoreBulk(Completion& c, int64_t& jobs);
  // Writer: applies and commits `c.requests`, and fills `c.results` and,
  // when the commit succeeded, `c.events`.
  void RunBatch(Completion& c);
  // Writer: begins a transaction at `now` and applies every request of `c`,
  // each inside its own savepoint when `savepoints`. kRerun (with the
  // transaction rolled back) when, without savepoints, a request failed
  // after writing; kDone otherwise, with the transaction open unless
  // `batch_status` is an error.
  Applied ApplyBatch(Completion& c, absl::Time now, bool savepoints,
                     absl::Status& batch_status);
  // Writer: queues `c` for the completion thread (waiting while
  // kMaxPendingCompletions are pending), or runs it itself (see
  // CompletesOnWriter), and returns an empty Completion for the next batch.
  std::unique_ptr<Completion> HandOff(std::unique_ptr<Completion> c);
  bool CompletesOnWriter(const Completion& c);
  // Listeners, then every Finish, then empties `c`. One at a time, in
  // commit order.
  void RunCompletion(Completion& c);
  void CompletionLoop();

  const Options options_;
  Clock* const clock_;
  Transaction* const txn_;

  // Lock order: mu_ and completion_mu_ are never held together; a Finish or
  // listener runs under neither.
  mutable absl::Mutex mu_;
  absl::CondVar work_cv_;
  std::deque<std::unique_ptr<Request>> queue_ ABSL_GUARDED_BY(mu_);
  std::vector<CommitListener*> listeners_ ABSL_GUARDED_BY(mu_);
  CommitObserver* observer_ ABSL_GUARDED_BY(mu_) = nullptr;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool started_ ABSL_GUARDED_BY(mu_) = false;  // a request was enqueued

  // Writer thread only: whether the last batch was of small requests, how
  // many small batches went while a bulk one waited, and the observer as of
  // the batch.
  bool last_batch_small_ = false;
  int small_batches_ = 0;
  CommitObserver* batch_observer_ = nullptr;

  absl::Mutex completion_mu_;
  std::deque<std::unique_ptr<Completion>> completions_
      ABSL_GUARDED_BY(completion_mu_);
  // Emptied Completions, kept for their vectors' capacity.
  std::vector<std::unique_ptr<Completion>> spare_completions_
      ABSL_GUARDED_BY(completion_mu_);
  bool completion_stop_ ABSL_GUARDED_BY(completion_mu_) = false;
  // The completion thread is running a Completion it took.
  bool completing_ ABSL_GUARDED_BY(completion_mu_) = false;

  absl::Mutex shutdown_mu_;  // serialises Shutdown(); taken before mu_
  bool shut_down_ ABSL_GUARDED_BY(shutdown_mu_) = false;
  std::thread writer_thread_;
  std::thread completion_thread_;

  // WriteStats, times in nanoseconds.
  std::atomic<int64_t> commits_{0};
  std::atomic<int64_t> requests_{0};
  std::atomic<int64_t> write_requests_{0};
  std::atomic<int64_t> queue_wait_ns_{0};
  std::atomic<int64_t> apply_ns_{0};
  std::atomic<int64_t> commit_ns_{0};
  std::atomic<int64_t> complete_ns_{0};
  std::atomic<int64_t> rerun_batches_{0};
};

}  // namespace jobwire

#endif  // JOBWIRE_SERVER_STORAGE_GROUP_COMMIT_H_
