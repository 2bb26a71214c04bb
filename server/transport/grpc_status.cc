#include "server/transport/grpc_status.h"

#include <string>

#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "server/common/errors.h"
#include "server/common/utf8.h"

namespace jobwire {

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  absl::StatusCode code = status.code();
  if (code == absl::StatusCode::kUnknown) code = absl::StatusCode::kInternal;
  // Messages and details may quote a client's bytes; what goes on the
  // wire must be valid UTF-8 (grpc-message, proto strings).
  const std::string message = ValidUtf8(status.message());

  google::rpc::Status rich;
  rich.set_code(static_cast<int>(code));
  rich.set_message(message);

  std::vector<FieldViolation> violations = GetFieldViolations(status);
  if (!violations.empty()) {
    google::rpc::BadRequest bad;
    for (const FieldViolation& v : violations) {
      auto* fv = bad.add_field_violations();
      fv->set_field(ValidUtf8(v.field));
      fv->set_description(ValidUtf8(v.description));
    }
    rich.add_details()->PackFrom(bad);
  }
  std::vector<PreconditionViolation> preconditions =
      GetPreconditionViolations(status);
  if (!preconditions.empty()) {
    google::rpc::PreconditionFailure failure;
    for (const PreconditionViolation& v : preconditions) {
      auto* pv = failure.add_violations();
      pv->set_type(ValidUtf8(v.type));
      pv->set_subject(ValidUtf8(v.subject));
      pv->set_description(ValidUtf8(v.description));
    }
    rich.add_details()->PackFrom(failure);
  }
  absl::Duration delay;
  if (GetRetryDelay(status, &delay)) {
    google::rpc::RetryInfo retry;
    retry.mutable_retry_delay()->set_seconds(absl::ToInt64Seconds(delay));
    retry.mutable_retry_delay()->set_nanos(
        static_cast<int32_t>(absl::ToInt64Nanoseconds(
            delay - absl::Seconds(absl::ToInt64Seconds(delay)))));
    rich.add_details()->PackFrom(retry);
  }
  std::string reason = GetErrorReason(status);
  if (!reason.empty()) {
    google::rpc::ErrorInfo info;
    info.set_reason(reason);
    info.set_domain("jobwire.dev");
    rich.add_details()->PackFrom(info);
  }
  if (rich.details_size() == 0) {
    return grpc::Status(static_cast<grpc::StatusCode>(code), message);
  }
  return grpc::Status(static_cast<grpc::StatusCode>(code), message,
                      rich.SerializeAsString());
}

}  // namespace jobwire
