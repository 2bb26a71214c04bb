#include "server/scheduling/dispatcher.h"

#include <algorithm>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/common/errors.h"
#include "server/common/logging.h"
#include "server/common/status_macros.h"

namespace jobwire {
namespace {

namespace wt = worker_transitions;

// Picks per loop pass before the lock is dropped to submit them.
constexpr int kMaxPicksPerPass = 1024;
// Seconds of history kept for finished_last_minute.
constexpr int64_t kFinishedWindowSeconds = 60;
// Longest real-time sleep of the loop between timer checks.
constexpr absl::Duration kMaxIdleWait = absl::Milliseconds(200);
constexpr size_t kMaxLatencySamples = 1'000'000;

}  // namespace

Dispatcher::Dispatcher(JobStore* store, Clock* clock, RandomSource* random,
                       DispatcherOptions options)
    : store_(store),
      clock_(clock),
      random_(random),
      options_(std::move(options)),
      gates_(options_.queue_concurrency, options_.queue_weights) {}

Dispatcher::~Dispatcher() { Stop(); }

void Dispatcher::Start() {
  absl::MutexLock lock(&mu_);
  if (loop_.joinable() || stop_) return;
  loop_ = std::thread([this] { Loop(); });
}

void Dispatcher::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  if (loop_.joinable()) loop_.join();
}

void Dispatcher::Wake() {
  absl::MutexLock lock(&mu_);
  dirty_ = true;
}

void Dispatcher::Loop() {
  for (;;) {
    std::vector<Action> actions;
    {
      absl::MutexLock lock(&mu_);
      absl::Time now = clock_->Now();
      absl::Time monotonic = clock_->Monotonic();
      absl::Duration wait =
          std::clamp(std::min(timers_.NextDeadline() - now,
                              lease_timers_.NextDeadline() - monotonic),
                     absl::ZeroDuration(), kMaxIdleWait);
      auto ready = [this] {
        mu_.AssertReaderHeld();
        return stop_ || dirty_;
      };
      mu_.AwaitWithTimeout(absl::Condition(&ready), wait);
      if (stop_) break;
      dirty_ = false;
      now = clock_->Now();
      monotonic = clock_->Monotonic();
      RunTimersLocked(now, monotonic, &actions);
      DispatchLocked(now, &actions);
      for (Action& a : deferred_) actions.push_back(std::move(a));
      deferred_.clear();
    }
    Submit(std::move(actions));
  }
  // Mutations raised after the stop still reach the store.
  std::vector<Action> rest;
  {
    absl::MutexLock lock(&mu_);
    rest.swap(deferred_);
  }
  Submit(std::move(rest));
}

void Dispatcher::Submit(std::vector<Action> actions) {
  for (Action& a : actions) {
    store_->Mutate(std::move(a.job_id), std::move(a.mutation),
                   std::move(a.done));
  }
}

// --- CommitListener ---

bool Dispatcher::AnySessionHasRoomLocked() const {
  for (const auto& [id, s] : sessions_) {
    if (s.used < s.slots && !s.silent) return true;
  }
  return false;
}

void Dispatcher::OnCommit(const std::vector<JobEvent>& events) {
  absl::MutexLock lock(&mu_);
  const absl::Time now = clock_->Now();
  // A ready job wakes the loop only when a pass could assign it: a wake-up
  // per commit for nothing is a futex call on the commit's serial path (and
  // a pass) whenever every worker is busy or none is connected.
  std::optional<bool> room;
  auto ready_job_added = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (!room.has_value()) room = AnySessionHasRoomLocked();
    if (*room) dirty_ = true;
  };
  for (const JobEvent& e : events) {
    if (e.remote && e.type == EventType::kUpdated) ForwardRemoteStopLocked(e);
    if (e.type == EventType::kUpdated) {
      // Queue, kind or priority may have moved: re-key a ready job.
      if (index_.Rekey(e.job_id, e.queue, e.kind, e.priority)) {
        ready_job_added();
      }
      auto s = scheduled_.find(e.job_id);
      if (s != scheduled_.end() && s->second != e.run_after) {
        s->second = e.run_after;
        timers_.Push({e.run_after, TimerKind::kRunAfter, e.job_id, 0});
        dirty_ = true;
      }
      continue;
    }
    if (e.type != EventType::kStateChanged) continue;
    if (IsTerminal(e.to)) CountFinishedLocked(e.queue, now);
    if (e.to == JobState::kQueued) {
      index_.Add({e.job_id, e.queue, e.kind, e.priority, now});
      ready_job_added();
    } else {
      index_.Remove(e.job_id);
    }
    if (e.to == JobState::kScheduled) {
      scheduled_[e.job_id] = e.run_after;
      timers_.Push({e.run_after, TimerKind::kRunAfter, e.job_id, 0});
      dirty_ = true;
    } else if (!scheduled_.empty()) {
      scheduled_.erase(e.job_id);
    }
    if (e.from == JobState::kRunning && e.to != JobState::kRunning) {
      ReleaseHeldLocked(e.queue);
      auto it = leases_.find(e.job_id);
      if (it != leases_.end() && it->second.active &&
          it->second.attempt == e.attempt) {
        RemoveLeaseLocked(it);
      }
    }
  }
}

void Dispatcher::ReleaseHeldLocked(const std::string& queue) {
  if (held_.empty()) return;
  auto it = held_.find(queue);
  if (it == held_.end()) return;
  const absl::Time now = clock_->Now();
  for (ReadyJob& job : it->second) {
    job.ready_since = std::min(job.ready_since, now);
    index_.Add(std::move(job));
  }
  held_.erase(it);
  dirty_ = true;
}

void Dispatcher::ForwardRemoteStopLocked(const JobEvent& e) {
  // Another node committed a cancel or pause of a job whose worker may be
  // connected here: tell the worker, as RequestStop's answer does locally.
  const bool cancel = std::find(e.paths.begin(), e.paths.end(),
                                "cancel_requested") != e.paths.end();
  const bool pause = std::find(e.paths.begin(), e.paths.end(),
                               "pause_requested") != e.paths.end();
  if (!cancel && !pause) return;
  auto it = leases_.find(e.job_id);
  if (it == leases_.end()) return;
  Lease& lease = it->second;
  if (lease.cancel_requested || (pause && lease.pause_requested)) return;
  if (cancel) {
    lease.cancel_requested = true;
    lease.cancel_reason = "cancelled";
  } else {
    lease.pause_requested = true;
  }
  auto s = sessions_.find(lease.session);
  if (!lease.active || lease.ending || s == sessions_.end()) return;
  if (cancel) {
    s->second.conn->SendCancel(e.job_id, lease.attempt, lease.cancel_reason);
  } else {
    s->second.conn->SendPause(e.job_id, lease.attempt);
  }
}

absl::Status Dispatcher::ReloadGatesBlocking() {
  JW_ASSIGN_OR_RETURN(std::vector<QueueRow> queues,
                      store_->ListQueueRowsBlocking());
  JW_ASSIGN_OR_RETURN(
      std::optional<std::string> paused,
      store_->GetSettingBlocking(DispatchGates::kDispatchPausedKey));
  absl::MutexLock lock(&mu_);
  for (const QueueRow& q : queues) ApplyQueueRowLocked(q);
  if (!gates_.LoadDispatchPauseSetting(paused))
    gates_.SetDispatchPause(false, "");
  dirty_ = true;
  return absl::OkStatus();
}

void Dispatcher::HandBackOrphan(const std::string& job_id, int32_t attempt) {
  wt::LeaseEnd end;
  end.cause = wt::LeaseEndCause::kNodeLost;
  store_->Mutate(
      job_id,
      [attempt, end](const Job& job, absl::Time at) {
        return wt::EndLease(job, at, attempt, end);
      },
      [job_id](absl::StatusOr<Job> r) {
        if (r.ok()) {
          JW_LOG(INFO) << "handed back job " << job_id
                       << " (its node was lost)";
        } else {
          JW_LOG(DEBUG) << "hand-back of " << job_id << ": " << r.status();
        }
      });
}

void Dispatcher::RemoveLeaseLocked(const std::string& job_id) {
  auto it = leases_.find(job_id);
  if (it != leases_.end()) RemoveLeaseLocked(it);
}

void Dispatcher::RemoveLeaseLocked(LeaseMap::iterator it) {
  auto s = sessions_.find(it->second.session);
  if (s != sessions_.end() && --s->second.used == 0 && draining_) {
    s->second.conn->EndSession();
  }
  auto q = queue_leases_.find(it->second.queue);
  if (q != queue_leases_.end() && --q->second <= 0) queue_leases_.erase(q);
  leases_.erase(it);
  dirty_ = true;
}

// --- Recovery ---

absl::Status Dispatcher::RecoverBlocking() {
  std::vector<std::pair<std::string, int32_t>> running;
  int stopped = 0;  // running jobs with a pending cancel or pause
  const absl::Time now = clock_->Now();
  JW_RETURN_IF_ERROR(store_->LoadActiveJobsBlocking([&](const Job& job) {
    absl::MutexLock lock(&mu_);
    switch (job.state) {
      case JobState::kQueued:
        index_.Add({job.id, job.queue, job.kind, job.priority, now});
        break;
      case JobState::kScheduled:
        scheduled_[job.id] = job.run_after();
        timers_.Push({job.run_after(), TimerKind::kRunAfter, job.id, 0});
        break;
      case JobState::kRunning:
        running.emplace_back(job.id, job.attempt);
        if (job.stop_request != StopRequest::kNone) ++stopped;
        break;
      default:
        break;
    }
  }));
  JW_RETURN_IF_ERROR(ReloadGatesBlocking());
  {
    absl::MutexLock lock(&mu_);
    if (gates_.dispatch_paused()) {
      JW_LOG(INFO) << "dispatch is paused (" << gates_.dispatch_pause_reason()
                   << "); ResumeDispatch lifts it";
    }
  }
  // Their workers went with the previous process: requeue them, or end them
  // CANCELLED / PAUSED when a cancel or pause was pending (EndLease reads the
  // stored request). The commits reach the index through OnCommit.
  absl::Mutex mu;
  size_t pending = running.size();
  wt::LeaseEnd end;
  end.cause = wt::LeaseEndCause::kRestarted;
  for (const auto& [id, attempt] : running) {
    store_->Mutate(
        id,
        [attempt = attempt, end](const Job& job, absl::Time at) {
          return wt::EndLease(job, at, attempt, end);
        },
        [&mu, &pending, id = id](absl::StatusOr<Job> r) {
          if (!r.ok()) {
            JW_LOG(WARNING) << "requeue of " << id << " failed: " << r.status();
          }
          absl::MutexLock lock(&mu);
          --pending;
        });
  }
  absl::MutexLock lock(&mu);
  auto none = [&] {
    mu.AssertReaderHeld();
    return pending == 0;
  };
  mu.Await(absl::Condition(&none));
  JW_LOG(INFO) << "dispatcher released " << running.size()
               << " jobs left running by the previous process (" << stopped
               << " with a pending cancel or pause)";
  return absl::OkStatus();
}

// --- Timers ---

void Dispatcher::RunTimersLocked(absl::Time now, absl::Time monotonic,
                                 std::vector<Action>* actions) {
  std::vector<Timer> due = timers_.PopDue(now);
  for (Timer& t : lease_timers_.PopDue(monotonic)) due.push_back(std::move(t));
  for (const Timer& t : due) {
    switch (t.kind) {
      case TimerKind::kRunAfter: {
        auto s = scheduled_.find(t.job_id);
        if (s == scheduled_.end() || s->second > now) break;
        scheduled_.erase(s);
        actions->push_back(
            {t.job_id,
             [](const Job& job, absl::Time at) {
               return wt::PromoteScheduled(job, at);
             },
             [](absl::StatusOr<Job> r) {
               if (!r.ok() &&
                   r.status().code() != absl::StatusCode::kFailedPrecondition) {
                 JW_LOG(WARNING) << "promote failed: " << r.status();
               }
             }});
        break;
      }
      case TimerKind::kLease: {
        auto it = leases_.find(t.job_id);
        if (it == leases_.end()) break;
        Lease& lease = it->second;
        if (!lease.active || lease.ending || lease.attempt != t.attempt) break;
        absl::Time heard = lease.started;
        auto s = sessions_.find(lease.session);
        if (s != sessions_.end()) heard = std::max(heard, s->second.last_heard);
        const absl::Time deadline = heard + options_.lease_ttl;
        if (deadline > monotonic) {
          lease_timers_.Push(
              {deadline, TimerKind::kLease, t.job_id, t.attempt});
          break;
        }
        if (s != sessions_.end()) s->second.silent = true;
        ++lease_expiries_;
        EndLeaseLocked(&lease, wt::LeaseEndCause::kExpired);
        break;
      }
      case TimerKind::kAttemptTimeout: {
        auto it = leases_.find(t.job_id);
        if (it == leases_.end()) break;
        Lease& lease = it->second;
        if (!lease.active || lease.ending || lease.attempt != t.attempt) break;
        EndLeaseLocked(&lease, wt::LeaseEndCause::kAttemptTimeout);
        break;
      }
      case TimerKind::kQueueResume: {
        // The pause ended (QueuePaused already reads it so); forget it.
        if (gates_.EndTimedPause(t.job_id, now)) {
          JW_LOG(INFO) << "queue " << t.job_id
                       << " resumed (timed pause ended)";
        }
        break;
      }
    }
  }
}

void Dispatcher::EndLeaseLocked(Lease* lease, wt::LeaseEndCause cause) {
  lease->ending = true;
  auto s = sessions_.find(lease->session);
  if (s != sessions_.end() && cause != wt::LeaseEndCause::kDisconnected) {
    s->second.conn->SendCancel(lease->job_id, lease->attempt,
                               lease->cancel_requested
                                   ? lease->cancel_reason
                                   : std::string(wt::LeaseEndReason(cause)));
  }
  wt::LeaseEnd end;
  end.cause = cause;
  end.cancel_requested = lease->cancel_requested;
  if (!lease->cancel_reason.empty()) end.cancel_reason = lease->cancel_reason;
  end.unit_random = random_->Uniform();
  const int32_t attempt = lease->attempt;
  const std::string job_id = lease->job_id;
  deferred_.push_back(
      {job_id,
       [attempt, end](const Job& job, absl::Time now) {
         return wt::EndLease(job, now, attempt, end);
       },
       [this, job_id, attempt](absl::StatusOr<Job> r) {
         if (r.ok() || r.status().code() == absl::StatusCode::kAborted) return;
         // The store refused for another reason (busy, shut down): try again.
         JW_LOG(WARNING) << "ending lease of " << job_id
                         << " failed: " << r.status();
         absl::MutexLock lock(&mu_);
         auto it = leases_.find(job_id);
         if (it == leases_.end() || it->second.attempt != attempt) return;
         it->second.ending = false;
         lease_timers_.Push({clock_->Monotonic() + absl::Seconds(1),
                             TimerKind::kLease, job_id, attempt});
       }});
  dirty_ = true;
}

// --- Dispatch ---

int32_t Dispatcher::QueueLeasesLocked(const std::string& queue) const {
  auto used = queue_leases_.find(queue);
  return used == queue_leases_.end() ? 0 : used->second;
}

void Dispatcher::ApplyQueueRowLocked(const QueueRow& row) {
  ReleaseHeldLocked(row.name);
  if (std::optional<absl::Time> resume = gates_.Apply(row)) {
    timers_.Push({*resume, TimerKind::kQueueResume, row.name, 0});
  }
  dirty_ = true;
}

void Dispatcher::CountFinishedLocked(const std::string& queue, absl::Time now) {
  const int64_t second = absl::ToUnixSeconds(now);
  std::map<int64_t, int64_t>& buckets = finished_[queue];
  ++buckets[second];
  // Forget the seconds that left the window.
  buckets.erase(buckets.begin(),
                buckets.lower_bound(second - kFinishedWindowSeconds + 1));
}

int64_t Dispatcher::FinishedLastMinuteLocked(const std::string& queue,
                                             absl::Time now) const {
  auto it = finished_.find(queue);
  if (it == finished_.end()) return 0;
  int64_t total = 0;
  const int64_t from = absl::ToUnixSeconds(now) - kFinishedWindowSeconds + 1;
  for (auto b = it->second.lower_bound(from); b != it->second.end(); ++b) {
    total += b->second;
  }
  return total;
}

void Dispatcher::DispatchLocked(absl::Time now, std::vector<Action>* actions) {
  if (draining_ || gates_.dispatch_paused() || index_.size() == 0 ||
      sessions_.empty()) {
    return;
  }
  int picks = 0;
  bool progress = true;
  std::vector<FairChoice::Candidate> eligible;
  while (progress && picks < kMaxPicksPerPass && index_.size() > 0 &&
         assigns_in_flight_ < options_.max_assigns_in_flight) {
    progress = false;
    // Start each round after the session served last, so sessions take turns.
    auto it = sessions_.upper_bound(rr_cursor_);
    for (size_t n = 0; n < sessions_.size(); ++n, ++it) {
      if (it == sessions_.end()) it = sessions_.begin();
      Session& s = it->second;
      if (s.used >= s.slots || s.silent) continue;
      auto accepts = [&s](const std::string& kind) {
        return s.kinds.empty() || s.kinds.count(kind) > 0;
      };
      eligible.clear();
      for (const WorkerQueueSpec& q : s.queues) {
        if (!gates_.QueueOpen(q.name, now, QueueLeasesLocked(q.name))) {
          continue;
        }
        if (index_.QueueSize(q.name) == 0) continue;
        if (!index_.Peek(q.name, accepts)) continue;
        eligible.push_back({q.name, gates_.Weight(q.name, q.weight)});
      }
      if (eligible.empty()) continue;
      const std::string& queue = eligible[s.choice.Choose(eligible)].queue;
      ReadyJob job = *index_.Peek(queue, accepts);
      index_.Remove(job.id);
      Lease& lease = leases_[job.id];
      lease.job_id = job.id;
      lease.queue = job.queue;
      lease.session = s.id;
      lease.worker_id = s.worker_id;
      ++s.used;
      ++queue_leases_[job.queue];
      ++assigns_in_flight_;
      const int64_t session = s.id;
      const std::string worker_id = s.worker_id;
      const absl::Duration ttl = options_.lease_ttl;
      const AssignEncoder* encoder = &s.conn->assign_encoder();
      actions->push_back({job.id,
                          [worker_id, ttl](const Job& current, absl::Time at) {
                            return wt::Assign(current, at, worker_id, ttl);
                          },
                          [this, session, job, encoder](absl::StatusOr<Job> r) {
                            OnAssignDone(session, job, encoder, std::move(r));
                          }});
      rr_cursor_ = s.id;
      progress = true;
      if (++picks >= kMaxPicksPerPass || index_.size() == 0 ||
          assigns_in_flight_ >= options_.max_assigns_in_flight) {
        break;
      }
    }
  }
  // More work may remain than one pass takes: come back at once.
  if (picks >= kMaxPicksPerPass) dirty_ = true;
}

void Dispatcher::OnAssignDone(int64_t session, const ReadyJob& ready,
                              const AssignEncoder* encoder,
                              absl::StatusOr<Job> result) {
  const std::string& job_id = ready.id;
  const absl::Time ready_at = ready.ready_since;
  // The message is built before the lock: it is most of an assign's CPU
  // (the job's args JSON is parsed into it), and every report, commit and
  // dispatch pass waits on mu_. Wasted only when the lease is dropped below.
  const absl::Time now = clock_->Now();
  std::unique_ptr<EncodedAssign> assign;
  if (result.ok()) assign = encoder->Encode(*result, now + options_.lease_ttl);
  absl::MutexLock lock(&mu_);
  --assigns_in_flight_;
  dirty_ = true;
  auto it = leases_.find(job_id);
  if (it == leases_.end() || it->second.active) return;  // not ours
  Lease& lease = it->second;
  if (absl::IsResourceExhausted(result.status())) {
    // Its queue is at its limit across nodes: held until a job of the
    // queue leaves RUNNING.
    held_[ready.queue].push_back(ready);
    RemoveLeaseLocked(it);
    return;
  }
  if (!result.ok()) {
    // Cancelled, paused or moved meanwhile: drop it and free the slot.
    if (result.status().code() != absl::StatusCode::kFailedPrecondition) {
      JW_LOG(WARNING) << "assign of " << job_id
                      << " failed: " << result.status();
    }
    RemoveLeaseLocked(it);
    return;
  }
  const Job& job = *result;
  lease.active = true;
  lease.attempt = job.attempt;
  const absl::Time monotonic = clock_->Monotonic();
  lease.started = monotonic;
  lease_timers_.Push(
      {monotonic + options_.lease_ttl, TimerKind::kLease, job_id, job.attempt});
  if (job.attempt_timeout > absl::ZeroDuration()) {
    lease_timers_.Push({monotonic + job.attempt_timeout,
                        TimerKind::kAttemptTimeout, job_id, job.attempt});
  }
  auto s = sessions_.find(lease.session);
  if (s == sessions_.end()) {
    // The worker left while the Assign was in flight.
    EndLeaseLocked(&lease, wt::LeaseEndCause::kDisconnected);
    return;
  }
  if (releasing_) {
    EndLeaseLocked(&lease, wt::LeaseEndCause::kShutdown);
    return;
  }
  // Observed before the worker can see the assign.
  if (assign_observer_ != nullptr) {
    assign_observer_->OnAssigned(lease.queue, now - ready_at);
  }
  // Queued in the critical section that made the lease live: a cancel or
  // pause of the job is only sent to a live lease, so it queues after this.
  s->second.conn->SendAssign(std::move(assign));
  ++assigned_;
  if (latencies_.size() < kMaxLatencySamples) {
    latencies_.push_back(now - ready_at);
  }
  if (lease.cancel_requested) {
    s->second.conn->SendCancel(job_id, job.attempt, lease.cancel_reason);
  } else if (lease.pause_requested) {
    s->second.conn->SendPause(job_id, job.attempt);
  }
}

// --- Sessions ---

namespace {

class CopyingAssignEncoder final : public AssignEncoder {
 public:
  std::unique_ptr<EncodedAssign> Encode(
      const Job& job, absl::Time lease_deadline) const override {
    auto assign = std::make_unique<JobAssign>();
    assign->job = job;
    assign->lease_deadline = lease_deadline;
    return assign;
  }
};

}  // namespace

const AssignEncoder& JobAssignEncoder() {
  static const auto* const encoder = new CopyingAssignEncoder();
  return *encoder;
}

absl::StatusOr<int64_t> Dispatcher::AddSession(const WorkerHello& hello,
                                               WorkerConnection* conn) {
  if (hello.worker_id.empty()) {
    return InvalidArgumentError("hello.worker_id", "is required");
  }
  if (hello.slots < 1) {
    return InvalidArgumentError("hello.slots", "must be at least 1");
  }
  absl::MutexLock lock(&mu_);
  if (draining_) {
    return UnavailableError("server is shutting down", absl::Seconds(1));
  }
  Session s;
  s.id = next_session_++;
  s.worker_id = hello.worker_id;
  s.queues = hello.queues;
  if (s.queues.empty()) s.queues.push_back({std::string(kDefaultQueue), 0});
  s.kinds.insert(hello.kinds.begin(), hello.kinds.end());
  s.slots = hello.slots;
  s.last_heard = clock_->Monotonic();
  s.conn = conn;
  const int64_t id = s.id;
  sessions_.emplace(id, std::move(s));
  dirty_ = true;
  return id;
}

void Dispatcher::CloseSession(int64_t session) {
  absl::MutexLock lock(&mu_);
  auto s = sessions_.find(session);
  if (s == sessions_.end()) return;
  for (auto& [job_id, lease] : leases_) {
    if (lease.session != session) continue;
    if (lease.active && !lease.ending) {
      EndLeaseLocked(&lease, draining_ ? wt::LeaseEndCause::kShutdown
                                       : wt::LeaseEndCause::kDisconnected);
    }
    // A reserved lease is released when its Assign commits (OnAssignDone).
    lease.session = 0;
  }
  // The session's reservations now belong to no session.
  sessions_.erase(s);
  dirty_ = true;
}

void Dispatcher::Touch(int64_t session) {
  absl::MutexLock lock(&mu_);
  auto s = sessions_.find(session);
  if (s == sessions_.end()) return;
  s->second.last_heard = clock_->Monotonic();
  if (s->second.silent) {
    s->second.silent = false;
    dirty_ = true;
  }
}

void Dispatcher::AddSlots(int64_t session, int32_t slots) {
  absl::MutexLock lock(&mu_);
  auto s = sessions_.find(session);
  if (s == sessions_.end()) return;
  s->second.slots = std::max(0, s->second.slots + slots);
  dirty_ = true;
}

// --- Reports ---

absl::Status Dispatcher::CheckLeaseLocked(int64_t session,
                                          const std::string& job_id,
                                          int32_t attempt) {
  auto it = leases_.find(job_id);
  if (it == leases_.end() || it->second.session != session ||
      !it->second.active || it->second.attempt != attempt ||
      it->second.ending) {
    return absl::AbortedError(absl::StrCat("attempt ", attempt, " of job ",
                                           job_id,
                                           " does not hold a lease here"));
  }
  return absl::OkStatus();
}

void Dispatcher::Report(int64_t session, const std::string& job_id,
                        int32_t attempt, JobMutation mutation,
                        StatusCallback done) {
  absl::Status held;
  {
    absl::MutexLock lock(&mu_);
    if (auto s = sessions_.find(session); s != sessions_.end()) {
      s->second.last_heard = clock_->Monotonic();
    }
    held = CheckLeaseLocked(session, job_id, attempt);
  }
  if (!held.ok()) {
    done(held);
    return;
  }
  store_->Mutate(
      job_id, std::move(mutation),
      [done = std::move(done)](absl::StatusOr<Job> r) { done(r.status()); });
}

void Dispatcher::ReportProgress(int64_t session, const std::string& job_id,
                                int32_t attempt, const Progress& progress,
                                const std::string& log_line,
                                StatusCallback done) {
  Report(
      session, job_id, attempt,
      [attempt, progress, log_line](const Job& job, absl::Time now) {
        return wt::ReportProgress(job, now, attempt, progress, log_line);
      },
      std::move(done));
}

void Dispatcher::Complete(int64_t session, const std::string& job_id,
                          int32_t attempt, const JobResult& result,
                          StatusCallback done) {
  Report(
      session, job_id, attempt,
      [attempt, result](const Job& job, absl::Time now) {
        return wt::Complete(job, now, attempt, result);
      },
      std::move(done));
}

void Dispatcher::Fail(int64_t session, const std::string& job_id,
                      int32_t attempt, const JobError& error,
                      StatusCallback done) {
  const double unit = random_->Uniform();
  Report(
      session, job_id, attempt,
      [attempt, error, unit](const Job& job, absl::Time now) {
        return wt::Fail(job, now, attempt, error, unit);
      },
      std::move(done));
}

void Dispatcher::Checkpoint(int64_t session, const std::string& job_id,
                            int32_t attempt, const std::string& data,
                            bool release, StatusCallback done) {
  Report(
      session, job_id, attempt,
      [attempt, data, release](const Job& job, absl::Time now) {
        return wt::Checkpoint(job, now, attempt, data, release);
      },
      std::move(done));
}

void Dispatcher::Ack(int64_t session, const std::string& job_id,
                     int32_t attempt, bool stopped, StatusCallback done) {
  bool cancel = false;
  std::string reason;
  absl::Status held;
  {
    absl::MutexLock lock(&mu_);
    held = CheckLeaseLocked(session, job_id, attempt);
    if (held.ok()) {
      const Lease& lease = leases_.at(job_id);
      if (!lease.cancel_requested && !lease.pause_requested) {
        held = FailedPreconditionError(
            absl::StrCat("nothing to acknowledge for job ", job_id),
            {"STATE", job_id, "no cancel or pause was sent"});
      }
      cancel = lease.cancel_requested;
      reason = lease.cancel_reason;
    }
  }
  if (!held.ok() || !stopped) {
    done(held);
    return;
  }
  if (cancel) {
    Report(
        session, job_id, attempt,
        [attempt, reason](const Job& job, absl::Time now) {
          return wt::AckCancel(job, now, attempt, reason);
        },
        std::move(done));
  } else {
    Report(
        session, job_id, attempt,
        [attempt](const Job& job, absl::Time now) {
          return wt::AckPause(job, now, attempt);
        },
        std::move(done));
  }
}

// --- Job control ---

void Dispatcher::RequestCancel(const std::string& job_id,
                               const std::string& reason, JobCallback done) {
  RequestStop(job_id, /*cancel=*/true, reason.empty() ? "cancelled" : reason,
              std::move(done));
}

void Dispatcher::RequestPause(const std::string& job_id, JobCallback done) {
  RequestStop(job_id, /*cancel=*/false, "", std::move(done));
}

void Dispatcher::RequestStop(const std::string& job_id, bool cancel,
                             const std::string& reason, JobCallback done) {
  // The request is committed with the job first, so a restart before the
  // worker answers still ends the job CANCELLED (or PAUSED), not requeued.
  const StopRequest request =
      cancel ? StopRequest::kCancel : StopRequest::kPause;
  store_->Mutate(
      job_id,
      [request, reason](const Job& job, absl::Time now) {
        return wt::RequestStop(job, now, request, reason);
      },
      [this, job_id, done = std::move(done)](absl::StatusOr<Job> r) {
        if (r.ok() && r->stop_request != StopRequest::kNone) {
          // The committed request decides: a cancel overrides a pause;
          // nothing overrides a cancel.
          const bool cancel = r->stop_request == StopRequest::kCancel;
          absl::MutexLock lock(&mu_);
          auto it = leases_.find(job_id);
          if (it != leases_.end() && !it->second.cancel_requested &&
              (cancel || !it->second.pause_requested)) {
            Lease& lease = it->second;
            if (cancel) {
              lease.cancel_requested = true;
              lease.cancel_reason = r->stop_reason;
            } else {
              lease.pause_requested = true;
            }
            auto s = sessions_.find(lease.session);
            if (lease.active && !lease.ending && s != sessions_.end()) {
              if (cancel) {
                s->second.conn->SendCancel(job_id, lease.attempt,
                                           lease.cancel_reason);
              } else {
                s->second.conn->SendPause(job_id, lease.attempt);
              }
            }
          }
        }
        done(std::move(r));
      });
}

// --- Explain ---

std::vector<ExplainGate> Dispatcher::Explain(const Job& job) {
  ExplainFacts facts;
  {
    absl::MutexLock lock(&mu_);
    facts.now = clock_->Now();
    facts.lease_worker = job.worker_id;
    facts.lease_until = job.lease_expire_time;
    if (job.state == JobState::kRunning) {
      auto it = leases_.find(job.id);
      if (it != leases_.end() && it->second.active) {
        facts.lease_worker = it->second.worker_id;
        absl::Time heard = it->second.started;
        if (auto s = sessions_.find(it->second.session); s != sessions_.end()) {
          heard = std::max(heard, s->second.last_heard);
        }
        // The deadline is monotonic; shown as the wall time it falls at now.
        facts.lease_until =
            facts.now + (heard + options_.lease_ttl - clock_->Monotonic());
      }
    }
    facts.dispatch_paused = gates_.dispatch_paused();
    facts.dispatch_pause_reason = gates_.dispatch_pause_reason();
    facts.queue = gates_.Settings(job.queue);
    facts.queue_paused = gates_.QueuePaused(job.queue, facts.now);
    facts.draining = draining_;
    facts.queue_running = QueueLeasesLocked(job.queue);
    for (const auto& [id, s] : sessions_) {
      const bool queue_ok = std::any_of(
          s.queues.begin(), s.queues.end(),
          [&](const WorkerQueueSpec& q) { return q.name == job.queue; });
      const bool kind_ok = s.kinds.empty() || s.kinds.count(job.kind) > 0;
      if (!queue_ok || !kind_ok) continue;
      ++facts.serving;
      facts.free_slots += std::max(0, s.slots - s.used);
    }
    if (facts.serving > 0 && facts.free_slots == 0 &&
        job.state == JobState::kQueued) {
      facts.ahead = index_.Rank(job.id);
    }
  }
  return ExplainJob(job, facts);
}

// --- Gates ---

namespace {

// Runs a store write that reports through a callback and waits for it.
absl::Status AwaitWrite(const std::function<void(StatusCallback)>& write) {
  absl::Mutex mu;
  bool done = false;
  absl::Status status;
  write([&](absl::Status s) {
    absl::MutexLock lock(&mu);
    status = std::move(s);
    done = true;
  });
  absl::MutexLock lock(&mu);
  mu.Await(absl::Condition(&done));
  return status;
}

}  // namespace

absl::Status Dispatcher::SetDispatchPausedBlocking(bool paused,
                                                   const std::string& reason) {
  absl::MutexLock gate(&gate_mu_);
  std::string value = DispatchGates::DispatchPauseSetting(paused, reason);
  JW_RETURN_IF_ERROR(AwaitWrite([&](StatusCallback done) {
    store_->PutSetting(DispatchGates::kDispatchPausedKey, std::move(value),
                       std::move(done));
  }));
  absl::MutexLock lock(&mu_);
  gates_.SetDispatchPause(paused, reason);
  dirty_ = true;
  JW_LOG(INFO) << "dispatch " << (paused ? "paused" : "resumed")
               << (reason.empty() ? "" : ": ") << reason;
  return absl::OkStatus();
}

Dispatcher::DispatchPause Dispatcher::dispatch_pause() {
  absl::MutexLock lock(&mu_);
  return {gates_.dispatch_paused(), gates_.dispatch_pause_reason()};
}

absl::StatusOr<QueueRow> Dispatcher::UpdateQueueBlocking(
    const std::string& name, const std::function<void(QueueRow*)>& edit) {
  absl::MutexLock gate(&gate_mu_);
  QueueRow row;
  {
    absl::MutexLock lock(&mu_);
    row = gates_.EffectiveSettings(name, clock_->Now());
  }
  edit(&row);
  row.name = name;
  if (!row.paused) row.resume_time = absl::InfinitePast();
  JW_RETURN_IF_ERROR(AwaitWrite(
      [&](StatusCallback done) { store_->UpsertQueue(row, std::move(done)); }));
  absl::MutexLock lock(&mu_);
  ApplyQueueRowLocked(row);
  return row;
}

std::vector<Dispatcher::QueueView> Dispatcher::Queues(
    const std::vector<std::string>& also) {
  absl::MutexLock lock(&mu_);
  const absl::Time now = clock_->Now();
  std::set<std::string> names(also.begin(), also.end());
  for (const auto& [name, row] : gates_.queues()) names.insert(name);
  for (const auto& [name, buckets] : finished_) {
    if (FinishedLastMinuteLocked(name, now) > 0) names.insert(name);
  }
  struct Serving {
    int32_t workers = 0;
    int32_t free_slots = 0;
  };
  std::map<std::string, Serving> serving;
  for (const auto& [id, s] : sessions_) {
    for (const WorkerQueueSpec& q : s.queues) {
      Serving& v = serving[q.name];
      ++v.workers;
      v.free_slots += std::max(0, s.slots - s.used);
    }
  }
  for (const auto& [name, v] : serving) names.insert(name);
  std::vector<QueueView> out;
  out.reserve(names.size());
  for (const std::string& name : names) {
    QueueView v;
    v.settings = gates_.EffectiveSettings(name, now);
    v.stored = gates_.stored(name);
    if (auto w = serving.find(name); w != serving.end()) {
      v.workers = w->second.workers;
      v.free_slots = w->second.free_slots;
    }
    if (auto l = queue_leases_.find(name); l != queue_leases_.end()) {
      v.running = l->second;
    }
    v.finished_last_minute = FinishedLastMinuteLocked(name, now);
    out.push_back(std::move(v));
  }
  return out;
}

// --- Shutdown ---

void Dispatcher::Drain(absl::Time deadline) {
  absl::MutexLock lock(&mu_);
  draining_ = true;
  for (auto& [id, s] : sessions_) {
    s.conn->SendDrain(deadline);
    if (s.used == 0) s.conn->EndSession();
  }
}

int64_t Dispatcher::LeaseCount() {
  absl::MutexLock lock(&mu_);
  return static_cast<int64_t>(leases_.size());
}

bool Dispatcher::AwaitNoLeasesBlocking(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  auto none = [this] {
    mu_.AssertReaderHeld();
    return leases_.empty();
  };
  return mu_.AwaitWithTimeout(absl::Condition(&none), timeout);
}

bool Dispatcher::ReleaseAllLeasesBlocking(absl::Duration timeout) {
  std::vector<Action> actions;
  {
    absl::MutexLock lock(&mu_);
    draining_ = true;
    releasing_ = true;
    for (auto& [job_id, lease] : leases_) {
      if (lease.active && !lease.ending) {
        EndLeaseLocked(&lease, wt::LeaseEndCause::kShutdown);
      }
    }
    actions.swap(deferred_);
  }
  // The loop may be stopped already: submit from here.
  Submit(std::move(actions));
  return AwaitNoLeasesBlocking(timeout);
}

DispatcherStats Dispatcher::Stats() {
  absl::MutexLock lock(&mu_);
  DispatcherStats st;
  st.sessions = static_cast<int64_t>(sessions_.size());
  st.ready = index_.size();
  st.leases = static_cast<int64_t>(leases_.size());
  st.scheduled = static_cast<int64_t>(scheduled_.size());
  st.assigned = assigned_;
  for (const auto& [id, s] : sessions_) {
    st.free_slots += std::max<int64_t>(0, s.slots - s.used);
  }
  st.lease_expiries = lease_expiries_;
  return st;
}

void Dispatcher::SetAssignObserver(AssignObserver* observer) {
  absl::MutexLock lock(&mu_);
  assign_observer_ = observer;
}

std::vector<absl::Duration> Dispatcher::TakeLatencySamples() {
  absl::MutexLock lock(&mu_);
  std::vector<absl::Duration> out;
  out.swap(latencies_);
  return out;
}

}  // namespace jobwire
