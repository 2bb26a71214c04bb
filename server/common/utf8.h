// UTF-8 checks for text that goes into proto strings, grpc-message and JSON,
// all of which must be valid UTF-8, when it may hold a client's bytes.
// Pure functions; thread-safe.
#ifndef JOBWIRE_SERVER_COMMON_UTF8_H_
#define JOBWIRE_SERVER_COMMON_UTF8_H_

#include <cstddef>
#include <string>

#include "absl/strings/string_view.h"

namespace jobwire {

// The length of the well-formed UTF-8 sequence starting at text[i] (1 for
// ASCII), or 0 when the bytes there are not one. i < text.size().
size_t Utf8SequenceLength(absl::string_view text, size_t i);

// Whether `text` is well-formed UTF-8 (RFC 3629: no overlong forms,
// surrogates or code points past U+10FFFF).
bool IsValidUtf8(absl::string_view text);

// `text` with each byte that does not belong to a well-formed UTF-8
// sequence written as the four characters \xNN; valid text is unchanged.
std::string ValidUtf8(absl::string_view text);

}  // namespace jobwire

#endif  // JOBWIRE_SERVER_COMMON_UTF8_H_
