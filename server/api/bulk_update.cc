#include "server/api/bulk_update.h"

#include <algorithm>
#include <memory>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "server/api/convert.h"
#include "server/api/request_stream.h"
#include "server/common/errors.h"
#include "server/core/filter.h"
#include "server/core/transitions.h"
#include "server/core/validation.h"

namespace jobwire {
namespace {

using Action = BulkRequest::Action;

constexpr int kMaxChunkJobs = 1000;
// Chunks of one run queued in the store at once: the writer goes from one to
// the next without waiting for this run, and commits several together while
// no other write waits (SqliteJobStore::Options::max_bulk_jobs).
constexpr int kChunksInFlight = 8;
// Byte budget of one page a filter reads (ApproxBytes): one is held at a
// time.
constexpr size_t kPageMaxBytes = 16 << 20;
constexpr char kCancelReason[] = "cancelled by a bulk update";

bool IsStorageFailure(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kResourceExhausted:
    case absl::StatusCode::kInternal:
    case absl::StatusCode::kDataLoss:
      return true;
    default:
      return false;
  }
}

bool IsExpected(const std::vector<JobState>& expected, JobState state) {
  return expected.empty() ||
         std::find(expected.begin(), expected.end(), state) != expected.end();
}

absl::Status NotExpected(const Job& job) {
  return FailedPreconditionError(
      absl::StrCat("job ", job.id, " is ", JobStateName(job.state),
                   ", not one of expected_states"),
      PreconditionViolation{"STATE", absl::StrCat("jobs/", job.id),
                            absl::StrCat("job is ", JobStateName(job.state))});
}

// `status` with `prefix` in front of its message, its code and details kept.
absl::Status Prefixed(const absl::Status& status, absl::string_view prefix) {
  absl::Status out(status.code(), absl::StrCat(prefix, status.message()));
  status.ForEachPayload(
      [&out](absl::string_view url, const absl::Cord& payload) {
        out.SetPayload(url, payload);
      });
  return out;
}

std::optional<Action> ActionFromProto(v1::BulkUpdateJobsRequest::Action a) {
  switch (a) {
    case v1::BulkUpdateJobsRequest::ACTION_UNSPECIFIED:
      return Action::kPatch;
    case v1::BulkUpdateJobsRequest::ACTION_CANCEL:
      return Action::kCancel;
    case v1::BulkUpdateJobsRequest::ACTION_PAUSE:
      return Action::kPause;
    case v1::BulkUpdateJobsRequest::ACTION_RESUME:
      return Action::kResume;
    case v1::BulkUpdateJobsRequest::ACTION_RETRY:
      return Action::kRetry;
    case v1::BulkUpdateJobsRequest::ACTION_DELETE:
      return Action::kDelete;
    default:
      return std::nullopt;
  }
}

void AddViolations(const absl::Status& status,
                   std::vector<FieldViolation>& violations) {
  if (status.ok()) return;
  std::vector<FieldViolation> found = GetFieldViolations(status);
  if (found.empty()) found.push_back({"", std::string(status.message())});
  for (FieldViolation& v : found) violations.push_back(std::move(v));
}

// One request's run. Reference counted: the Executor task or the store
// writes in flight hold it.
class BulkRun : public std::enable_shared_from_this<BulkRun> {
 public:
  BulkRun(const BulkDeps& deps, BulkRequest request,
          std::function<absl::Status()> stop,
          std::function<void(absl::StatusOr<v1::BulkUpdateJobsResponse>)> done)
      : deps_(deps),
        request_(std::move(request)),
        chunk_jobs_(std::clamp(deps.chunk_jobs, 1, kMaxChunkJobs)),
        stop_(std::move(stop)),
        done_(std::move(done)) {
    switch (request_.action) {
      case Action::kPatch:
        base_ = UpdateMutation(request_.patch, "");
        break;
      case Action::kCancel:
        base_ = CancelMutation(kCancelReason);
        hook_ = deps_.cancel_running;
        hook_reason_ = kCancelReason;
        break;
      case Action::kPause:
        base_ = PauseMutation();
        hook_ = deps_.pause_running;
        break;
      case Action::kResume:
        base_ = ResumeMutation();
        break;
      case Action::kRetry:
        base_ = RetryMutation(1);
        break;
      case Action::kDelete:
        break;
    }
    auto spec = std::make_shared<BulkWriteSpec>();
    const std::vector<JobState> expected = request_.expected_states;
    if (request_.action == Action::kDelete) {
      spec->del = true;
      spec->check = [expected](const Job& job) -> absl::Status {
        if (!IsExpected(expected, job.state)) return NotExpected(job);
        return absl::OkStatus();
      };
    } else {
      spec->mutation = [expected, base = base_](
                           const Job& current,
                           absl::Time now) -> absl::StatusOr<JobChange> {
        if (!IsExpected(expected, current.state)) return NotExpected(current);
        return base(current, now);
      };
    }
    spec_ = std::move(spec);
  }

  // Starts the run: queues its first chunks (on the Executor).
  void Start() {
    {
      absl::MutexLock lock(&mu_);
      filling_ = true;
    }
    ScheduleFill();
  }

 private:
  // One chunk in flight: its write, and the RUNNING jobs handed to the
  // dispatcher. The chunk is done when all of them are.
  struct Chunk {
    explicit Chunk(int parts) : pending(parts) {}
    std::atomic<int> pending;
    std::vector<std::string> ids;
  };

  void ScheduleFill() {
    std::shared_ptr<BulkRun> self = shared_from_this();
    if (!deps_.executor->Schedule([self] { self->Fill(); })) {
      {
        absl::MutexLock lock(&mu_);
        filling_ = false;
        if (storage_error_.ok()) storage_error_ = ShuttingDownError();
      }
      MaybeEnd();
    }
  }

  // Executor thread, one call at a time (filling_): reads the next chunks
  // and queues their writes (or, on a dry run, classifies them) until
  // kChunksInFlight are in flight or the selection is read. With a filter,
  // each page is read after the previous one was queued, while the writer
  // works on it (keyset paging starts after the previous page's last job, so
  // what the writes change does not move it).
  void Fill() {
    while (true) {
      {
        absl::MutexLock lock(&mu_);
        if (ended_ || !storage_error_.ok() || !more_ ||
            in_flight_ >= kChunksInFlight) {
          filling_ = false;
          break;
        }
      }
      // filling_ stays set on the paths that End here: nothing refills.
      const absl::Status stop = stop_();
      if (!stop.ok()) return End(stop);
      std::vector<Job> rows;  // filter or dry run
      std::vector<std::string> ids;
      bool more = false;
      if (request_.filter.has_value()) {
        absl::StatusOr<ListJobsResult> page = ReadPage();
        if (!page.ok()) return End(page.status());
        page_token_ = std::move(page->next_page_token);
        more = !page_token_.empty();
        rows = std::move(page->jobs);
        ids.reserve(rows.size());
        for (const Job& job : rows) ids.push_back(job.id);
      } else {
        const size_t end =
            std::min(request_.ids.size(), next_id_ + chunk_jobs_);
        ids.assign(request_.ids.begin() + next_id_, request_.ids.begin() + end);
        next_id_ = end;
        more = next_id_ < request_.ids.size();
      }
      {
        absl::MutexLock lock(&mu_);
        more_ = more;
        response_.set_matched(response_.matched() +
                              static_cast<int64_t>(ids.size()));
        if (!request_.dry_run && !ids.empty()) ++in_flight_;
      }
      if (request_.dry_run) {
        const absl::Status status = DryRun(ids, rows);
        if (!status.ok()) return End(status);
        continue;
      }
      if (ids.empty()) continue;
      auto chunk = std::make_shared<Chunk>(1);
      chunk->ids = ids;
      std::shared_ptr<BulkRun> self = shared_from_this();
      deps_.store->BulkWrite(
          std::move(ids), spec_,
          [self, chunk](absl::StatusOr<std::vector<BulkItemResult>> results) {
            self->Written(chunk, std::move(results));
          });
    }
    MaybeEnd();
  }

  absl::StatusOr<ListJobsResult> ReadPage() {
    ListJobsQuery query;
    query.filter = *request_.filter;
    query.page_size = static_cast<int32_t>(chunk_jobs_);
    query.page_token = page_token_;
    // Jobs with large args: a chunk ends early rather than hold them all.
    query.max_bytes = kPageMaxBytes;
    // A write needs the ids alone (the writer reads each job as committed);
    // a dry run classifies the jobs as read.
    if (!request_.dry_run) return deps_.store->ListJobKeysBlocking(query);
    return deps_.store->ListJobsBlocking(query);
  }

  // Store completion thread: the chunk's write was answered. RUNNING jobs
  // refused under CANCEL or PAUSE go to the dispatcher, which tells their
  // worker, as CancelJob does.
  void Written(const std::shared_ptr<Chunk>& chunk,
               absl::StatusOr<std::vector<BulkItemResult>> results) {
    if (!results.ok()) {
      {
        absl::MutexLock lock(&mu_);
        if (storage_error_.ok()) storage_error_ = results.status();
      }
      return Arrive(*chunk);
    }
    std::shared_ptr<BulkRun> self = shared_from_this();
    for (size_t i = 0; i < results->size(); ++i) {
      const BulkItemResult& r = (*results)[i];
      const std::string& id = chunk->ids[i];
      if (!r.status.ok() && hook_ && RefusedBecauseRunning(r.status)) {
        chunk->pending.fetch_add(1);
        hook_(id, hook_reason_, [self, chunk, id](absl::StatusOr<Job> job) {
          self->Record(id, job.status(), true);
          self->Arrive(*chunk);
        });
        continue;
      }
      Record(id, r.status, r.changed);
    }
    Arrive(*chunk);
  }

  void Arrive(Chunk& chunk) {
    if (chunk.pending.fetch_sub(1) == 1) ChunkDone();
  }

  // The change to `current`: refused when it is not in expected_states.
  absl::StatusOr<JobChange> Change(const Job& current, absl::Time now) const {
    if (!IsExpected(request_.expected_states, current.state))
      return NotExpected(current);
    return base_(current, now);
  }

  // Executor thread: what the writes of this chunk would do, against the
  // jobs as read now. Fails with a storage error only.
  absl::Status DryRun(const std::vector<std::string>& ids,
                      std::vector<Job>& rows) {
    if (!request_.filter.has_value()) {
      for (const std::string& id : ids) {
        absl::StatusOr<Job> job = deps_.store->GetJobBlocking(id);
        if (job.ok()) {
          rows.push_back(*std::move(job));
        } else if (job.status().code() == absl::StatusCode::kNotFound) {
          Record(id, job.status(), false);
        } else {
          return job.status();
        }
      }
    }
    const absl::Time now = deps_.clock->Now();
    for (const Job& job : rows) {
      if (request_.action == Action::kDelete) {
        Record(job.id, absl::OkStatus(),
               IsTerminal(job.state) &&
                   IsExpected(request_.expected_states, job.state));
        continue;
      }
      absl::StatusOr<JobChange> change = Change(job, now);
      if (!change.ok() && hook_ && RefusedBecauseRunning(change.status())) {
        Record(job.id, absl::OkStatus(), true);
        continue;
      }
      Record(job.id, change.status(), change.ok() && !change->events.empty());
    }
    return absl::OkStatus();
  }

  void Record(const std::string& id, const absl::Status& status, bool changed) {
    absl::MutexLock lock(&mu_);
    if (status.ok()) {
      if (changed) {
        response_.set_updated(response_.updated() + 1);
      } else {
        response_.set_skipped(response_.skipped() + 1);
      }
    } else if (RefusedForState(status)) {
      response_.set_skipped(response_.skipped() + 1);
    } else if (IsStorageFailure(status)) {
      if (storage_error_.ok()) storage_error_ = status;
    } else {
      response_.set_failed(response_.failed() + 1);
      if (response_.failures_size() < kMaxListedFailures) {
        v1::BulkUpdateJobsResponse::Failure* f = response_.add_failures();
        f->set_id(id);
        f->set_code(static_cast<int32_t>(status.code()));
        f->set_message(std::string(status.message()));
      }
    }
  }

  // A chunk's write and hooks were answered: queue more, or end the run
  // once nothing is in flight.
  void ChunkDone() {
    bool fill = false;
    {
      absl::MutexLock lock(&mu_);
      --in_flight_;
      if (!ended_ && storage_error_.ok() && more_ && !filling_) {
        filling_ = true;
        fill = true;
      }
    }
    if (fill) return ScheduleFill();
    MaybeEnd();
  }

  // Ends the run when nothing is in flight or being queued and the
  // selection is read or storage failed.
  void MaybeEnd() {
    absl::Status storage_error;
    {
      absl::MutexLock lock(&mu_);
      if (in_flight_ > 0 || filling_ || (more_ && storage_error_.ok())) return;
      storage_error = storage_error_;
    }
    End(storage_error);
  }

  void End(const absl::Status& status) {
    v1::BulkUpdateJobsResponse response;
    {
      absl::MutexLock lock(&mu_);
      if (ended_) return;
      ended_ = true;
      response = std::move(response_);
    }
    if (status.ok()) return done_(std::move(response));
    done_(Prefixed(status, absl::StrCat("bulk update stopped after ",
                                        response.matched(), " jobs matched, ",
                                        response.updated(), " updated: ")));
  }

  const BulkDeps deps_;
  const BulkRequest request_;
  const size_t chunk_jobs_;
  const std::function<absl::Status()> stop_;
  const std::function<void(absl::StatusOr<v1::BulkUpdateJobsResponse>)> done_;
  JobMutation base_;  // every action but kDelete
  std::shared_ptr<const BulkWriteSpec> spec_;
  RunningJobHook hook_;
  std::string hook_reason_;

  // The selection's position; only Fill touches them, one call at a time.
  std::string page_token_;
  size_t next_id_ = 0;

  absl::Mutex mu_;
  // Not all of the selection is read yet.
  bool more_ ABSL_GUARDED_BY(mu_) = true;
  // Chunks queued in the store and not yet done (ChunkDone).
  int in_flight_ ABSL_GUARDED_BY(mu_) = 0;
  // A Fill is scheduled or running.
  bool filling_ ABSL_GUARDED_BY(mu_) = false;
  v1::BulkUpdateJobsResponse response_ ABSL_GUARDED_BY(mu_);
  absl::Status storage_error_ ABSL_GUARDED_BY(mu_);
  bool ended_ ABSL_GUARDED_BY(mu_) = false;
};

class BulkUpdateReactor final
    : public RequestStream<v1::BulkUpdateJobsRequest,
                           v1::BulkUpdateJobsResponse> {
 public:
  BulkUpdateReactor(BulkDeps deps, StreamRegistry* registry,
                    const std::atomic<bool>* draining,
                    absl::Duration retry_delay)
      : RequestStream(registry, deps.max_request_bytes),
        deps_(std::move(deps)),
        draining_(draining),
        retry_delay_(retry_delay) {}

 private:
  void Handle(const v1::BulkUpdateJobsRequest& proto) override {
    absl::StatusOr<BulkRequest> request =
        draining_->load() ? ShuttingDown() : BulkRequestFromProto(proto);
    if (!request.ok()) return Answer(request.status());
    RunBulkUpdate(
        deps_, *std::move(request), [this] { return StopStatus(); },
        [this](absl::StatusOr<v1::BulkUpdateJobsResponse> response) {
          Answer(std::move(response));
        });
  }

  absl::Status ShuttingDown() const {
    return UnavailableError("server is shutting down", retry_delay_);
  }

  absl::Status StopStatus() {
    if (finished()) return absl::CancelledError("the stream has ended");
    if (draining_->load()) return ShuttingDown();
    return absl::OkStatus();
  }

  const BulkDeps deps_;
  const std::atomic<bool>* const draining_;
  const absl::Duration retry_delay_;
};

}  // namespace

absl::StatusOr<BulkRequest> BulkRequestFromProto(
    const v1::BulkUpdateJobsRequest& request) {
  BulkRequest out;
  std::vector<FieldViolation> violations;
  switch (request.selector_case()) {
    case v1::BulkUpdateJobsRequest::kIds: {
      if (request.ids().ids().empty())
        violations.push_back({"ids.ids", "is required"});
      absl::flat_hash_set<std::string> seen;
      for (int i = 0; i < request.ids().ids_size(); ++i) {
        const std::string& id = request.ids().ids(i);
        absl::Status status = CheckJobId(id, absl::StrCat("ids.ids[", i, "]"));
        if (!status.ok()) {
          AddViolations(status, violations);
        } else if (seen.insert(id).second) {
          out.ids.push_back(id);
        }
      }
      break;
    }
    case v1::BulkUpdateJobsRequest::kFilter:
      AddViolations(ParseFilter(request.filter()).status(), violations);
      out.filter = request.filter();
      break;
    default:
      violations.push_back({"ids", "a selector is required: ids or filter"});
  }
  std::optional<Action> action = ActionFromProto(request.action());
  if (!action.has_value()) {
    violations.push_back(
        {"action", absl::StrCat("unknown action ", request.action())});
  } else if (*action != Action::kPatch) {
    out.action = *action;
    if (request.update_mask().paths_size() > 0) {
      violations.push_back(
          {"update_mask", "must be empty when an action is given"});
    }
  } else {
    absl::StatusOr<JobPatch> patch = PatchFromProto(
        request.patch(), request.update_mask(), "patch", "update_mask");
    if (patch.ok()) {
      out.patch = *std::move(patch);
    } else {
      AddViolations(patch.status(), violations);
    }
  }
  for (int i = 0; i < request.expected_states_size(); ++i) {
    const int value = request.expected_states(i);
    const JobState state = StateFromProto(request.expected_states(i));
    if (value == v1::Job::STATE_UNSPECIFIED || !v1::Job::State_IsValid(value)) {
      violations.push_back({absl::StrCat("expected_states[", i, "]"),
                            absl::StrCat("is not a job state: ", value)});
    } else if (std::find(out.expected_states.begin(), out.expected_states.end(),
                         state) == out.expected_states.end()) {
      out.expected_states.push_back(state);
    }
  }
  out.dry_run = request.dry_run();
  if (!violations.empty()) return InvalidArgumentError(std::move(violations));
  return out;
}

void RunBulkUpdate(
    const BulkDeps& deps, BulkRequest request,
    std::function<absl::Status()> stop,
    std::function<void(absl::StatusOr<v1::BulkUpdateJobsResponse>)> done) {
  auto run = std::make_shared<BulkRun>(deps, std::move(request),
                                       std::move(stop), std::move(done));
  run->Start();
}

grpc::ServerBidiReactor<v1::BulkUpdateJobsRequest, v1::BulkUpdateJobsResponse>*
NewBulkUpdateReactor(BulkDeps deps, StreamRegistry* registry,
                     const std::atomic<bool>* draining,
                     absl::Duration retry_delay) {
  auto* stream =
      new BulkUpdateReactor(std::move(deps), registry, draining, retry_delay);
  stream->Start();
  return stream;
}

}  // namespace jobwire
