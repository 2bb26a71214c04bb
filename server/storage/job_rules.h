// Rules of the JobStore contract that do not depend on the database, shared
// by SqliteJobStore and PgJobStore: what a Submit stores of its inputs, the
// common errors, and the job attributes an event carries. Internal to
// storage/. Pure functions; thread-compatible.
#ifndef JOBWIRE_SERVER_STORAGE_JOB_RULES_H_
#define JOBWIRE_SERVER_STORAGE_JOB_RULES_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "server/core/job.h"
#include "server/storage/job_store.h"

namespace jobwire {

// NOT_FOUND naming job `id`.
absl::Status JobNotFound(const std::string& id);

// FAILED_PRECONDITION (PreconditionFailure type "STATE") for a delete of a
// job that is not terminal.
absl::Status NotTerminalError(const std::string& id, JobState state);

// Copies the job attributes every event carries (queue, kind, priority,
// labels, run_after, state) from `job` into `e`.
void FillAttributes(const Job& job, JobEvent* e);

// Turns a Submit's inputs into the rows to insert, input fields only
// (defaults applied: queue "default", max_attempts 3); id, state, times,
// version and last_seq are the writer's to set. `bytes` gets the payload
// and args bytes (the batch caps' measure). Returns the first input's
// validation error (INVALID_ARGUMENT), with `rows` left empty.
absl::Status SubmitRows(std::vector<NewJob> inputs, std::vector<Job>* rows,
                        int64_t* bytes);

}  // namespace jobwire

#endif  // JOBWIRE_SERVER_STORAGE_JOB_RULES_H_
