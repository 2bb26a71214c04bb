#include "server/core/job.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace jobwire {

bool IsTerminal(JobState state) {
  return state == JobState::kSucceeded || state == JobState::kFailed ||
         state == JobState::kCancelled;
}

absl::string_view JobStateName(JobState state) {
  switch (state) {
    case JobState::kUnspecified:
      return "UNSPECIFIED";
    case JobState::kQueued:
      return "QUEUED";
    case JobState::kScheduled:
      return "SCHEDULED";
    case JobState::kRunning:
      return "RUNNING";
    case JobState::kPaused:
      return "PAUSED";
    case JobState::kSucceeded:
      return "SUCCEEDED";
    case JobState::kFailed:
      return "FAILED";
    case JobState::kCancelled:
      return "CANCELLED";
  }
  return "UNSPECIFIED";
}

bool ParseJobState(absl::string_view text, JobState* state) {
  // QUEUED, queued and STATE_QUEUED all name one state.
  const std::string upper = absl::AsciiStrToUpper(text);
  absl::string_view name = upper;
  absl::ConsumePrefix(&name, "STATE_");
  for (int v = 1; v <= 7; ++v) {
    JobState s = static_cast<JobState>(v);
    if (name == JobStateName(s)) {
      *state = s;
      return true;
    }
  }
  return false;
}

std::string Job::etag() const { return absl::StrCat("v", version); }

absl::Time Job::run_after() const {
  return std::max(schedule_time, backoff_until);
}

}  // namespace jobwire
