// The job filter language: a subset of AIP-160, parsed into an AST.
//
//   filter     := expression (empty: every job)
//   expression := sequence { "AND" sequence }
//   sequence   := factor { "OR" factor }        (AIP-160: OR binds tighter than
//   AND) factor     := [ "NOT" | "-" ] factor | "(" expression ")" | comparison
//   comparison := field op value,  op one of = != < > <= >=
//   field      := state | queue | kind | id | priority | attempt | labels.KEY |
//                 create_time | update_time | schedule_time | finish_time
//   value      := bare word | "quoted string" | integer
//
// Types: state takes a state name (QUEUED, queued or STATE_QUEUED) with = or
// != only;
// priority and attempt take integers; the *_time fields take RFC 3339
// timestamps in quotes ("2026-01-01T00:00:00Z"); the others take strings and
// compare bytewise. A labels.KEY comparison is false when the job has no such
// label; a time comparison is false when the time is unset. Keywords are
// upper case. Limits: 4,096 characters, nesting depth 32.
//
// storage/ compiles the AST to parameterised SQL; Matches() evaluates it on a
// committed event's job attributes for live watches. Pure values and
// functions: thread-safe.
#ifndef JOBWIRE_SERVER_CORE_FILTER_H_
#define JOBWIRE_SERVER_CORE_FILTER_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "server/core/job.h"

namespace jobwire {

inline constexpr size_t kMaxFilterLength = 4096;
inline constexpr int kMaxFilterDepth = 32;

enum class FilterField {
  kState,
  kQueue,
  kKind,
  kId,
  kPriority,
  kAttempt,
  kLabel,
  kCreateTime,
  kUpdateTime,
  kScheduleTime,
  kFinishTime,
};

enum class CompareOp { kEq, kNe, kLt, kGt, kLe, kGe };

// The typed value of a comparison; which member is set follows the field.
struct FilterValue {
  std::string text;                         // queue, kind, id, labels.KEY
  int64_t integer = 0;                      // priority, attempt
  absl::Time time = absl::InfinitePast();   // *_time
  JobState state = JobState::kUnspecified;  // state
};

struct FilterExpr {
  enum class Kind { kTrue, kAnd, kOr, kNot, kCompare };
  Kind kind = Kind::kTrue;
  // kAnd, kOr: two or more; kNot: exactly one.
  std::vector<FilterExpr> children;
  // kCompare:
  FilterField field = FilterField::kState;
  std::string label_key;  // for kLabel
  CompareOp op = CompareOp::kEq;
  FilterValue value;
};

// Parses `text`. An empty or blank filter gives a kTrue expression.
// INVALID_ARGUMENT with field "filter" and a description that names the
// 1-based character position and what was expected.
absl::StatusOr<FilterExpr> ParseFilter(absl::string_view text);

// True if the filter uses only attributes carried by a committed JobEvent
// (state, queue, kind, id, priority, labels.KEY), so Matches() decides it.
bool IsEvaluableInMemory(const FilterExpr& filter);

// Evaluates the filter against the job attributes of `event` (job_id, queue,
// kind, priority, labels, state: the event's `state` attribute, else `to` of a
// state_changed event). Comparisons on attributes an event does not carry
// (times, attempt, an unknown state) are false. Check IsEvaluableInMemory()
// first when the answer must be exact.
bool Matches(const FilterExpr& filter, const JobEvent& event);

// Comparison in the order of `op`: the result of `a op b` given Compare(a, b).
bool ApplyCompareOp(CompareOp op, int cmp);

}  // namespace jobwire

#endif  // JOBWIRE_SERVER_CORE_FILTER_H_
