#include "server/core/job_update.h"

#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "server/common/errors.h"
#include "server/core/validation.h"

namespace jobwire {
namespace {

struct NamedField {
  absl::string_view path;
  UpdateField field;
};

constexpr NamedField kUpdatable[] = {
    {"priority", UpdateField::kPriority},
    {"queue", UpdateField::kQueue},
    {"labels", UpdateField::kLabels},
    {"schedule_time", UpdateField::kScheduleTime},
    {"max_attempts", UpdateField::kMaxAttempts},
    {"retry_policy", UpdateField::kRetryPolicy},
    {"attempt_timeout", UpdateField::kAttemptTimeout},
    {"args", UpdateField::kArgs},
    {"payload", UpdateField::kPayload},
};

// Fields of jobwire.v1.Job that exist but are never written by an update.
constexpr absl::string_view kNotUpdatable[] = {
    "id",         "kind",        "webhook",
    "state",      "progress",    "result",
    "error",      "attempt",     "create_time",
    "start_time", "update_time", "finish_time",
    "etag",       "last_seq",    "checkpoint",
    "worker_id",  "request_id",  "lease_expire_time"};

std::string UpdatableList() {
  std::vector<absl::string_view> names;
  for (const NamedField& f : kUpdatable) names.push_back(f.path);
  return absl::StrCat(absl::StrJoin(names, ", "), ", labels.KEY");
}

bool SamePolicy(const std::optional<RetryPolicy>& a,
                const std::optional<RetryPolicy>& b) {
  if (a.has_value() != b.has_value()) return false;
  if (!a.has_value()) return true;
  return a->initial_backoff == b->initial_backoff &&
         a->max_backoff == b->max_backoff && a->multiplier == b->multiplier &&
         a->jitter == b->jitter;
}

// The ValidateNewJob violation paths ("job.X") that concern `p`.
bool Concerns(const UpdatePath& p, absl::string_view field) {
  auto is_or_under = [field](absl::string_view name) {
    absl::string_view rest = field;
    if (!absl::ConsumePrefix(&rest, "job.")) return false;
    if (!absl::ConsumePrefix(&rest, name)) return false;
    return rest.empty() || rest[0] == '.' || rest[0] == '[';
  };
  switch (p.field) {
    case UpdateField::kPriority:
      return is_or_under("priority");
    case UpdateField::kQueue:
      return is_or_under("queue");
    case UpdateField::kLabels:
      return is_or_under("labels");
    case UpdateField::kLabel:
      return field == absl::StrCat("job.labels[", p.label_key, "]");
    case UpdateField::kScheduleTime:
      return is_or_under("schedule_time");
    case UpdateField::kMaxAttempts:
      return is_or_under("max_attempts");
    case UpdateField::kRetryPolicy:
      return is_or_under("retry_policy");
    case UpdateField::kAttemptTimeout:
      return is_or_under("attempt_timeout");
    case UpdateField::kArgs:
      return is_or_under("args");
    case UpdateField::kPayload:
      return is_or_under("payload");
  }
  return false;
}

absl::Status WrongState(const Job& job, absl::string_view type,
                        absl::string_view message) {
  return FailedPreconditionError(
      absl::StrCat("cannot update job ", job.id, ": ", message),
      PreconditionViolation{std::string(type), absl::StrCat("jobs/", job.id),
                            absl::StrCat("job is ", JobStateName(job.state))});
}

}  // namespace

absl::StatusOr<std::vector<UpdatePath>> ParseUpdateMask(
    const std::vector<std::string>& paths, absl::string_view mask_field) {
  if (paths.empty()) {
    return InvalidArgumentError(
        mask_field, absl::StrCat("is required: name the fields to write (",
                                 UpdatableList(), ")"));
  }
  std::vector<UpdatePath> out;
  std::vector<FieldViolation> violations;
  std::set<std::string> seen;
  for (size_t i = 0; i < paths.size(); ++i) {
    const std::string& path = paths[i];
    const std::string where = absl::StrCat(mask_field, ".paths[", i, "]");
    auto refuse = [&](std::string why) {
      violations.push_back({where, std::move(why)});
    };
    if (!seen.insert(path).second) continue;
    UpdatePath parsed;
    parsed.path = path;
    absl::string_view rest = path;
    if (absl::ConsumePrefix(&rest, "labels.")) {
      if (!IsValidLabelKey(rest)) {
        refuse(absl::StrCat("'", path,
                            "': a label key must match "
                            "[a-z0-9][a-z0-9._/-]{0,62}"));
        continue;
      }
      parsed.field = UpdateField::kLabel;
      parsed.label_key = std::string(rest);
      out.push_back(std::move(parsed));
      continue;
    }
    bool found = false;
    for (const NamedField& f : kUpdatable) {
      if (path == f.path) {
        parsed.field = f.field;
        found = true;
      }
    }
    if (found) {
      out.push_back(std::move(parsed));
      continue;
    }
    if (path == "*") {
      refuse(absl::StrCat("'*' is not supported: name the fields to write (",
                          UpdatableList(), ")"));
      continue;
    }
    const absl::string_view top = absl::string_view(path).substr(
        0, std::min(path.find('.'), path.size()));
    bool known = false;
    for (absl::string_view name : kNotUpdatable) known |= top == name;
    for (const NamedField& f : kUpdatable) known |= top == f.path;
    if (known && top != path) {
      refuse(absl::StrCat("'", path, "': only labels takes a sub-path; write '",
                          top, "' whole"));
    } else if (known) {
      refuse(absl::StrCat("'", path,
                          "' is not updatable; updatable: ", UpdatableList()));
    } else {
      refuse(absl::StrCat("'", path, "' is not a field of jobwire.v1.Job; ",
                          "updatable: ", UpdatableList()));
    }
  }
  if (!violations.empty()) return InvalidArgumentError(std::move(violations));
  return out;
}

absl::Status ValidatePatch(const JobPatch& patch, absl::string_view job_field) {
  Job probe = patch.values;
  probe.kind = "k";  // not updatable; keeps ValidateNewJob to the rest
  probe.request_id.clear();
  probe.webhook.reset();
  const absl::Status status = ValidateNewJob(probe);
  if (status.ok()) return status;
  std::vector<FieldViolation> kept;
  for (FieldViolation& v : GetFieldViolations(status)) {
    bool concerns = false;
    for (const UpdatePath& p : patch.paths) concerns |= Concerns(p, v.field);
    if (!concerns) continue;
    v.field = absl::StrCat(job_field, v.field.substr(3));  // "job" -> field
    kept.push_back(std::move(v));
  }
  if (kept.empty()) return absl::OkStatus();
  return InvalidArgumentError(std::move(kept));
}

JobMutation UpdateMutation(JobPatch patch, std::string etag) {
  return [patch = std::move(patch), etag = std::move(etag)](
             const Job& current, absl::Time now) -> absl::StatusOr<JobChange> {
    if (!etag.empty() && etag != current.etag()) {
      return absl::AbortedError(absl::StrCat("job ", current.id, " has etag ",
                                             current.etag(), ", not ", etag,
                                             ": it changed since it was read"));
    }
    if (IsTerminal(current.state) || current.state == JobState::kUnspecified) {
      return WrongState(
          current, "STATE",
          absl::StrCat("it has ended (", JobStateName(current.state), ")"));
    }
    const Job& v = patch.values;
    const bool started =
        current.state == JobState::kRunning || current.attempt > 0;
    Job next = current;
    std::vector<std::string> changed;
    for (const UpdatePath& p : patch.paths) {
      bool differs = false;
      switch (p.field) {
        case UpdateField::kPriority:
          differs = next.priority != v.priority;
          next.priority = v.priority;
          break;
        case UpdateField::kQueue: {
          const std::string queue =
              v.queue.empty() ? std::string(kDefaultQueue) : v.queue;
          differs = next.queue != queue;
          next.queue = queue;
          break;
        }
        case UpdateField::kLabels:
          differs = next.labels != v.labels;
          next.labels = v.labels;
          break;
        case UpdateField::kLabel: {
          auto want = v.labels.find(p.label_key);
          auto have = next.labels.find(p.label_key);
          if (want == v.labels.end()) {
            differs = have != next.labels.end();
            if (differs) next.labels.erase(have);
          } else {
            differs = have == next.labels.end() || have->second != want->second;
            next.labels[p.label_key] = want->second;
          }
          break;
        }
        case UpdateField::kScheduleTime:
          differs = next.schedule_time != v.schedule_time;
          next.schedule_time = v.schedule_time;
          break;
        case UpdateField::kMaxAttempts: {
          const int32_t max =
              v.max_attempts == 0 ? kDefaultMaxAttempts : v.max_attempts;
          // The attempt under way, or the next one, must fit.
          const bool running = current.state == JobState::kRunning;
          const int32_t least = running ? current.attempt : current.attempt + 1;
          if (max < least) {
            return WrongState(
                current, "ATTEMPTS",
                absl::StrCat("max_attempts ", max, " is below ", least, ": ",
                             current.attempt, " attempt(s) made",
                             running ? ", the last still running"
                                     : ", and the next one counts too"));
          }
          differs = next.max_attempts != max;
          next.max_attempts = max;
          break;
        }
        case UpdateField::kRetryPolicy:
          differs = !SamePolicy(next.retry_policy, v.retry_policy);
          next.retry_policy = v.retry_policy;
          break;
        case UpdateField::kAttemptTimeout:
          differs = next.attempt_timeout != v.attempt_timeout;
          next.attempt_timeout = v.attempt_timeout;
          break;
        case UpdateField::kArgs:
        case UpdateField::kPayload: {
          const bool args = p.field == UpdateField::kArgs;
          differs =
              args ? next.args_json != v.args_json : next.payload != v.payload;
          if (differs && started) {
            return WrongState(current, "STARTED",
                              absl::StrCat(p.path,
                                           " is fixed once an attempt has "
                                           "started (attempt ",
                                           current.attempt, ")"));
          }
          if (args) {
            next.args_json = v.args_json;
          } else {
            next.payload = v.payload;
          }
          break;
        }
      }
      if (differs) changed.push_back(p.path);
    }
    if (next.labels.size() > kMaxLabels) {
      return InvalidArgumentError(
          "job.labels",
          absl::StrCat("at most ", kMaxLabels, " labels, the ",
                       "update would leave ", next.labels.size()));
    }
    JobChange change;
    if (changed.empty()) {
      change.job = current;
      return change;
    }
    change.job = std::move(next);
    JobEvent updated;
    updated.type = EventType::kUpdated;
    updated.paths = std::move(changed);
    if (change.job.queue != current.queue) updated.from_queue = current.queue;
    change.events.push_back(std::move(updated));
    if (current.state == JobState::kQueued ||
        current.state == JobState::kScheduled) {
      const JobState to = change.job.run_after() > now ? JobState::kScheduled
                                                       : JobState::kQueued;
      if (to != current.state) {
        change.job.state = to;
        JobEvent moved;
        moved.type = EventType::kStateChanged;
        moved.from = current.state;
        moved.to = to;
        moved.reason = "rescheduled";
        moved.attempt = current.attempt;
        change.events.push_back(std::move(moved));
      }
    }
    return change;
  };
}

}  // namespace jobwire
