// libFuzzer target: ParseStructJson (struct_json.h), which reads job args,
// results and details from clients, differentially against protobuf's own
// JSON parser (google::protobuf::util::JsonStringToMessage into a
// google.protobuf.Struct), which it replaced for speed.
//
// Oracle, for any input:
//  - both parsers accept it or both refuse it, except where protobuf's
//    parser is lenient beyond RFC 8259 (ProtobufLeniency());
//  - when both accept, the two Structs are equal;
//  - what ours accepts, AppendStructJson writes, and that text parses back
//    (by both parsers) to an equal Struct and is written again unchanged;
//  - a refusal is INVALID_ARGUMENT with one violation at the caller's field,
//    valid UTF-8, and leaves the output empty.
#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/message_differencer.h"
#include "server/api/struct_json.h"
#include "server/common/errors.h"
#include "tests/fuzz/fuzz_util.h"

namespace jobwire {
namespace {

using google::protobuf::Struct;
using google::protobuf::util::MessageDifferencer;

absl::Status ProtobufParse(absl::string_view json, Struct* out) {
  out->Clear();
  google::protobuf::util::JsonParseOptions options;
  const auto status = google::protobuf::util::JsonStringToMessage(
      google::protobuf::StringPiece(json.data(), json.size()), out, options);
  if (status.ok()) return absl::OkStatus();
  return absl::InvalidArgumentError(std::string(status.message()));
}

// Where and why ours refused: the byte offset and the reason of
// "not a JSON object: at byte N: REASON".
bool ErrorAt(const absl::Status& status, size_t* at, std::string* reason) {
  const std::vector<FieldViolation> v = GetFieldViolations(status);
  if (v.size() != 1) return false;
  absl::string_view d = v[0].description;
  if (!absl::ConsumePrefix(&d, "not a JSON object: at byte ")) return false;
  const size_t colon = d.find(": ");
  if (colon == absl::string_view::npos ||
      !absl::SimpleAtoi(d.substr(0, colon), at)) {
    return false;
  }
  *reason = std::string(d.substr(colon + 2));
  return true;
}

// Why protobuf may accept `json` that ours refused with `status`, or
// nullptr when it must not. Ours follows RFC 8259 to the letter
// (struct_json.h); protobuf 3.21's parser is lenient in the ways below, so
// each case checks that ours stopped exactly where one of those leniencies
// applies.
const char* ProtobufLeniency(absl::string_view json,
                             const absl::Status& status) {
  size_t at = 0;
  std::string reason;
  if (!ErrorAt(status, &at, &reason)) return nullptr;
  const char c = at < json.size() ? json[at] : '\0';
  // \f and \v are whitespace to protobuf; RFC 8259 has only space, tab,
  // CR and LF.
  if ((c == '\f' || c == '\v') && reason.find("expected") == 0) {
    return "\\f or \\v as whitespace";
  }
  if (c == '\f' || c == '\v') {
    if (reason == "unexpected data after the JSON object") {
      return "\\f or \\v as whitespace";
    }
  }
  // Object keys without quotes or in single quotes ({a:1}, {'a':1}), and
  // single-quoted string values.
  if (reason == "expected an object key" &&
      (c == '\'' || absl::ascii_isalpha(c) || c == '_' || c == '$')) {
    return "unquoted or single-quoted key";
  }
  if (reason == "expected a value" && c == '\'') {
    return "single-quoted string";
  }
  // Raw control characters inside strings (RFC 8259 wants them escaped).
  if (reason == "control character in a string" &&
      static_cast<unsigned char>(c) < 0x20) {
    return "raw control character in a string";
  }
  // Escapes RFC 8259 does not have (\x, \a, \U, \0): protobuf keeps the
  // character after the backslash.
  if (reason == "invalid escape in a string" && c == '\\' &&
      at + 1 < json.size() &&
      absl::string_view("\"\\/bfnrtu").find(json[at + 1]) ==
          absl::string_view::npos) {
    return "unknown escape";
  }
  // Numbers strtod reads but RFC 8259 does not ("1.", "-.5", "09.5"): ours
  // stopped inside a run of number characters that strtod takes whole.
  const auto number_char = [](char ch) {
    return absl::ascii_isdigit(ch) || ch == '-' || ch == '+' || ch == '.' ||
           ch == 'e' || ch == 'E';
  };
  size_t begin = at;
  while (begin > 0 && number_char(json[begin - 1])) --begin;
  size_t end = at;
  while (end < json.size() && number_char(json[end])) ++end;
  double d;
  if (end > begin && absl::SimpleAtod(json.substr(begin, end - begin), &d)) {
    return "number in a form RFC 8259 does not have";
  }
  // A comma before the closing bracket ({"a":1,}, [1,]).
  if ((reason == "expected an object key" && c == '}') ||
      (reason == "expected a value" && c == ']')) {
    absl::string_view before =
        absl::StripTrailingAsciiWhitespace(json.substr(0, at));
    if (absl::EndsWith(before, ",")) return "trailing comma";
  }
  return nullptr;
}

}  // namespace
}  // namespace jobwire

// LLVMFuzzerInitialize: tests/fuzz/quiet_protobuf.cc.
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace jobwire;
  const absl::string_view json(reinterpret_cast<const char*>(data), size);
  Struct ours;
  (*ours.mutable_fields())["stale"].set_bool_value(true);
  const absl::Status ours_status = ParseStructJson(json, "args", &ours);
  Struct theirs;
  const absl::Status theirs_status = ProtobufParse(json, &theirs);

  if (!ours_status.ok()) {
    fuzz::CheckBadRequest(ours_status, "args");
    FUZZ_CHECK(ours.fields().empty(), "output not cleared on failure");
  }
  // struct_json.h: "a key that occurs twice keeps its last value";
  // protobuf refuses the repeated map key.
  const bool repeated_key =
      ours_status.ok() && !theirs_status.ok() &&
      absl::StrContains(theirs_status.message(), "Repeated map key");
  if (ours_status.ok() != theirs_status.ok() && !repeated_key) {
    FUZZ_CHECK(
        !ours_status.ok() && ProtobufLeniency(json, ours_status) != nullptr,
        std::string("struct_json ") +
            (ours_status.ok() ? "accepts" : "refuses") + " what protobuf " +
            (theirs_status.ok() ? "accepts" : "refuses: ") +
            std::string(theirs_status.message()) + " / " +
            ours_status.ToString());
  }
  if (ours_status.ok() && theirs_status.ok()) {
    FUZZ_CHECK(MessageDifferencer::Equals(ours, theirs),
               "the parsers disagree on the value: ours " +
                   ours.ShortDebugString() + " theirs " +
                   theirs.ShortDebugString());
  }
  if (ours_status.ok()) {
    std::string text;
    const absl::Status written = AppendStructJson(ours, "args", &text);
    FUZZ_CHECK(written.ok(), written.ToString());
    Struct again;
    const absl::Status reread = ParseStructJson(text, "args", &again);
    FUZZ_CHECK(reread.ok(), reread.ToString() + " for " + text);
    FUZZ_CHECK(MessageDifferencer::Equals(ours, again), text);
    std::string text2;
    FUZZ_CHECK(AppendStructJson(again, "args", &text2).ok(), text);
    FUZZ_CHECK(text == text2, text + " then " + text2);
    Struct by_protobuf;
    const absl::Status p = ProtobufParse(text, &by_protobuf);
    FUZZ_CHECK(p.ok(),
               "protobuf refuses our text " + text + ": " + p.ToString());
    FUZZ_CHECK(MessageDifferencer::Equals(ours, by_protobuf), text);
  }
  return 0;
}
