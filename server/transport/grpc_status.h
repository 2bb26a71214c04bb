// The one place where absl::Status becomes grpc::Status.
//
// The code and message carry over; the details attached by common/errors.h
// become google.rpc.BadRequest, PreconditionFailure, RetryInfo and ErrorInfo
// inside a google.rpc.Status in the grpc-status-details-bin trailer, so
// grpcurl and every SDK decode them. UNKNOWN is never sent: a status with code
// UNKNOWN becomes INTERNAL.
#ifndef JOBWIRE_SERVER_TRANSPORT_GRPC_STATUS_H_
#define JOBWIRE_SERVER_TRANSPORT_GRPC_STATUS_H_

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace jobwire {

grpc::Status ToGrpcStatus(const absl::Status& status);

}  // namespace jobwire

#endif  // JOBWIRE_SERVER_TRANSPORT_GRPC_STATUS_H_
