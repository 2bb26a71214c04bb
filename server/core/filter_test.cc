#include "server/core/filter.h"

#include <random>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/common/errors.h"

namespace jobwire::test {
namespace {

using ::testing::HasSubstr;

JobEvent Event() {
  JobEvent e;
  e.job_id = "01ARZ3NDEKTSV4RRFFQ69G5FAV";
  e.type = EventType::kStateChanged;
  e.to = JobState::kQueued;
  e.queue = "emails";
  e.kind = "send";
  e.priority = 5;
  e.labels = {{"tenant", "acme"}, {"team/owner", "ops"}};
  return e;
}

bool Eval(absl::string_view text, const JobEvent& e = Event()) {
  absl::StatusOr<FilterExpr> f = ParseFilter(text);
  EXPECT_TRUE(f.ok()) << text << ": " << f.status();
  return f.ok() && Matches(*f, e);
}

std::string ErrorOf(absl::string_view text) {
  absl::StatusOr<FilterExpr> f = ParseFilter(text);
  EXPECT_FALSE(f.ok()) << text;
  if (f.ok()) return "";
  EXPECT_EQ(f.status().code(), absl::StatusCode::kInvalidArgument);
  std::vector<FieldViolation> v = GetFieldViolations(f.status());
  EXPECT_EQ(v.size(), 1u);
  EXPECT_EQ(v.empty() ? "" : v[0].field, "filter");
  return v.empty() ? "" : v[0].description;
}

TEST(ParseFilterTest, EmptyFilterMatchesEverything) {
  EXPECT_TRUE(Eval(""));
  EXPECT_TRUE(Eval("   "));
}

TEST(ParseFilterTest, ComparesStringsIntegersAndStates) {
  EXPECT_TRUE(Eval("queue = emails"));
  EXPECT_TRUE(Eval("queue = \"emails\""));
  EXPECT_FALSE(Eval("queue != emails"));
  EXPECT_TRUE(Eval("kind >= sen"));
  EXPECT_TRUE(Eval("priority > -3"));
  EXPECT_TRUE(Eval("priority >= 5 AND priority <= 5"));
  EXPECT_FALSE(Eval("priority < 5"));
  EXPECT_TRUE(Eval("state = QUEUED"));
  EXPECT_TRUE(Eval("state = STATE_QUEUED"));
  EXPECT_TRUE(Eval("state = queued"));
  EXPECT_TRUE(Eval("state = state_queued"));
  EXPECT_TRUE(Eval("state != RUNNING"));
  EXPECT_TRUE(Eval("id = 01ARZ3NDEKTSV4RRFFQ69G5FAV"));
}

TEST(ParseFilterTest, LabelsCompareAndMissingLabelsNeverMatch) {
  EXPECT_TRUE(Eval("labels.tenant = acme"));
  EXPECT_TRUE(Eval("labels.team/owner = \"ops\""));
  EXPECT_FALSE(Eval("labels.region = eu"));
  EXPECT_FALSE(Eval("labels.region != eu"));
  EXPECT_TRUE(Eval("NOT labels.region = eu"));
}

TEST(ParseFilterTest, BooleanOperatorsFollowAip160Precedence) {
  // OR binds tighter than AND: a AND (b OR c).
  EXPECT_FALSE(Eval("queue = other AND kind = send OR priority = 5"));
  EXPECT_TRUE(Eval("(queue = other AND kind = send) OR priority = 5"));
  EXPECT_TRUE(Eval("NOT queue = other"));
  EXPECT_TRUE(Eval("-queue = other"));
  EXPECT_FALSE(Eval("NOT (queue = emails OR kind = x)"));
  EXPECT_TRUE(Eval("queue = a OR queue = b OR queue = emails"));
}

TEST(ParseFilterTest, TimesNeedRfc3339AndAreNotInMemory) {
  absl::StatusOr<FilterExpr> f =
      ParseFilter("create_time > \"2026-01-01T00:00:00Z\"");
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(f->value.time, absl::FromUnixSeconds(1767225600));
  EXPECT_FALSE(IsEvaluableInMemory(*f));
  EXPECT_TRUE(
      IsEvaluableInMemory(*ParseFilter("queue = a AND NOT labels.x = y")));
  EXPECT_FALSE(IsEvaluableInMemory(*ParseFilter("queue = a OR attempt > 1")));
}

TEST(ParseFilterTest, StateFollowsTheEventAttributeFirst) {
  JobEvent e = Event();
  e.type = EventType::kProgress;
  e.to = JobState::kUnspecified;
  EXPECT_FALSE(Eval("state = RUNNING", e));
  e.state = JobState::kRunning;
  EXPECT_TRUE(Eval("state = RUNNING", e));
}

TEST(ParseFilterTest, ErrorsNameThePositionAndWhatWasExpected) {
  EXPECT_THAT(ErrorOf("queue"),
              HasSubstr("position 6: expected a comparison operator"));
  EXPECT_THAT(ErrorOf("queue = a AND"),
              HasSubstr("position 14: expected a field name"));
  EXPECT_THAT(ErrorOf("color = red"),
              HasSubstr("position 1: unknown field 'color'"));
  EXPECT_THAT(ErrorOf("state = DONE"),
              HasSubstr("position 9: expected a state name"));
  EXPECT_THAT(ErrorOf("state < QUEUED"), HasSubstr("state only supports"));
  EXPECT_THAT(ErrorOf("priority = high"), HasSubstr("expected an integer"));
  EXPECT_THAT(ErrorOf("create_time > yesterday"), HasSubstr("RFC 3339"));
  EXPECT_THAT(ErrorOf("queue = \"abc"),
              HasSubstr("position 9: unterminated string"));
  EXPECT_THAT(ErrorOf("(queue = a"), HasSubstr("position 11: expected ')'"));
  EXPECT_THAT(ErrorOf("queue = a)"),
              HasSubstr("position 10: expected AND, OR"));
  EXPECT_THAT(ErrorOf("queue ! a"), HasSubstr("position 7"));
  EXPECT_THAT(ErrorOf("queue = a $"),
              HasSubstr("position 11: unexpected character '$'"));
}

// A multi-byte character is quoted whole: the message (grpc-message,
// BadRequest) stays valid UTF-8. A stray byte is quoted as \xNN.
TEST(ParseFilterTest, UnexpectedCharacterIsQuotedWhole) {
  EXPECT_THAT(ErrorOf("queue = \xC3\xA9t\xC3\xA9"),
              HasSubstr("unexpected character '\xC3\xA9'"));
  EXPECT_THAT(ErrorOf("\xE2\x82\xAC"),
              HasSubstr("unexpected character '\xE2\x82\xAC'"));
  EXPECT_THAT(ErrorOf("queue = \xFF"),
              HasSubstr("unexpected character '\\xff'"));
  // Found by filter_fuzz: an overlong form (E0 8E 8A) was quoted whole,
  // which made the message invalid UTF-8. Surrogates (ED A0 80) and code
  // points past U+10FFFF (F4 90 80 80) are not characters either.
  EXPECT_THAT(ErrorOf("queue = b OR \xE0\x8E\x8Aue = b"),
              HasSubstr("unexpected character '\\xe0'"));
  EXPECT_THAT(ErrorOf("\xED\xA0\x80"),
              HasSubstr("unexpected character '\\xed'"));
  EXPECT_THAT(ErrorOf("\xF4\x90\x80\x80"),
              HasSubstr("unexpected character '\\xf4'"));
  EXPECT_THAT(ErrorOf("\xF4\x8F\xBF\xBF"),
              HasSubstr("unexpected character '\xF4\x8F\xBF\xBF'"));
}

// Found by filter_fuzz: a control character was echoed raw, and \x1f (the
// byte the error details were joined with) split the violation.
TEST(ParseFilterTest, ControlCharactersAreQuotedAsHex) {
  EXPECT_THAT(ErrorOf(std::string("stat\x1f\0eu= emaiR -prior)ty >= 6)", 31)),
              HasSubstr("position 5: unexpected character '\\x1f'"));
  EXPECT_THAT(ErrorOf("queue = a \x1e"),
              HasSubstr("unexpected character '\\x1e'"));
}

TEST(ParseFilterTest, EnforcesLengthAndDepthLimits) {
  EXPECT_THAT(ErrorOf(std::string(4097, ' ')), HasSubstr("at most 4096"));
  std::string deep;
  for (int i = 0; i < 40; ++i) deep += "(";
  deep += "queue = a";
  for (int i = 0; i < 40; ++i) deep += ")";
  EXPECT_THAT(ErrorOf(deep), HasSubstr("nesting deeper than 32"));
  std::string nots;
  for (int i = 0; i < 100; ++i) nots += "NOT ";
  EXPECT_THAT(ErrorOf(nots + "queue = a"), HasSubstr("nesting"));
}

TEST(ParseFilterTest, GarbageNeverCrashes) {
  const std::string alphabet =
      "()=!<>\"\\- ANDORNOTqueuelabels.x0123456789state:_\t";
  std::mt19937 rng(42);
  for (int i = 0; i < 20000; ++i) {
    std::string text;
    int len = static_cast<int>(rng() % 40);
    for (int j = 0; j < len; ++j)
      text.push_back(alphabet[rng() % alphabet.size()]);
    absl::StatusOr<FilterExpr> f = ParseFilter(text);
    if (f.ok()) {
      Matches(*f, Event());
    } else {
      ASSERT_EQ(f.status().code(), absl::StatusCode::kInvalidArgument) << text;
    }
  }
  for (int i = 0; i < 2000; ++i) {
    std::string text;
    int len = static_cast<int>(rng() % 64);
    for (int j = 0; j < len; ++j)
      text.push_back(static_cast<char>(rng() % 256));
    absl::StatusOr<FilterExpr> f = ParseFilter(text);
    if (!f.ok()) {
      ASSERT_EQ(f.status().code(), absl::StatusCode::kInvalidArgument);
    }
  }
}

}  // namespace
}  // namespace jobwire::test
