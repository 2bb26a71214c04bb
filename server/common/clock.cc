#include "server/common/clock.h"

#include <chrono>

#include "absl/time/clock.h"

namespace jobwire {

Clock* Clock::Real() {
  static SystemClock* const clock = new SystemClock();
  return clock;
}

absl::Time SystemClock::Now() const { return absl::Now(); }

absl::Time SystemClock::Monotonic() const {
  // std::chrono::steady_clock is CLOCK_MONOTONIC on Linux: it is not stepped
  // by settimeofday or an NTP step (it is slewed, which is harmless here).
  return absl::UnixEpoch() +
         absl::FromChrono(std::chrono::steady_clock::now().time_since_epoch());
}

// The monotonic timeline starts far from the wall one, so a test that mixes
// them up sees nonsense at once.
FakeClock::FakeClock() : FakeClock(absl::FromUnixSeconds(1'800'000'000)) {}
FakeClock::FakeClock(absl::Time start)
    : now_(start), monotonic_(absl::UnixEpoch() + absl::Hours(1000)) {}

absl::Time FakeClock::Now() const {
  absl::MutexLock lock(&mu_);
  return now_;
}

absl::Time FakeClock::Monotonic() const {
  absl::MutexLock lock(&mu_);
  return monotonic_;
}

void FakeClock::Advance(absl::Duration d) {
  absl::MutexLock lock(&mu_);
  now_ += d;
  monotonic_ += d;
}

void FakeClock::Set(absl::Time t) {
  absl::MutexLock lock(&mu_);
  now_ = t;
}

}  // namespace jobwire
