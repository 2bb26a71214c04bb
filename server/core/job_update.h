// Field-mask updates of a job: UpdateJob, and the patches of BulkUpdateJobs.
//
// An update names the fields it writes by their update_mask paths (the
// jobwire.v1.Job field names) and carries their new values in a Job.
// ParseUpdateMask checks the paths; UpdateMutation is the pure step the store
// runs on its writer thread against the job as committed (see job_change.h).
//
// Updatable paths:
//   priority, queue, labels (the whole map), labels.KEY (one label: set to
//   the value's labels[KEY], removed when the value has no KEY),
//   schedule_time, max_attempts, retry_policy, attempt_timeout,
//   args and payload (only before the job's first attempt starts).
// An unset value clears the field to what a new job gets: queue "default",
// max_attempts 3, no schedule_time (run now), no retry_policy (the server's),
// no attempt_timeout, empty args, payload or labels.
//
// Pure functions; thread-safe.
#ifndef JOBWIRE_SERVER_CORE_JOB_UPDATE_H_
#define JOBWIRE_SERVER_CORE_JOB_UPDATE_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/core/job.h"
#include "server/core/job_change.h"

namespace jobwire {

enum class UpdateField {
  kPriority,
  kQueue,
  kLabels,  // the whole map
  kLabel,   // one key, UpdatePath::label_key
  kScheduleTime,
  kMaxAttempts,
  kRetryPolicy,
  kAttemptTimeout,
  kArgs,
  kPayload,
};

struct UpdatePath {
  UpdateField field = UpdateField::kPriority;
  std::string label_key;  // kLabel only
  // The path as given: "priority", "labels.team".
  std::string path;
};

struct JobPatch {
  // No duplicates; in the order given.
  std::vector<UpdatePath> paths;
  // The new values of those fields; every other field is ignored.
  Job values;
};

// The paths of an update mask, checked. Fails with INVALID_ARGUMENT, one
// violation per bad path on "<mask_field>.paths[i]": an empty mask (on
// `mask_field` itself: "is required"), "*", an unknown field, a field that is
// never updatable (state, id, kind, webhook, output fields), a sub-path of a
// field other than labels, a bad label key. Repeated paths count once.
absl::StatusOr<std::vector<UpdatePath>> ParseUpdateMask(
    const std::vector<std::string>& paths, absl::string_view mask_field);

// The new values of `patch` checked by the rules for new jobs
// (ValidateNewJob), for the masked fields only. Violation paths start with
// `job_field` ("job", "patch"). OK or INVALID_ARGUMENT.
absl::Status ValidatePatch(const JobPatch& patch, absl::string_view job_field);

// Writes the masked fields of the job:
//  - ABORTED when `etag` is not empty and differs from the job's etag;
//  - FAILED_PRECONDITION (type "STATE") for a terminal job, and (type
//    "STARTED") for new args or payload once an attempt has started, and
//    (type "ATTEMPTS") for max_attempts below the attempt under way or, for
//    a job not running, the next one;
//  - INVALID_ARGUMENT when labels.KEY paths would leave more than kMaxLabels.
// Only fields whose value changes are written, recorded in one `updated`
// event listing their paths; an update that changes nothing writes nothing
// (the etag stays). A QUEUED or SCHEDULED job whose schedule_time moves
// across now also changes state (QUEUED <-> SCHEDULED, reason
// "rescheduled"), in a state_changed event after the `updated` one.
JobMutation UpdateMutation(JobPatch patch, std::string etag);

}  // namespace jobwire

#endif  // JOBWIRE_SERVER_CORE_JOB_UPDATE_H_
