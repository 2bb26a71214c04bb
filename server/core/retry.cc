#include "server/core/retry.h"

#include <algorithm>
#include <cmath>

namespace jobwire {

double SystemRandomSource::Uniform() {
  absl::MutexLock lock(&mu_);
  return absl::Uniform<double>(gen_, 0.0, 1.0);
}

RetryPolicy EffectivePolicy(const Job& job) {
  return job.retry_policy.value_or(RetryPolicy{});
}

absl::Duration BackoffDelay(const RetryPolicy& policy, int32_t failed_attempt,
                            double unit_random) {
  const double multiplier = std::max(1.0, policy.multiplier);
  const double jitter = std::clamp(policy.jitter, 0.0, 1.0);
  const double unit = std::clamp(unit_random, 0.0, 1.0);
  const int32_t n = std::max<int32_t>(1, failed_attempt);
  const double initial = absl::ToDoubleSeconds(policy.initial_backoff);
  const double cap = absl::ToDoubleSeconds(policy.max_backoff);
  // Grow in floating point; pow overflows to inf, which the cap absorbs.
  double base = initial * std::pow(multiplier, n - 1);
  if (!(base <= cap)) base = cap;
  const double factor = 1.0 + jitter * (2.0 * unit - 1.0);
  return absl::Seconds(std::max(0.0, base * factor));
}

bool HasAttemptsLeft(const Job& job) {
  const int32_t max =
      job.max_attempts > 0 ? job.max_attempts : kDefaultMaxAttempts;
  return job.attempt < max;
}

}  // namespace jobwire
