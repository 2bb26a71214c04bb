#include "server/core/validation.h"

#include <string>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "server/common/errors.h"
#include "server/core/ids.h"

namespace jobwire {
namespace {

bool IsLowerOrDigit(char c) {
  return absl::ascii_islower(c) || absl::ascii_isdigit(c);
}

// `first` must match the first character, `rest` every other one.
template <typename First, typename Rest>
bool MatchesName(absl::string_view text, size_t max_len, First first,
                 Rest rest) {
  if (text.empty() || text.size() > max_len || !first(text[0])) return false;
  for (size_t i = 1; i < text.size(); ++i) {
    if (!rest(text[i])) return false;
  }
  return true;
}

}  // namespace

bool IsValidQueueName(absl::string_view name) {
  return MatchesName(name, 128, IsLowerOrDigit, [](char c) {
    return IsLowerOrDigit(c) || c == '.' || c == '_' || c == '-';
  });
}

bool IsValidKind(absl::string_view kind) {
  return MatchesName(kind, 128, absl::ascii_isalnum, [](char c) {
    return absl::ascii_isalnum(c) || c == '.' || c == '_' || c == ':' ||
           c == '/' || c == '-';
  });
}

bool IsValidLabelKey(absl::string_view key) {
  return MatchesName(key, 63, IsLowerOrDigit, [](char c) {
    return IsLowerOrDigit(c) || c == '.' || c == '_' || c == '/' || c == '-';
  });
}

absl::Status CheckJobId(absl::string_view id, absl::string_view field) {
  if (id.empty()) return InvalidArgumentError(field, "is required");
  if (!IsValidUlid(id))
    return InvalidArgumentError(field, "is not a job id (ULID)");
  return absl::OkStatus();
}

absl::Status ValidateNewJob(const Job& job) {
  std::vector<FieldViolation> v;
  auto add = [&v](std::string field, std::string description) {
    v.push_back(FieldViolation{std::move(field), std::move(description)});
  };
  if (!job.queue.empty() && !IsValidQueueName(job.queue)) {
    add("job.queue", "must match [a-z0-9][a-z0-9._-]{0,127}");
  }
  if (job.kind.empty()) {
    add("job.kind", "is required");
  } else if (!IsValidKind(job.kind)) {
    add("job.kind", "must match [A-Za-z0-9][A-Za-z0-9._:/-]{0,127}");
  }
  if (job.labels.size() > kMaxLabels) {
    add("job.labels", absl::StrCat("at most ", kMaxLabels, " labels"));
  }
  for (const auto& [key, value] : job.labels) {
    std::string path = absl::StrCat("job.labels[", key.substr(0, 64), "]");
    if (!IsValidLabelKey(key)) {
      add(path, "key must match [a-z0-9][a-z0-9._/-]{0,62}");
    }
    if (value.size() > kMaxLabelValueBytes) {
      add(path, absl::StrCat("value must be at most ", kMaxLabelValueBytes,
                             " bytes"));
    }
  }
  if (job.payload.size() > kMaxPayloadBytes) {
    add("job.payload",
        absl::StrCat("must be at most ", kMaxPayloadBytes, " bytes"));
  }
  if (job.args_json.size() > kMaxArgsJsonBytes) {
    add("job.args",
        absl::StrCat("must be at most ", kMaxArgsJsonBytes, " bytes as JSON"));
  }
  if (job.request_id.size() > kMaxRequestIdLength) {
    add("request_id",
        absl::StrCat("must be at most ", kMaxRequestIdLength, " characters"));
  }
  if (job.max_attempts < 0 || job.max_attempts > kMaxMaxAttempts) {
    add("job.max_attempts",
        absl::StrCat("must be within [0, ", kMaxMaxAttempts, "]"));
  }
  if (job.priority < -kMaxAbsPriority || job.priority > kMaxAbsPriority) {
    add("job.priority", absl::StrCat("must be within [", -kMaxAbsPriority, ", ",
                                     kMaxAbsPriority, "]"));
  }
  if (job.retry_policy.has_value()) {
    const RetryPolicy& r = *job.retry_policy;
    if (r.initial_backoff <= absl::ZeroDuration()) {
      add("job.retry_policy.initial_backoff", "must be positive");
    }
    if (r.max_backoff <= absl::ZeroDuration()) {
      add("job.retry_policy.max_backoff", "must be positive");
    } else if (r.max_backoff < r.initial_backoff) {
      add("job.retry_policy.max_backoff",
          "must not be less than initial_backoff");
    }
    if (!(r.multiplier >= 1.0) || r.multiplier > 1000.0) {
      add("job.retry_policy.multiplier", "must be within [1, 1000]");
    }
    if (!(r.jitter >= 0.0 && r.jitter <= 1.0)) {
      add("job.retry_policy.jitter", "must be within [0, 1]");
    }
  }
  if (job.attempt_timeout < absl::ZeroDuration()) {
    add("job.attempt_timeout", "must not be negative");
  }
  if (job.webhook.has_value() && job.webhook->url.empty()) {
    add("job.webhook.url", "is required when a webhook is set");
  }
  if (v.empty()) return absl::OkStatus();
  return InvalidArgumentError(std::move(v));
}

}  // namespace jobwire
