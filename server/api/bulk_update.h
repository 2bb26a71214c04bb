// BulkUpdateJobs: one patch or action applied to many jobs, chunk by chunk.
//
// A request selects jobs by `ids` (duplicates count once) or by a ListJobs
// `filter`, read in create_time order in keyset pages: a job the update
// changes (or a job submitted meanwhile, after the last page) never shifts
// the selection, so each matched job is visited once. To each job it applies
// a patch (core/job_update.h, no etag) or an action: CANCEL, PAUSE, RESUME,
// RETRY (core/transitions.h; RETRY grants one more attempt) or DELETE
// (JobStore::Delete, terminal jobs only).
//
// Every job lands in exactly one count (matched = updated + skipped +
// failed):
//  - skipped: not in `expected_states` (checked on the store's writer against
//    the job as committed, so a job that moved since it was read is left
//    alone), refused because of its state (RefusedForState: resume of a
//    QUEUED job, any patch of a finished one), or a patch that changes
//    nothing;
//  - updated: written, or for a RUNNING job under CANCEL or PAUSE, handed to
//    the RunningJobHook (the dispatcher tells its worker), as CancelJob does;
//  - failed: any other per-job error (NOT_FOUND for an unknown id, ABORTED,
//    FAILED_PRECONDITION "STARTED" or "ATTEMPTS"); the first kMaxListedFailures
//    are listed with their code and message.
// A dry run reads each job and classifies it the same way against the job as
// read, writing nothing.
//
// Chunks: a chunk of at most `chunk_jobs` jobs is one JobStore::BulkWrite
// (in one transaction, a few set-based statements), and up to 8 chunks of a
// request wait in the store at once, queued one after the other on the
// Executor (with a filter, each page read after the previous chunk was
// queued), so the writer goes from one chunk to the next without a round
// trip and commits several together while no other write waits. Writes
// from other callers go before chunks queued ahead of them and are never
// committed with them (see SqliteJobStore), so they wait for one chunk and
// one commit at most, and a request holds one page in memory at most, and
// the ids of the chunks in flight, whatever its size.
//
// The run ends early, with the status it returns, when `stop` (polled before
// each chunk) returns non-OK, and with the store's error when storage fails
// (an UNAVAILABLE, RESOURCE_EXHAUSTED, INTERNAL or DATA_LOSS answer, its
// details kept); either way the message says how many jobs were matched and
// updated before. Jobs of a chunk already queued are answered either way.
#ifndef JOBWIRE_SERVER_API_BULK_UPDATE_H_
#define JOBWIRE_SERVER_API_BULK_UPDATE_H_

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "jobwire/v1/job_service.pb.h"
#include "server/api/stream_registry.h"
#include "server/common/clock.h"
#include "server/common/executor.h"
#include "server/core/job.h"
#include "server/core/job_update.h"
#include "server/storage/job_store.h"

namespace jobwire {

// Asks the dispatcher to cancel (or pause) a RUNNING job; `done` gets the
// job as it stands after the request was taken. Must not block.
using RunningJobHook = std::function<void(
    const std::string& id, const std::string& reason, JobCallback done)>;

inline constexpr int kMaxListedFailures = 100;

struct BulkRequest {
  enum class Action { kPatch, kCancel, kPause, kResume, kRetry, kDelete };
  Action action = Action::kPatch;
  JobPatch patch;  // kPatch only
  // The selection: `filter` when set, else `ids` (distinct, in order given).
  std::optional<std::string> filter;
  std::vector<std::string> ids;
  // Empty: any state.
  std::vector<JobState> expected_states;
  bool dry_run = false;
};

// A request, checked. INVALID_ARGUMENT with one violation per problem: no
// selector ("ids"), an empty id list ("ids.ids"), a bad id ("ids.ids[i]"), a
// bad filter ("filter", with the position), an unknown action ("action"), a
// mask with an action ("update_mask"), a bad mask or patch value
// ("update_mask.paths[i]", "patch.X"), a bad state ("expected_states[i]").
absl::StatusOr<BulkRequest> BulkRequestFromProto(
    const v1::BulkUpdateJobsRequest& request);

struct BulkDeps {
  // Not owned; must outlive every run.
  JobStore* store = nullptr;
  Executor* executor = nullptr;
  Clock* clock = nullptr;
  // Null: RUNNING jobs are skipped (refused because of their state).
  RunningJobHook cancel_running;
  RunningJobHook pause_running;
  int chunk_jobs = 500;  // values below 1 mean 1; above 1,000 mean 1,000
  // A stream's request over this, as protobuf, ends it RESOURCE_EXHAUSTED.
  size_t max_request_bytes = 4 << 20;
};

// Runs `request` and calls `done` exactly once, with the counts or the error
// that ended the run (see the file comment), on the store's completion
// thread or an Executor thread. Non-blocking. `stop` and `done` must not
// block; `stop` may be called from those threads too.
void RunBulkUpdate(
    const BulkDeps& deps, BulkRequest request,
    std::function<absl::Status()> stop,
    std::function<void(absl::StatusOr<v1::BulkUpdateJobsResponse>)> done);

// The BulkUpdateJobs stream: reads a request, runs it, writes its response,
// and only then reads the next, so one request per stream runs at a time. A
// bad request or a failed run ends the stream with its status; the client
// ending its side ends it with OK. While the server drains, a new request
// gets UNAVAILABLE and a running one stops before its next chunk, as it does
// when the client cancels. Deletes itself after OnDone and after its run
// has answered.
grpc::ServerBidiReactor<v1::BulkUpdateJobsRequest, v1::BulkUpdateJobsResponse>*
NewBulkUpdateReactor(BulkDeps deps, StreamRegistry* registry,
                     const std::atomic<bool>* draining,
                     absl::Duration retry_delay);

}  // namespace jobwire

#endif  // JOBWIRE_SERVER_API_BULK_UPDATE_H_
