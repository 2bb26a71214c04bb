// libFuzzer target: the AIP-160 filter parser (filter.h), which reads the
// `filter` of ListJobs and WatchJobs straight from a client.
//
// Oracle: ParseFilter either accepts, and the AST is well-formed (kAnd/kOr
// with two or more children, kNot with one, nesting within
// kMaxFilterDepth) and Matches() evaluates it, or refuses with
// INVALID_ARGUMENT carrying one violation on "filter" whose description is
// valid UTF-8 (it becomes grpc-message). Inputs over kMaxFilterLength are
// refused.
#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"
#include "server/core/filter.h"
#include "tests/fuzz/fuzz_util.h"

namespace jobwire {
namespace {

int CheckTree(const FilterExpr& e) {
  switch (e.kind) {
    case FilterExpr::Kind::kTrue:
    case FilterExpr::Kind::kCompare:
      FUZZ_CHECK(e.children.empty(), "leaf with children");
      return 1;
    case FilterExpr::Kind::kNot:
      FUZZ_CHECK(e.children.size() == 1, "NOT without exactly one child");
      break;
    case FilterExpr::Kind::kAnd:
    case FilterExpr::Kind::kOr:
      FUZZ_CHECK(e.children.size() >= 2, "AND/OR with fewer than 2 children");
      break;
  }
  int depth = 0;
  for (const FilterExpr& c : e.children) depth = std::max(depth, CheckTree(c));
  return depth + 1;
}

JobEvent Event(bool running) {
  JobEvent e;
  e.job_id = "01ARZ3NDEKTSV4RRFFQ69G5FAV";
  e.type = running ? EventType::kProgress : EventType::kStateChanged;
  e.to = JobState::kQueued;
  e.state = running ? JobState::kRunning : JobState::kUnspecified;
  e.queue = "emails";
  e.kind = "send";
  e.priority = running ? -5 : 5;
  e.labels = {{"tenant", "acme"}, {"team/owner", "ops"}, {"", ""}};
  return e;
}

}  // namespace
}  // namespace jobwire

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace jobwire;
  const absl::string_view text(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<FilterExpr> f = ParseFilter(text);
  if (!f.ok()) {
    fuzz::CheckBadRequest(f.status(), "filter");
    return 0;
  }
  FUZZ_CHECK(size <= kMaxFilterLength, "accepted an over-long filter");
  // The depth limit counts parentheses and NOTs; the tree's own depth can
  // only be at most that plus the AND/OR levels each one opens.
  FUZZ_CHECK(CheckTree(*f) <= 3 * (kMaxFilterDepth + 2), "tree too deep");
  const bool a = Matches(*f, Event(false));
  const bool b = Matches(*f, Event(true));
  // Deterministic: the same AST and event give the same answer.
  FUZZ_CHECK(a == Matches(*f, Event(false)), "Matches is not deterministic");
  FUZZ_CHECK(b == Matches(*f, Event(true)), "Matches is not deterministic");
  (void)IsEvaluableInMemory(*f);
  return 0;
}
