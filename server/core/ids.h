// Job ids: ULID text (https://github.com/ulid/spec).
//
// An id is 26 characters of Crockford base32 encoding 128 bits: a 48-bit
// Unix time in milliseconds followed by 80 random bits. Ids sort by creation
// time as plain strings. IdGenerator makes them strictly increasing within the
// process, even within one millisecond or when the clock steps back: the
// random part of the previous id is incremented instead of drawn again.
#ifndef JOBWIRE_SERVER_CORE_IDS_H_
#define JOBWIRE_SERVER_CORE_IDS_H_

#include <cstdint>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/numeric/int128.h"
#include "absl/random/random.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/common/clock.h"

namespace jobwire {

inline constexpr int kUlidLength = 26;

// Generates ULIDs. Thread-safe. Does not own the clock.
class IdGenerator {
 public:
  explicit IdGenerator(Clock* clock);
  IdGenerator(const IdGenerator&) = delete;
  IdGenerator& operator=(const IdGenerator&) = delete;

  // A new id, greater than every id this generator returned before and than
  // every id passed to AdvancePast().
  std::string Next();

  // Makes later ids sort after `id` (a stored id, say, so that ids keep
  // growing across restarts even if the clock stepped back). Ignores text
  // that is not a valid ULID.
  void AdvancePast(absl::string_view id);

 private:
  Clock* const clock_;
  absl::Mutex mu_;
  absl::BitGen bitgen_ ABSL_GUARDED_BY(mu_);
  absl::uint128 last_ ABSL_GUARDED_BY(mu_) = 0;
};

// Encodes a 128-bit value as 26 Crockford base32 characters.
std::string EncodeUlid(absl::uint128 value);
// Decodes a valid ULID; false for anything else.
bool DecodeUlid(absl::string_view text, absl::uint128* value);
// True for 26 upper-case Crockford base32 characters whose first is 0..7.
bool IsValidUlid(absl::string_view text);
// The creation time encoded in a valid ULID (millisecond precision).
absl::Time UlidTime(absl::string_view ulid);

}  // namespace jobwire

#endif  // JOBWIRE_SERVER_CORE_IDS_H_
