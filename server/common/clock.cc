#include "server/common/clock.h"

#include "absl/time/clock.h"

namespace jobwire {

Clock* Clock::Real() {
  static SystemClock* const clock = new SystemClock();
  return clock;
}

absl::Time SystemClock::Now() const { return absl::Now(); }

FakeClock::FakeClock() : now_(absl::FromUnixSeconds(1'800'000'000)) {}
FakeClock::FakeClock(absl::Time start) : now_(start) {}

absl::Time FakeClock::Now() const {
  absl::MutexLock lock(&mu_);
  return now_;
}

void FakeClock::Advance(absl::Duration d) {
  absl::MutexLock lock(&mu_);
  now_ += d;
}

void FakeClock::Set(absl::Time t) {
  absl::MutexLock lock(&mu_);
  now_ = t;
}

}  // namespace jobwire
