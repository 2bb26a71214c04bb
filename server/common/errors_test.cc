#include "server/common/errors.h"

#include <string>

#include "gtest/gtest.h"

namespace jobwire::test {
namespace {

TEST(ErrorsTest, FieldViolationsRoundTrip) {
  absl::Status s = InvalidArgumentError(
      {{"job.queue", "is required"}, {"job.kind", "must be at most 128"}});
  EXPECT_EQ(s.message(),
            "job.queue: is required; job.kind: must be at most 128");
  std::vector<FieldViolation> v = GetFieldViolations(s);
  ASSERT_EQ(v.size(), 2u);
  EXPECT_EQ(v[0].field, "job.queue");
  EXPECT_EQ(v[0].description, "is required");
  EXPECT_EQ(v[1].field, "job.kind");
  EXPECT_EQ(v[1].description, "must be at most 128");
}

// Found by filter_fuzz: a description quoting a client's bytes held the
// bytes the details were once joined with (\x1e, \x1f), and the violation
// came back split, under a field that was not "filter".
TEST(ErrorsTest, DetailsKeepEveryByteOfTheirText) {
  const std::string odd(
      "a\x1f"
      "b\x1e"
      "c:3:\0d",
      9);
  std::vector<FieldViolation> v =
      GetFieldViolations(InvalidArgumentError("filter", odd));
  ASSERT_EQ(v.size(), 1u);
  EXPECT_EQ(v[0].field, "filter");
  EXPECT_EQ(v[0].description, odd);

  std::vector<PreconditionViolation> p =
      GetPreconditionViolations(FailedPreconditionError("m", {"STATE", odd,
                                                              "x\x1f"
                                                              "y"}));
  ASSERT_EQ(p.size(), 1u);
  EXPECT_EQ(p[0].type, "STATE");
  EXPECT_EQ(p[0].subject, odd);
  EXPECT_EQ(p[0].description, "x\x1fy");
}

TEST(ErrorsTest, StatusesWithoutDetailsHaveNone) {
  EXPECT_TRUE(GetFieldViolations(absl::InvalidArgumentError("x")).empty());
  EXPECT_TRUE(
      GetPreconditionViolations(absl::FailedPreconditionError("x")).empty());
}

}  // namespace
}  // namespace jobwire::test
