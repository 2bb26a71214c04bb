#include "server/storage/group_commit.h"

#include <pthread.h>

#include <algorithm>
#include <utility>

#include "server/common/errors.h"
#include "server/common/logging.h"

namespace jobwire {
namespace {

// With a bulk request queued, how long the writer waits after a small commit
// for the next small request, and how many small commits a bulk request lets
// go first at most (see TakeBatch).
constexpr absl::Duration kSmallWriteWindow = absl::Milliseconds(1);
constexpr int kMaxSmallBatchesPerChunk = 8;

absl::Status ShutDownError() {
  return UnavailableError("job store is shut down", absl::Seconds(1));
}

}  // namespace

GroupCommit::GroupCommit(Options options, Transaction* transaction)
    : options_(options),
      clock_(options_.clock != nullptr ? options_.clock : Clock::Real()),
      txn_(transaction) {}

GroupCommit::~GroupCommit() { Shutdown(); }

void GroupCommit::Start() {
  completion_thread_ = std::thread([this] { CompletionLoop(); });
  writer_thread_ = std::thread([this] { WriterLoop(); });
}

void GroupCommit::Shutdown() {
  absl::MutexLock shutdown_lock(&shutdown_mu_);
  if (shut_down_) return;
  shut_down_ = true;
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    work_cv_.SignalAll();
  }
  // The writer drains the queue before it exits: everything accepted is
  // committed (or failed) and handed to the completion thread, which answers
  // it before it exits. Requests that a Finish makes meanwhile are answered
  // at once (stopping_).
  if (writer_thread_.joinable()) {
    writer_thread_.join();
  } else {
    // Never started: answer what was queued, here.
    std::deque<std::unique_ptr<Request>> queued;
    {
      absl::MutexLock lock(&mu_);
      queued.swap(queue_);
    }
    for (std::unique_ptr<Request>& r : queued) r->Finish(ShutDownError());
  }
  {
    absl::MutexLock lock(&completion_mu_);
    completion_stop_ = true;
  }
  if (completion_thread_.joinable()) completion_thread_.join();
}

void GroupCommit::AddCommitListener(CommitListener* listener) {
  absl::MutexLock lock(&mu_);
  if (started_)
    JW_LOG(WARNING) << "commit listener added after the first write";
  listeners_.push_back(listener);
}

void GroupCommit::SetCommitObserver(CommitObserver* observer) {
  absl::MutexLock lock(&mu_);
  observer_ = observer;
}

WriteStats GroupCommit::write_stats() const {
  WriteStats s;
  s.commits = commits_.load(std::memory_order_relaxed);
  s.requests = requests_.load(std::memory_order_relaxed);
  s.write_requests = write_requests_.load(std::memory_order_relaxed);
  s.queue_wait =
      absl::Nanoseconds(queue_wait_ns_.load(std::memory_order_relaxed));
  s.apply = absl::Nanoseconds(apply_ns_.load(std::memory_order_relaxed));
  s.commit = absl::Nanoseconds(commit_ns_.load(std::memory_order_relaxed));
  s.complete = absl::Nanoseconds(complete_ns_.load(std::memory_order_relaxed));
  return s;
}

void GroupCommit::Enqueue(std::unique_ptr<Request> request) {
  request->queued_ = clock_->Now();
  {
    absl::MutexLock lock(&mu_);
    if (!stopping_) {
      started_ = true;
      queue_.push_back(std::move(request));
      work_cv_.Signal();
      return;
    }
  }
  request->Finish(ShutDownError());
}

void GroupCommit::WriterLoop() {
  pthread_setname_np(pthread_self(), "jw-writer");
  auto next = std::make_unique<Completion>();
  while (TakeBatch(*next)) {
    RunBatch(*next);
    next = HandOff(std::move(next));
    txn_->BetweenBatches();
  }
}

bool GroupCommit::TakeBatch(Completion& c) {
  std::vector<std::unique_ptr<Request>>& batch = c.requests;
  absl::MutexLock lock(&mu_);
  while (queue_.empty() && !stopping_) work_cv_.Wait(&mu_);
  if (queue_.empty()) return false;  // stopping, and everything is handed off
  // Bulk requests commit alone and give way to small ones: those queued
  // behind a bulk one go first. After a small commit, with a bulk one
  // waiting, the writer also waits up to kSmallWriteWindow for the next small
  // request (a client writing in a loop sends it right after its answer),
  // kMaxSmallBatchesPerChunk times per bulk request at most, so that such a
  // client is not stuck behind every chunk while a chunk is held up a
  // bounded time.
  auto is_bulk = [](const std::unique_ptr<Request>& r) { return r->bulk; };
  const bool chunk_waiting = std::any_of(queue_.begin(), queue_.end(), is_bulk);
  auto small_queued = [&] {
    mu_.AssertHeld();
    return !std::all_of(queue_.begin(), queue_.end(), is_bulk);
  };
  if (chunk_waiting && last_batch_small_ &&
      small_batches_ < kMaxSmallBatchesPerChunk && !small_queued() &&
      !stopping_) {
    work_cv_.WaitWithTimeout(&mu_, kSmallWriteWindow);
  }
  if (small_queued() &&
      !(chunk_waiting && small_batches_ >= kMaxSmallBatchesPerChunk)) {
    // The small requests, in order, up to the caps; bulk ones stay queued.
    int64_t jobs = 0;
    int64_t bytes = 0;
    bool full = false;
    std::deque<std::unique_ptr<Request>> rest;
    while (!queue_.empty()) {
      std::unique_ptr<Request> r = std::move(queue_.front());
      queue_.pop_front();
      full = full || (!r->bulk && !batch.empty() &&
                      (jobs + r->jobs > options_.max_batch_jobs ||
                       bytes + r->bytes > options_.max_batch_bytes));
      if (r->bulk || full) {
        rest.push_back(std::move(r));
        continue;
      }
      jobs += r->jobs;
      bytes += r->bytes;
      batch.push_back(std::move(r));
    }
    queue_.swap(rest);
    last_batch_small_ = true;
    if (chunk_waiting) ++small_batches_;
  } else {
    // The first bulk request, alone.
    auto chunk = std::find_if(queue_.begin(), queue_.end(), is_bulk);
    batch.push_back(std::move(*chunk));
    queue_.erase(chunk);
    last_batch_small_ = false;
    small_batches_ = 0;
  }
  c.listeners = listeners_;
  batch_observer_ = observer_;
  return true;
}

GroupCommit::Applied GroupCommit::ApplyBatch(Completion& c, absl::Time now,
                                             bool savepoints,
                                             absl::Status& batch_status) {
  std::vector<std::unique_ptr<Request>>& batch = c.requests;
  std::vector<absl::Status>& results = c.results;
  results.assign(batch.size(), absl::OkStatus());
  batch_status = txn_->Begin(now);
  if (batch_status.ok()) batch_status = txn_->Prefetch(batch);
  if (!batch_status.ok()) return Applied::kDone;
  // A bulk batch takes the bulk requests queued after its own while it runs
  // the first time (a rerun runs what the first run took).
  const bool grows = !savepoints && batch.size() == 1 && batch[0]->bulk;
  int64_t bulk_jobs = batch[0]->jobs;
  for (size_t i = 0; i < batch.size() || (grows && TakeMoreBulk(c, bulk_jobs));
       ++i) {
    if (savepoints) {
      batch_status = txn_->Savepoint();
      if (!batch_status.ok()) return Applied::kDone;
    }
    absl::Status s = txn_->Apply(*batch[i]);
    if (s.ok() && savepoints) s = txn_->ReleaseSavepoint();
    if (s.ok()) continue;
    results[i] = s;
    // The backend has forgotten the request's in-memory state; what it
    // wrote is undone below (or the batch fails).
    const Transaction::Residue residue = txn_->Failed();
    if (residue == Transaction::Residue::kLost) {
      // The earlier requests of the batch are gone too.
      batch_status = s;
      return Applied::kDone;
    }
    if (savepoints) {
      batch_status = txn_->RollbackToSavepoint();
      if (!batch_status.ok()) return Applied::kDone;
    } else if (residue == Transaction::Residue::kPartial) {
      // The request wrote rows before it failed and there is no savepoint
      // to undo them alone: undo the whole transaction.
      txn_->Rollback();
      return Applied::kRerun;
    }
    // Otherwise the request failed before writing anything (a validation,
    // NOT_FOUND or mutation error, or a statement that the database undid
    // itself): nothing to undo.
  }
  return Applied::kDone;
}

bool GroupCommit::TakeMoreBulk(Completion& c, int64_t& jobs) {
  std::unique_ptr<Request> next;
  {
    absl::MutexLock lock(&mu_);
    if (queue_.empty() || !queue_.front()->bulk ||
        jobs + queue_.front()->jobs > options_.max_bulk_jobs ||
        !std::all_of(queue_.begin(), queue_.end(),
                     [](const std::unique_ptr<Request>& r) { return r->bulk; }))
      return false;
    next = std::move(queue_.front());
    queue_.pop_front();
  }
  jobs += next->jobs;
  requests_.fetch_add(1, std::memory_order_relaxed);
  queue_wait_ns_.fetch_add(
      std::max<int64_t>(
          0, absl::ToInt64Nanoseconds(clock_->Now() - next->queued_)),
      std::memory_order_relaxed);
  c.requests.push_back(std::move(next));
  c.results.push_back(absl::OkStatus());
  return true;
}

void GroupCommit::RunBatch(Completion& c) {
  const std::vector<std::unique_ptr<Request>>& batch = c.requests;
  const absl::Time start = clock_->Now();
  int64_t queue_wait_ns = 0;
  int64_t longest_wait_ns = 0;
  for (const std::unique_ptr<Request>& r : batch) {
    const int64_t wait_ns =
        std::max<int64_t>(0, absl::ToInt64Nanoseconds(start - r->queued_));
    queue_wait_ns += wait_ns;
    longest_wait_ns = std::max(longest_wait_ns, wait_ns);
  }
  requests_.fetch_add(static_cast<int64_t>(batch.size()),
                      std::memory_order_relaxed);
  queue_wait_ns_.fetch_add(queue_wait_ns, std::memory_order_relaxed);
  absl::Status batch_status;
  // Savepoints cost the backend work (SQLite copies every page a request
  // touches to the statement journal: about a third of the writer's work),
  // and almost every failing request fails before it writes: run without
  // them, and only when a request failed halfway run the batch again with
  // one savepoint per request.
  if (ApplyBatch(c, start, /*savepoints=*/false, batch_status) ==
      Applied::kRerun) {
    rerun_batches_.fetch_add(1, std::memory_order_relaxed);
    ApplyBatch(c, start, /*savepoints=*/true, batch_status);
  }
  const absl::Time applied = clock_->Now();
  absl::Duration commit_time;
  apply_ns_.fetch_add(absl::ToInt64Nanoseconds(applied - start),
                      std::memory_order_relaxed);
  if (batch_status.ok()) {
    batch_status = txn_->Commit();
    commit_time = clock_->Now() - applied;
    commit_ns_.fetch_add(absl::ToInt64Nanoseconds(commit_time),
                         std::memory_order_relaxed);
  }
  if (!batch_status.ok()) {
    JW_LOG(WARNING) << "storage: transaction of " << batch.size()
                    << " requests failed: " << batch_status;
    txn_->Rollback();
  } else {
    commits_.fetch_add(1, std::memory_order_relaxed);
    // The events go with `c`; the backend may keep c's emptied vector (and
    // its capacity) for the next transaction.
    txn_->Committed(&c.events);
    if (batch_observer_ != nullptr) {
      batch_observer_->OnCommitSample(
          CommitSample{static_cast<int64_t>(batch.size()),
                       static_cast<int64_t>(c.events.size()), applied - start,
                       commit_time, absl::Nanoseconds(longest_wait_ns)});
    }
  }
  // Counted here, before the hand-off, so the stats are current when a
  // Finish runs.
  int64_t answered_ok = 0;
  for (absl::Status& s : c.results) {
    if (s.ok()) s = batch_status;
    answered_ok += s.ok() ? 1 : 0;
  }
  write_requests_.fetch_add(answered_ok, std::memory_order_relaxed);
}

bool GroupCommit::CompletesOnWriter(const Completion& c) {
  if (!options_.complete_on_idle_writer) return false;
  const size_t items = c.requests.size() + c.events.size();
  if (items <=
          static_cast<size_t>(std::max(0, options_.inline_completion_items)) &&
      std::all_of(
          c.requests.begin(), c.requests.end(),
          [](const std::unique_ptr<Request>& r) { return r->light_finish; })) {
    return true;
  }
  absl::MutexLock lock(&mu_);
  return queue_.empty();
}

std::unique_ptr<GroupCommit::Completion> GroupCommit::HandOff(
    std::unique_ptr<Completion> c) {
  // A small commit of light requests or an idle writer, and an idle
  // completion thread: answering here saves waking the completion thread, a
  // run-queue wait on a busy box (16 and 64 single-job callers: 6-8% more
  // submits per second, BENCHMARKS.md). Order holds: no earlier commit is
  // pending or running, and no later commit can be handed off while this one
  // runs.
  if (CompletesOnWriter(*c)) {
    bool inline_run = false;
    {
      absl::MutexLock lock(&completion_mu_);
      inline_run = completions_.empty() && !completing_;
    }
    if (inline_run) {
      RunCompletion(*c);
      return c;
    }
  }
  absl::MutexLock lock(&completion_mu_);
  auto has_room = [this] {
    completion_mu_.AssertReaderHeld();
    return completions_.size() < kMaxPendingCompletions;
  };
  completion_mu_.Await(absl::Condition(&has_room));
  completions_.push_back(std::move(c));
  if (spare_completions_.empty()) return std::make_unique<Completion>();
  std::unique_ptr<Completion> spare = std::move(spare_completions_.back());
  spare_completions_.pop_back();
  return spare;
}

void GroupCommit::CompletionLoop() {
  pthread_setname_np(pthread_self(), "jw-complete");
  while (true) {
    std::unique_ptr<Completion> c;
    {
      absl::MutexLock lock(&completion_mu_);
      auto has_work = [this] {
        completion_mu_.AssertReaderHeld();
        return !completions_.empty() || completion_stop_;
      };
      completion_mu_.Await(absl::Condition(&has_work));
      // Shutdown stops it only after the writer exited: nothing comes later.
      if (completions_.empty()) return;
      c = std::move(completions_.front());
      completions_.pop_front();
      completing_ = true;
    }
    RunCompletion(*c);
    absl::MutexLock lock(&completion_mu_);
    completing_ = false;
    if (spare_completions_.size() <= kMaxPendingCompletions)
      spare_completions_.push_back(std::move(c));
  }
}

void GroupCommit::RunCompletion(Completion& c) {
  const absl::Time start = clock_->Now();
  // The events are durable and reach the listeners before any Finish of
  // their commit; an earlier commit's work all ran in an earlier turn.
  if (!c.events.empty()) {
    for (CommitListener* listener : c.listeners) listener->OnCommit(c.events);
  }
  for (size_t i = 0; i < c.requests.size(); ++i)
    c.requests[i]->Finish(std::move(c.results[i]));
  c.requests.clear();  // the requests' captures go here
  c.results.clear();
  c.events.clear();
  c.listeners.clear();
  complete_ns_.fetch_add(absl::ToInt64Nanoseconds(clock_->Now() - start),
                         std::memory_order_relaxed);
}

}  // namespace jobwire
