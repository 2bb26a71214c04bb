#include "server/core/ids.h"

#include <algorithm>

namespace jobwire {
namespace {

constexpr char kAlphabet[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
constexpr int kRandomBits = 80;
constexpr uint64_t kMaxMillis = (uint64_t{1} << 48) - 1;

int DecodeChar(char c) {
  const char* p = std::find(kAlphabet, kAlphabet + 32, c);
  return p == kAlphabet + 32 ? -1 : static_cast<int>(p - kAlphabet);
}

}  // namespace

IdGenerator::IdGenerator(Clock* clock) : clock_(clock) {}

std::string IdGenerator::Next() {
  const int64_t now_ms = absl::ToUnixMillis(clock_->Now());
  const uint64_t ms = std::min<uint64_t>(
      kMaxMillis, static_cast<uint64_t>(std::max<int64_t>(0, now_ms)));
  absl::MutexLock lock(&mu_);
  const absl::uint128 random_mask = (absl::uint128(1) << kRandomBits) - 1;
  absl::uint128 candidate =
      (absl::uint128(ms) << kRandomBits) |
      (absl::MakeUint128(absl::Uniform<uint16_t>(bitgen_),
                         absl::Uniform<uint64_t>(bitgen_)) &
       random_mask);
  if ((candidate >> kRandomBits) <= (last_ >> kRandomBits)) {
    // Same (or an earlier) millisecond: keep the previous id's time and count
    // up. An overflow of the random part carries into the time, which stays
    // monotonic and is still a valid ULID.
    candidate = last_ + 1;
  }
  last_ = candidate;
  return EncodeUlid(candidate);
}

void IdGenerator::AdvancePast(absl::string_view id) {
  absl::uint128 value = 0;
  if (!DecodeUlid(id, &value)) return;
  absl::MutexLock lock(&mu_);
  last_ = std::max(last_, value);
}

bool DecodeUlid(absl::string_view text, absl::uint128* value) {
  if (!IsValidUlid(text)) return false;
  absl::uint128 v = 0;
  for (char c : text) v = (v << 5) | static_cast<unsigned>(DecodeChar(c));
  *value = v;
  return true;
}

std::string EncodeUlid(absl::uint128 value) {
  std::string out(kUlidLength, '0');
  for (int i = kUlidLength - 1; i >= 0; --i) {
    out[i] = kAlphabet[static_cast<int>(value & 31)];
    value >>= 5;
  }
  return out;
}

bool IsValidUlid(absl::string_view text) {
  if (text.size() != kUlidLength) return false;
  if (DecodeChar(text[0]) < 0 || DecodeChar(text[0]) > 7) return false;
  return std::all_of(text.begin(), text.end(),
                     [](char c) { return DecodeChar(c) >= 0; });
}

absl::Time UlidTime(absl::string_view ulid) {
  uint64_t ms = 0;
  // The first 10 characters hold 50 bits: the 48-bit time, two leading zeros.
  for (int i = 0; i < 10 && i < static_cast<int>(ulid.size()); ++i) {
    ms = (ms << 5) | static_cast<uint64_t>(std::max(0, DecodeChar(ulid[i])));
  }
  return absl::FromUnixMillis(static_cast<int64_t>(ms));
}

}  // namespace jobwire
