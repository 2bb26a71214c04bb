// Helpers shared by the libFuzzer targets (`*_fuzz.cc` beside the code they
// fuzz; built by the `fuzz` preset, see README "Fuzzing").
//
// FUZZ_CHECK aborts with the failed condition, which libFuzzer reports as a
// crash and saves the input: the targets' oracles use it where a unit test
// would EXPECT. FuzzInput reads typed values off the front of the input, so
// one input can drive several choices and still be mutated byte by byte.
#ifndef JOBWIRE_TESTS_FUZZ_FUZZ_UTIL_H_
#define JOBWIRE_TESTS_FUZZ_FUZZ_UTIL_H_

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "server/common/errors.h"

#define FUZZ_CHECK(cond, ...)                                          \
  do {                                                                 \
    if (!(cond)) {                                                     \
      std::fprintf(stderr, "%s:%d: FUZZ_CHECK(%s) failed: ", __FILE__, \
                   __LINE__, #cond);                                   \
      std::fprintf(stderr, "%s\n", std::string(__VA_ARGS__).c_str());  \
      std::abort();                                                    \
    }                                                                  \
  } while (0)

namespace jobwire::fuzz {

// Whether `s` is well-formed UTF-8 (no overlongs, no surrogates, at most
// U+10FFFF): what a grpc-message or a JSON string must be.
inline bool IsValidUtf8(absl::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    int n;
    uint32_t cp;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      n = 1;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      n = 2;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      n = 3;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (s.size() - i <= static_cast<size_t>(n)) return false;
    for (int k = 1; k <= n; ++k) {
      const unsigned char d = static_cast<unsigned char>(s[i + k]);
      if ((d & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (d & 0x3F);
    }
    if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) ||
        (n == 3 && cp < 0x10000) || cp > 0x10FFFF ||
        (cp >= 0xD800 && cp <= 0xDFFF)) {
      return false;
    }
    i += n + 1;
  }
  return true;
}

// Checks that `status` is how the API refuses a client's bytes:
// INVALID_ARGUMENT with exactly one BadRequest violation at `field`, and a
// message and description that are valid UTF-8 (they become grpc-message
// and a proto string).
inline void CheckBadRequest(const absl::Status& status,
                            absl::string_view field) {
  FUZZ_CHECK(status.code() == absl::StatusCode::kInvalidArgument,
             status.ToString());
  const std::vector<FieldViolation> v = GetFieldViolations(status);
  FUZZ_CHECK(v.size() == 1 && v[0].field == field, status.ToString());
  FUZZ_CHECK(IsValidUtf8(v[0].description), v[0].description);
  FUZZ_CHECK(IsValidUtf8(status.message()), std::string(status.message()));
}

// Typed values read off the front of a fuzz input; past the end, zeros.
class FuzzInput {
 public:
  FuzzInput(const uint8_t* data, size_t size)
      : data_(reinterpret_cast<const char*>(data), size) {}

  uint8_t Byte() {
    if (data_.empty()) return 0;
    const uint8_t b = static_cast<uint8_t>(data_[0]);
    data_.remove_prefix(1);
    return b;
  }
  bool Bool() { return (Byte() & 1) != 0; }
  // A string of at most `max` bytes: a length byte, then the bytes.
  std::string String(size_t max = 255) {
    size_t n = Byte();
    if (n > max) n = max;
    if (n > data_.size()) n = data_.size();
    std::string s(data_.substr(0, n));
    data_.remove_prefix(n);
    return s;
  }
  // What is left, consumed.
  std::string Rest() {
    std::string s(data_);
    data_ = {};
    return s;
  }
  bool empty() const { return data_.empty(); }

 private:
  absl::string_view data_;
};

}  // namespace jobwire::fuzz

#endif  // JOBWIRE_TESTS_FUZZ_FUZZ_UTIL_H_
