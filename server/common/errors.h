// Error constructors that carry the API's rich details inside absl::Status.
//
// absl::Status is the one error currency in every layer. The API promises
// google.rpc detail messages with some codes (BadRequest with
// INVALID_ARGUMENT, PreconditionFailure with FAILED_PRECONDITION, RetryInfo
// with UNAVAILABLE, ErrorInfo with RESOURCE_EXHAUSTED). Layers below api/ do
// not see protobuf, so the details travel as absl::Status payloads in a small
// private text encoding; transport/grpc_status.h turns them into google.rpc
// messages in exactly one place.
#ifndef JOBWIRE_SERVER_COMMON_ERRORS_H_
#define JOBWIRE_SERVER_COMMON_ERRORS_H_

#include <cstddef>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace jobwire {

struct FieldViolation {
  std::string field;        // path, for example "job.queue"
  std::string description;  // why it is invalid
};

struct PreconditionViolation {
  std::string type;  // for example "STATE"
  std::string subject;
  std::string description;
};

// INVALID_ARGUMENT with one BadRequest field violation per entry. The status
// message joins the violations ("job.kind: is required; ...").
absl::Status InvalidArgumentError(std::vector<FieldViolation> violations);
absl::Status InvalidArgumentError(absl::string_view field,
                                  absl::string_view description);

// FAILED_PRECONDITION with a PreconditionFailure detail.
absl::Status FailedPreconditionError(absl::string_view message,
                                     PreconditionViolation violation);

// UNAVAILABLE with a RetryInfo detail.
absl::Status UnavailableError(absl::string_view message,
                              absl::Duration retry_delay);

// How long a client is told to wait before retrying a call or stream that
// the server's shutdown ended (a restarted server is back by then).
inline constexpr absl::Duration kShutdownRetryDelay = absl::Seconds(1);

// What every call and stream that the server's shutdown ends or refuses
// gets: UNAVAILABLE "server is shutting down" with a RetryInfo detail.
absl::Status ShuttingDownError(
    absl::Duration retry_delay = kShutdownRetryDelay);

// RESOURCE_EXHAUSTED with an ErrorInfo detail (domain "jobwire.dev").
absl::Status ResourceExhaustedError(absl::string_view message,
                                    absl::string_view reason);

// The ErrorInfo reason of a request over the server's size limit.
inline constexpr char kRequestTooLargeReason[] = "REQUEST_TOO_LARGE";

// What a gRPC request message or an HTTP request body larger than
// --max-receive-message-bytes gets: RESOURCE_EXHAUSTED, reason
// REQUEST_TOO_LARGE, "<what> too large: [<bytes> bytes, ]at most <limit>
// bytes (--max-receive-message-bytes)". `bytes` 0: not known.
absl::Status RequestTooLargeError(absl::string_view what, size_t bytes,
                                  size_t limit);

// Readers of the details above; empty / false when the status has none.
std::vector<FieldViolation> GetFieldViolations(const absl::Status& status);
std::vector<PreconditionViolation> GetPreconditionViolations(
    const absl::Status& status);
bool GetRetryDelay(const absl::Status& status, absl::Duration* delay);
std::string GetErrorReason(const absl::Status& status);

}  // namespace jobwire

#endif  // JOBWIRE_SERVER_COMMON_ERRORS_H_
