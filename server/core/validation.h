// Validation of jobs entering the system.
//
// api/ calls these before converting a request; storage/ calls them again
// defensively before writing a row. Pure functions, thread-safe.
#ifndef JOBWIRE_SERVER_CORE_VALIDATION_H_
#define JOBWIRE_SERVER_CORE_VALIDATION_H_

#include <cstddef>
#include <cstdint>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "server/core/job.h"

namespace jobwire {

inline constexpr size_t kMaxPayloadBytes = 1 << 20;
inline constexpr size_t kMaxArgsJsonBytes = 1 << 20;
inline constexpr size_t kMaxLabels = 64;
inline constexpr size_t kMaxLabelValueBytes = 256;
inline constexpr size_t kMaxRequestIdLength = 128;
inline constexpr int32_t kMaxMaxAttempts = 1000;
inline constexpr int32_t kMaxAbsPriority = 1000000;
// Pause and cancel reasons, in bytes.
inline constexpr size_t kMaxReasonBytes = 1024;

// What a job may hold as protobuf, so that every job, and every event, stays
// well below gRPC's default 4 MiB message limit and any client can read it
// back (GetJob, a watch's snapshot): args at submit (a Struct; one of many
// small numbers is ~5x its JSON), and what a worker reports. Together with
// the payload and labels a job stays under ~3.7 MiB.
inline constexpr size_t kMaxArgsWireBytes = 1 << 20;
inline constexpr size_t kMaxResultWireBytes = 1 << 20;  // data + payload
inline constexpr size_t kMaxCheckpointBytes = 512 << 10;
inline constexpr size_t kMaxErrorWireBytes = 64 << 10;     // message + details
inline constexpr size_t kMaxProgressWireBytes = 64 << 10;  // message + details
inline constexpr size_t kMaxLogLineBytes = 64 << 10;

// True for `[a-z0-9][a-z0-9._-]{0,127}`.
bool IsValidQueueName(absl::string_view name);
// True for `[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}`.
bool IsValidKind(absl::string_view kind);
// True for `[a-z0-9][a-z0-9._/-]{0,62}`.
bool IsValidLabelKey(absl::string_view key);

// OK for a job id (a ULID); INVALID_ARGUMENT on `field` ("is required", "is
// not a job id (ULID)") otherwise.
absl::Status CheckJobId(absl::string_view id, absl::string_view field);

// Checks the input fields of a job to be created (the fields a client sets;
// id, state and times are ignored). An empty queue means "default" and
// max_attempts 0 means the default; both are valid.
// Returns OK or INVALID_ARGUMENT with one field violation per problem, with
// paths "job.queue", "job.kind", "job.labels[KEY]", "job.payload", "job.args",
// "job.priority", "job.max_attempts", "job.retry_policy.FIELD",
// "job.attempt_timeout", "job.webhook.url", "request_id".
absl::Status ValidateNewJob(const Job& job);

}  // namespace jobwire

#endif  // JOBWIRE_SERVER_CORE_VALIDATION_H_
