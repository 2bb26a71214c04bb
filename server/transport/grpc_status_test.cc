#include "server/transport/grpc_status.h"

#include <gtest/gtest.h>

#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "server/common/errors.h"

namespace jobwire::test {
namespace {

google::rpc::Status Details(const grpc::Status& status) {
  google::rpc::Status rich;
  EXPECT_TRUE(rich.ParseFromString(status.error_details()));
  return rich;
}

TEST(GrpcStatusTest, OkStaysOk) {
  EXPECT_TRUE(ToGrpcStatus(absl::OkStatus()).ok());
}

TEST(GrpcStatusTest, PlainErrorKeepsCodeAndMessageWithoutDetails) {
  grpc::Status s = ToGrpcStatus(absl::NotFoundError("job j1 not found"));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(s.error_message(), "job j1 not found");
  EXPECT_TRUE(s.error_details().empty());
}

TEST(GrpcStatusTest, UnknownBecomesInternal) {
  grpc::Status s = ToGrpcStatus(absl::UnknownError("boom"));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INTERNAL);
}

TEST(GrpcStatusTest, FieldViolationsBecomeBadRequest) {
  grpc::Status s = ToGrpcStatus(InvalidArgumentError(
      {{"job.kind", "is required"}, {"job.queue", "bad name"}}));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  google::rpc::Status rich = Details(s);
  EXPECT_EQ(rich.code(), static_cast<int>(grpc::StatusCode::INVALID_ARGUMENT));
  ASSERT_EQ(rich.details_size(), 1);
  google::rpc::BadRequest bad;
  ASSERT_TRUE(rich.details(0).UnpackTo(&bad));
  ASSERT_EQ(bad.field_violations_size(), 2);
  EXPECT_EQ(bad.field_violations(0).field(), "job.kind");
  EXPECT_EQ(bad.field_violations(1).description(), "bad name");
}

TEST(GrpcStatusTest, PreconditionBecomesPreconditionFailure) {
  grpc::Status s = ToGrpcStatus(FailedPreconditionError(
      "job is finished", {"STATE", "jobs/j1", "SUCCEEDED is terminal"}));
  google::rpc::PreconditionFailure failure;
  ASSERT_TRUE(Details(s).details(0).UnpackTo(&failure));
  EXPECT_EQ(failure.violations(0).type(), "STATE");
  EXPECT_EQ(failure.violations(0).subject(), "jobs/j1");
}

TEST(GrpcStatusTest, RetryDelayBecomesRetryInfo) {
  grpc::Status s =
      ToGrpcStatus(UnavailableError("draining", absl::Milliseconds(1500)));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE);
  google::rpc::RetryInfo retry;
  ASSERT_TRUE(Details(s).details(0).UnpackTo(&retry));
  EXPECT_EQ(retry.retry_delay().seconds(), 1);
  EXPECT_EQ(retry.retry_delay().nanos(), 500000000);
}

TEST(GrpcStatusTest, ReasonBecomesErrorInfo) {
  grpc::Status s =
      ToGrpcStatus(ResourceExhaustedError("disk full", "DISK_FULL"));
  google::rpc::ErrorInfo info;
  ASSERT_TRUE(Details(s).details(0).UnpackTo(&info));
  EXPECT_EQ(info.reason(), "DISK_FULL");
  EXPECT_EQ(info.domain(), "jobwire.dev");
}

// Found by http_request_fuzz: protobuf's JSON parser quotes the bytes it
// refuses, a query key becomes a violation's field, and a status message
// or detail that is not UTF-8 cannot be sent (grpc-message, proto strings).
TEST(GrpcStatusTest, ClientBytesReachTheWireAsValidUtf8) {
  grpc::Status s = ToGrpcStatus(InvalidArgumentError(
      "ma\x87Running", "not JSON of jobwire.v1.Queue: \x87 at \xE0\x8E"));
  EXPECT_EQ(s.error_message(),
            "ma\\x87Running: not JSON of jobwire.v1.Queue: \\x87 at "
            "\\xe0\\x8e");
  google::rpc::BadRequest bad;
  ASSERT_TRUE(Details(s).details(0).UnpackTo(&bad));
  ASSERT_EQ(bad.field_violations_size(), 1);
  EXPECT_EQ(bad.field_violations(0).field(), "ma\\x87Running");
  EXPECT_EQ(bad.field_violations(0).description(),
            "not JSON of jobwire.v1.Queue: \\x87 at \\xe0\\x8e");

  grpc::Status p = ToGrpcStatus(
      FailedPreconditionError("job \xFF", {"STATE", "\xFF", "\xC3\xA9"}));
  EXPECT_EQ(p.error_message(), "job \\xff");
  google::rpc::PreconditionFailure failure;
  ASSERT_TRUE(Details(p).details(0).UnpackTo(&failure));
  EXPECT_EQ(failure.violations(0).subject(), "\\xff");
  EXPECT_EQ(failure.violations(0).description(), "\xC3\xA9");
}

}  // namespace
}  // namespace jobwire::test
