// JobStore: durable storage of jobs and their event log.
//
// The interface is drawn so that a PostgreSQL backend can sit beside the
// SQLite one without touching api/ or scheduling/.
//
// Writes are asynchronous: they are queued to the store's writer, committed
// together with other pending writes (group commit), and answered through
// `done` on the writer thread only after the commit is durable (or failed).
// Before any `done` of a commit runs, the commit's events are handed to the
// CommitListener, so an event is never announced before it is durable and a
// caller that reads after `done` sees its write. `done` callbacks must not
// block; they typically finish a gRPC reactor or schedule work.
//
// Reads (`...Blocking`) run on the calling thread on a reader connection and
// may block on disk: never call them from a gRPC callback thread.
//
// Thread-safe. Errors: INVALID_ARGUMENT for bad input, NOT_FOUND for unknown
// ids, RESOURCE_EXHAUSTED when the disk is full, UNAVAILABLE when the database
// is busy or the store is shut down, INTERNAL for anything else.
#ifndef JOBWIRE_SERVER_STORAGE_JOB_STORE_H_
#define JOBWIRE_SERVER_STORAGE_JOB_STORE_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "server/core/job.h"
#include "server/core/job_change.h"

namespace jobwire {

struct NewJob {
  // Input fields of the job; id, state and times are set by the store.
  Job job;
};

struct SubmitOutcome {
  Job job;
  // False when job.request_id matched an existing job, which is returned.
  bool created = true;
};

using SubmitCallback =
    std::function<void(absl::StatusOr<std::vector<SubmitOutcome>>)>;
using JobCallback = std::function<void(absl::StatusOr<Job>)>;

class JobStore {
 public:
  virtual ~JobStore() = default;

  // Creates jobs, all in one transaction: QUEUED, or SCHEDULED when
  // schedule_time is in the future; each gets a "submitted" state_changed
  // event. A job whose request_id exists already is not created again; the
  // existing job is returned with created=false.
  virtual void Submit(std::vector<NewJob> jobs, SubmitCallback done) = 0;

  // Runs `mutation` against job `id` inside a write transaction and writes its
  // result. `done` gets the job as committed, NOT_FOUND, or the mutation's
  // own error (nothing written).
  virtual void Mutate(std::string id, JobMutation mutation, JobCallback done) = 0;

  // NOT_FOUND for an unknown id.
  virtual absl::StatusOr<Job> GetJobBlocking(const std::string& id) = 0;

  // Events of one job with seq > after_seq, in seq order, at most `limit`.
  virtual absl::StatusOr<std::vector<JobEvent>> ReadJobEventsBlocking(
      const std::string& job_id, int64_t after_seq, int limit) = 0;

  // Events of all jobs with event_id > after_event_id, in order, at most `limit`.
  virtual absl::StatusOr<std::vector<JobEvent>> ReadEventsBlocking(
      int64_t after_event_id, int limit) = 0;

  // Stops taking writes, commits what is queued, answers every caller, and
  // closes the database cleanly. Idempotent.
  virtual void Shutdown() = 0;
};

}  // namespace jobwire

#endif  // JOBWIRE_SERVER_STORAGE_JOB_STORE_H_
