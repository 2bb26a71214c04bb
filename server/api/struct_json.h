// Direct conversion between google.protobuf.Struct and compact JSON text.
//
// jobwire stores structured values (job args, result data, error and
// progress details) as JSON object text and sends them as
// google.protobuf.Struct. protobuf's util JSON functions do this through
// binary serialisation and a TypeResolver, which made them the largest
// protobuf cost of a SubmitJob; these two functions walk the messages
// directly. The text they write is ordinary JSON that protobuf's parser (and
// any other) reads back, and they read text written by protobuf's writer, so
// stored values stay compatible both ways.
//
// Writing (AppendStructJson):
//  - compact: no spaces; object keys in byte order (deterministic output);
//  - strings: `"` and `\` escaped, control characters below U+0020 as
//    \b \f \n \r \t or \u00XX; everything else, including non-ASCII, passes
//    through as UTF-8;
//  - numbers: an integral value with magnitude <= 2^53 as an integer
//    ("640", "-0"); any other finite value in the shortest form that parses
//    back to the same double ("0.1", "1e+300"). NaN and infinities have no
//    JSON form: INVALID_ARGUMENT;
//  - a Value with no kind set is written as null (protobuf's binary form
//    cannot tell it from a null on the wire anyway);
//  - fails INVALID_ARGUMENT for a string or key that is not valid UTF-8 and
//    for nesting deeper than kMaxStructJsonDepth.
//
// Parsing (ParseStructJson):
//  - exactly one JSON object (RFC 8259), optionally surrounded by
//    whitespace; anything after it is an error;
//  - objects and arrays nest at most kMaxStructJsonDepth deep (the top
//    object is depth 1);
//  - strings: every RFC 8259 escape, \uXXXX including surrogate pairs (a
//    lone surrogate is an error), raw bytes must be valid UTF-8 and not
//    control characters;
//  - numbers: RFC 8259 grammar only (no leading zeros, "+", "NaN",
//    "Infinity", hex); a value beyond the double range is an error, one
//    below the smallest subnormal becomes 0;
//  - a key that occurs twice keeps its last value.
//
// Where protobuf's parser (util::JsonStringToMessage into a Struct)
// decides otherwise, checked by struct_json_fuzz.cc: it refuses a repeated
// key, and it accepts what RFC 8259 does not: \f and \v as whitespace,
// unquoted or single-quoted keys and strings, raw control characters and
// unknown escapes in strings, numbers such as "1.", "-.5" and "09.5", and a
// trailing comma. Text either parser accepts, the other reads the same.
//
// Failures are INVALID_ARGUMENT with one google.rpc.BadRequest field
// violation at the caller's `field` (for example "job.args"). The
// description says what is wrong and where: a path inside the Struct for
// the writer ("number is NaN at a.b[2]"), a byte offset into the text for
// the parser ("at byte 17: expected ':' after an object key").
//
// Pure functions; thread-safe.
#ifndef JOBWIRE_SERVER_API_STRUCT_JSON_H_
#define JOBWIRE_SERVER_API_STRUCT_JSON_H_

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/struct.pb.h"

namespace jobwire {

// Deepest nesting of objects and arrays either function accepts; the top
// object counts as 1.
inline constexpr int kMaxStructJsonDepth = 100;

// Appends `s` to `*out` as one compact JSON object. On failure `*out` is
// left as it was.
absl::Status AppendStructJson(const google::protobuf::Struct& s,
                              absl::string_view field, std::string* out);

// Replaces `*out` with the JSON object in `json`. On failure `*out` is
// cleared.
absl::Status ParseStructJson(absl::string_view json, absl::string_view field,
                             google::protobuf::Struct* out);

}  // namespace jobwire

#endif  // JOBWIRE_SERVER_API_STRUCT_JSON_H_
