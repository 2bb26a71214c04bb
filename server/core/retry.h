// Retry policy: how long a failed job waits before its next attempt, and
// whether it gets one.
//
// delay(n) = min(initial_backoff * multiplier^(n-1), max_backoff) * (1 ±
// jitter) where n is the attempt that just failed (1 for the first). The random
// part comes from an injected RandomSource so tests are deterministic;
// mutations stay pure by drawing the random value before they run and capturing
// it. Pure functions; RandomSource implementations are thread-safe.
#ifndef JOBWIRE_SERVER_CORE_RETRY_H_
#define JOBWIRE_SERVER_CORE_RETRY_H_

#include <cstdint>

#include "absl/base/thread_annotations.h"
#include "absl/random/random.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/core/job.h"

namespace jobwire {

// A source of uniform random numbers in [0, 1).
class RandomSource {
 public:
  virtual ~RandomSource() = default;
  virtual double Uniform() = 0;
};

// absl::BitGen behind a mutex. Thread-safe.
class SystemRandomSource final : public RandomSource {
 public:
  double Uniform() override;

 private:
  absl::Mutex mu_;
  absl::BitGen gen_ ABSL_GUARDED_BY(mu_);
};

// Always returns the same value; for tests. Thread-safe.
class FixedRandomSource final : public RandomSource {
 public:
  explicit FixedRandomSource(double value) : value_(value) {}
  double Uniform() override { return value_; }

 private:
  const double value_;
};

// The policy a job runs under: its own, or the server default.
RetryPolicy EffectivePolicy(const Job& job);

// Delay before the attempt after `failed_attempt` (>= 1). `unit_random` in
// [0, 1) picks the point in the jitter band: 0.5 gives the centre. Never
// negative; never above max_backoff * (1 + jitter).
absl::Duration BackoffDelay(const RetryPolicy& policy, int32_t failed_attempt,
                            double unit_random);

// True when a job whose attempt `attempt` just failed may run again.
bool HasAttemptsLeft(const Job& job);

}  // namespace jobwire

#endif  // JOBWIRE_SERVER_CORE_RETRY_H_
