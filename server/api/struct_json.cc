#include "server/api/struct_json.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/container/inlined_vector.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "server/common/errors.h"

namespace jobwire {
namespace {

using google::protobuf::ListValue;
using google::protobuf::Struct;
using google::protobuf::Value;

// Integral doubles up to this magnitude are exact and written as integers.
constexpr double kMaxExactInteger = 9007199254740992.0;  // 2^53

// The length of the valid UTF-8 sequence that starts at `p` (a byte >=
// 0x80), or 0 when it is not one: overlong forms, UTF-16 surrogates and code
// points above U+10FFFF are invalid.
int Utf8SequenceLength(const unsigned char* p, const unsigned char* end) {
  const unsigned c = p[0];
  int length;
  uint32_t code_point;
  if (c >= 0xC2 && c <= 0xDF) {
    length = 2;
    code_point = c & 0x1F;
  } else if ((c & 0xF0) == 0xE0) {
    length = 3;
    code_point = c & 0x0F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    length = 4;
    code_point = c & 0x07;
  } else {
    return 0;
  }
  if (end - p < length) return 0;
  for (int i = 1; i < length; ++i) {
    if ((p[i] & 0xC0) != 0x80) return 0;
    code_point = (code_point << 6) | (p[i] & 0x3F);
  }
  if (length == 3 &&
      (code_point < 0x800 || (code_point >= 0xD800 && code_point <= 0xDFFF))) {
    return 0;
  }
  if (length == 4 && (code_point < 0x10000 || code_point > 0x10FFFF)) return 0;
  return length;
}

bool IsValidUtf8(absl::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const auto* end = p + s.size();
  while (p < end) {
    if (*p < 0x80) {
      ++p;
      continue;
    }
    const int n = Utf8SequenceLength(p, end);
    if (n == 0) return false;
    p += n;
  }
  return true;
}

void AppendUtf8(uint32_t code_point, std::string* out) {
  if (code_point < 0x80) {
    out->push_back(static_cast<char>(code_point));
  } else if (code_point < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (code_point >> 6)));
    out->push_back(static_cast<char>(0x80 | (code_point & 0x3F)));
  } else if (code_point < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (code_point >> 12)));
    out->push_back(static_cast<char>(0x80 | ((code_point >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (code_point & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (code_point >> 18)));
    out->push_back(static_cast<char>(0x80 | ((code_point >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((code_point >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (code_point & 0x3F)));
  }
}

// ---------------------------------------------------------------- writer

// Walks a Struct and appends JSON. On failure, `problem()` says what and
// `path()` where ("a.b[2]").
class Writer {
 public:
  explicit Writer(std::string* out) : out_(out) {}

  bool WriteStruct(const Struct& s, int depth) {
    if (depth > kMaxStructJsonDepth) return Fail("nesting is too deep");
    // Keys in byte order, so that equal Structs give equal text.
    absl::InlinedVector<const google::protobuf::MapPair<std::string, Value>*,
                        16>
        entries;
    entries.reserve(s.fields().size());
    for (const auto& entry : s.fields()) entries.push_back(&entry);
    std::sort(entries.begin(), entries.end(),
              [](const auto* a, const auto* b) { return a->first < b->first; });
    out_->push_back('{');
    bool first = true;
    for (const auto* entry : entries) {
      if (!first) out_->push_back(',');
      first = false;
      if (!WriteString(entry->first)) {
        return Within(entry->first, "key is not valid UTF-8");
      }
      out_->push_back(':');
      if (!WriteValue(entry->second, depth)) return Within(entry->first);
    }
    out_->push_back('}');
    return true;
  }

  const std::string& problem() const { return problem_; }

  // Joins the segments collected while unwinding, innermost last.
  std::string path() const {
    std::string path;
    for (auto it = path_.rbegin(); it != path_.rend(); ++it) {
      if (!path.empty() && (*it)[0] != '[') path.push_back('.');
      path += *it;
    }
    return path;
  }

 private:
  bool WriteValue(const Value& v, int depth) {
    switch (v.kind_case()) {
      case Value::kNullValue:
      case Value::KIND_NOT_SET:
        out_->append("null");
        return true;
      case Value::kBoolValue:
        out_->append(v.bool_value() ? "true" : "false");
        return true;
      case Value::kNumberValue:
        return WriteNumber(v.number_value());
      case Value::kStringValue:
        return WriteString(v.string_value()) ||
               Fail("string is not valid UTF-8");
      case Value::kStructValue:
        return WriteStruct(v.struct_value(), depth + 1);
      case Value::kListValue:
        return WriteList(v.list_value(), depth + 1);
    }
    return Fail("value has an unknown kind");
  }

  bool WriteList(const ListValue& list, int depth) {
    if (depth > kMaxStructJsonDepth) return Fail("nesting is too deep");
    out_->push_back('[');
    for (int i = 0; i < list.values_size(); ++i) {
      if (i > 0) out_->push_back(',');
      if (!WriteValue(list.values(i), depth)) {
        path_.push_back(absl::StrCat("[", i, "]"));
        return false;
      }
    }
    out_->push_back(']');
    return true;
  }

  bool WriteNumber(double d) {
    if (std::isnan(d)) return Fail("number is NaN");
    if (std::isinf(d)) return Fail("number is infinite");
    if (d == std::trunc(d) && std::fabs(d) <= kMaxExactInteger) {
      if (d == 0 && std::signbit(d)) {
        out_->append("-0");
      } else {
        absl::StrAppend(out_, static_cast<int64_t>(d));
      }
      return true;
    }
    char buffer[32];
    const std::to_chars_result r =
        std::to_chars(buffer, buffer + sizeof(buffer), d);
    out_->append(buffer, r.ptr);
    return true;
  }

  // False (nothing useful written) when `s` is not valid UTF-8.
  bool WriteString(absl::string_view s) {
    static constexpr char kHex[] = "0123456789abcdef";
    out_->push_back('"');
    const auto* p = reinterpret_cast<const unsigned char*>(s.data());
    const auto* end = p + s.size();
    while (p < end) {
      // Copy the longest run that needs no attention in one go.
      const auto* run = p;
      while (p < end && *p >= 0x20 && *p < 0x80 && *p != '"' && *p != '\\') {
        ++p;
      }
      out_->append(reinterpret_cast<const char*>(run), p - run);
      if (p == end) break;
      const unsigned c = *p;
      if (c >= 0x80) {
        const int n = Utf8SequenceLength(p, end);
        if (n == 0) return false;
        out_->append(reinterpret_cast<const char*>(p), n);
        p += n;
        continue;
      }
      out_->push_back('\\');
      switch (c) {
        case '"':
        case '\\':
          out_->push_back(static_cast<char>(c));
          break;
        case '\b':
          out_->push_back('b');
          break;
        case '\f':
          out_->push_back('f');
          break;
        case '\n':
          out_->push_back('n');
          break;
        case '\r':
          out_->push_back('r');
          break;
        case '\t':
          out_->push_back('t');
          break;
        default:
          out_->append("u00");
          out_->push_back(kHex[c >> 4]);
          out_->push_back(kHex[c & 0xF]);
      }
      ++p;
    }
    out_->push_back('"');
    return true;
  }

  bool Fail(absl::string_view problem) {
    problem_ = std::string(problem);
    return false;
  }

  // Records the key of the failing entry; keys that are not valid UTF-8 are
  // shown escaped so the error itself stays valid UTF-8.
  bool Within(absl::string_view key, absl::string_view problem = "") {
    if (!problem.empty()) problem_ = std::string(problem);
    path_.push_back(IsValidUtf8(key) ? std::string(key)
                                     : absl::CHexEscape(key));
    return false;
  }

  std::string* const out_;
  std::string problem_;
  std::vector<std::string> path_;  // innermost first
};

// ---------------------------------------------------------------- parser

// A recursive descent parser over [begin, end). On failure, `error()` holds
// "at byte N: ...".
class Parser {
 public:
  explicit Parser(absl::string_view text)
      : begin_(text.data()), p_(text.data()), end_(text.data() + text.size()) {}

  bool ParseDocument(Struct* out) {
    SkipWhitespace();
    if (p_ == end_) return Fail("expected a JSON object, found the end");
    if (*p_ != '{') return Fail("expected a JSON object ('{')");
    if (!ParseObject(out, 1)) return false;
    SkipWhitespace();
    if (p_ != end_) return Fail("unexpected data after the JSON object");
    return true;
  }

  const std::string& error() const { return error_; }

 private:
  bool ParseObject(Struct* out, int depth) {
    if (depth > kMaxStructJsonDepth) {
      return Fail(absl::StrCat("nesting deeper than ", kMaxStructJsonDepth));
    }
    ++p_;  // '{'
    auto& fields = *out->mutable_fields();
    SkipWhitespace();
    if (p_ < end_ && *p_ == '}') {
      ++p_;
      return true;
    }
    std::string key;
    while (true) {
      SkipWhitespace();
      if (p_ == end_ || *p_ != '"') return Fail("expected an object key");
      key.clear();
      if (!ParseString(&key)) return false;
      SkipWhitespace();
      if (p_ == end_ || *p_ != ':') {
        return Fail("expected ':' after an object key");
      }
      ++p_;
      Value& value = fields[key];
      if (!ParseValue(&value, depth)) return false;
      SkipWhitespace();
      if (p_ == end_) return Fail("expected ',' or '}' in an object");
      if (*p_ == ',') {
        ++p_;
        continue;
      }
      if (*p_ == '}') {
        ++p_;
        return true;
      }
      return Fail("expected ',' or '}' in an object");
    }
  }

  bool ParseArray(ListValue* out, int depth) {
    if (depth > kMaxStructJsonDepth) {
      return Fail(absl::StrCat("nesting deeper than ", kMaxStructJsonDepth));
    }
    ++p_;  // '['
    SkipWhitespace();
    if (p_ < end_ && *p_ == ']') {
      ++p_;
      return true;
    }
    while (true) {
      if (!ParseValue(out->add_values(), depth)) return false;
      SkipWhitespace();
      if (p_ == end_) return Fail("expected ',' or ']' in an array");
      if (*p_ == ',') {
        ++p_;
        continue;
      }
      if (*p_ == ']') {
        ++p_;
        return true;
      }
      return Fail("expected ',' or ']' in an array");
    }
  }

  // `depth` is that of the object or array holding the value. Replaces
  // whatever `out` held (a repeated key keeps its last value).
  bool ParseValue(Value* out, int depth) {
    SkipWhitespace();
    if (p_ == end_) return Fail("expected a value, found the end");
    switch (*p_) {
      case '{': {
        Struct* s = out->mutable_struct_value();
        s->Clear();
        return ParseObject(s, depth + 1);
      }
      case '[': {
        ListValue* l = out->mutable_list_value();
        l->Clear();
        return ParseArray(l, depth + 1);
      }
      case '"': {
        std::string* s = out->mutable_string_value();
        s->clear();
        return ParseString(s);
      }
      case 't':
        if (!ParseLiteral("true")) return false;
        out->set_bool_value(true);
        return true;
      case 'f':
        if (!ParseLiteral("false")) return false;
        out->set_bool_value(false);
        return true;
      case 'n':
        if (!ParseLiteral("null")) return false;
        out->set_null_value(google::protobuf::NULL_VALUE);
        return true;
      default: {
        double d;
        if (!ParseNumber(&d)) return false;
        out->set_number_value(d);
        return true;
      }
    }
  }

  bool ParseLiteral(absl::string_view literal) {
    if (static_cast<size_t>(end_ - p_) < literal.size() ||
        std::memcmp(p_, literal.data(), literal.size()) != 0) {
      return Fail("expected a value");
    }
    p_ += literal.size();
    return true;
  }

  static bool IsDigit(char c) { return c >= '0' && c <= '9'; }

  bool ParseNumber(double* out) {
    const char* const start = p_;
    if (p_ < end_ && *p_ == '-') ++p_;
    if (p_ == end_ || !IsDigit(*p_)) {
      p_ = start;
      return Fail("expected a value");
    }
    if (*p_ == '0') {
      ++p_;
    } else {
      while (p_ < end_ && IsDigit(*p_)) ++p_;
    }
    if (p_ < end_ && *p_ == '.') {
      ++p_;
      if (p_ == end_ || !IsDigit(*p_)) {
        return Fail("expected a digit after the decimal point");
      }
      while (p_ < end_ && IsDigit(*p_)) ++p_;
    }
    if (p_ < end_ && (*p_ == 'e' || *p_ == 'E')) {
      ++p_;
      if (p_ < end_ && (*p_ == '+' || *p_ == '-')) ++p_;
      if (p_ == end_ || !IsDigit(*p_)) {
        return Fail("expected a digit in the exponent");
      }
      while (p_ < end_ && IsDigit(*p_)) ++p_;
    }
    const std::from_chars_result r = std::from_chars(start, p_, *out);
    if (r.ec == std::errc::result_out_of_range) {
      // Overflow or underflow; strtod tells them apart (HUGE_VAL versus a
      // tiny value or 0). The number is plain ASCII, so the locale's decimal
      // point cannot differ from '.' in any locale jobwired runs in ("C").
      *out = std::strtod(std::string(start, p_).c_str(), nullptr);
      if (std::isinf(*out)) {
        p_ = start;
        return Fail("number is out of the range of a double");
      }
    } else if (r.ec != std::errc() || r.ptr != p_) {
      p_ = start;
      return Fail("malformed number");
    }
    return true;
  }

  // At '"'. Appends the decoded string to `out` and moves past the closing
  // quote.
  bool ParseString(std::string* out) {
    ++p_;  // '"'
    while (true) {
      const char* run = p_;
      while (p_ < end_ && static_cast<unsigned char>(*p_) >= 0x20 &&
             static_cast<unsigned char>(*p_) < 0x80 && *p_ != '"' &&
             *p_ != '\\') {
        ++p_;
      }
      out->append(run, p_ - run);
      if (p_ == end_) return Fail("unterminated string");
      const auto c = static_cast<unsigned char>(*p_);
      if (c == '"') {
        ++p_;
        return true;
      }
      if (c < 0x20) return Fail("control character in a string");
      if (c >= 0x80) {
        const int n =
            Utf8SequenceLength(reinterpret_cast<const unsigned char*>(p_),
                               reinterpret_cast<const unsigned char*>(end_));
        if (n == 0) return Fail("invalid UTF-8 in a string");
        out->append(p_, n);
        p_ += n;
        continue;
      }
      if (!ParseEscape(out)) return false;
    }
  }

  // At '\'.
  bool ParseEscape(std::string* out) {
    if (end_ - p_ < 2) return Fail("unterminated string");
    const char c = p_[1];
    char plain = 0;
    switch (c) {
      case '"':
      case '\\':
      case '/':
        plain = c;
        break;
      case 'b':
        plain = '\b';
        break;
      case 'f':
        plain = '\f';
        break;
      case 'n':
        plain = '\n';
        break;
      case 'r':
        plain = '\r';
        break;
      case 't':
        plain = '\t';
        break;
      case 'u':
        return ParseUnicodeEscape(out);
      default:
        return Fail("invalid escape in a string");
    }
    out->push_back(plain);
    p_ += 2;
    return true;
  }

  // At "\u": one code point, or a surrogate pair as two escapes.
  bool ParseUnicodeEscape(std::string* out) {
    uint32_t unit;
    if (!ReadHex4(p_ + 2, &unit)) return Fail("invalid \\u escape");
    if (unit >= 0xDC00 && unit <= 0xDFFF) {
      return Fail("unpaired UTF-16 surrogate in \\u escape");
    }
    if (unit >= 0xD800 && unit <= 0xDBFF) {
      uint32_t low;
      if (end_ - p_ < 12 || p_[6] != '\\' || p_[7] != 'u' ||
          !ReadHex4(p_ + 8, &low) || low < 0xDC00 || low > 0xDFFF) {
        return Fail("unpaired UTF-16 surrogate in \\u escape");
      }
      AppendUtf8(0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00), out);
      p_ += 12;
      return true;
    }
    AppendUtf8(unit, out);
    p_ += 6;
    return true;
  }

  // Four hex digits at `at`, if they are all inside the text.
  bool ReadHex4(const char* at, uint32_t* out) const {
    if (end_ - at < 4) return false;
    uint32_t value = 0;
    for (int i = 0; i < 4; ++i) {
      const char c = at[i];
      uint32_t digit;
      if (c >= '0' && c <= '9') {
        digit = c - '0';
      } else if (c >= 'a' && c <= 'f') {
        digit = c - 'a' + 10;
      } else if (c >= 'A' && c <= 'F') {
        digit = c - 'A' + 10;
      } else {
        return false;
      }
      value = (value << 4) | digit;
    }
    *out = value;
    return true;
  }

  void SkipWhitespace() {
    while (p_ < end_ &&
           (*p_ == ' ' || *p_ == '\n' || *p_ == '\r' || *p_ == '\t')) {
      ++p_;
    }
  }

  bool Fail(absl::string_view problem) {
    error_ = absl::StrCat("at byte ", p_ - begin_, ": ", problem);
    return false;
  }

  const char* const begin_;
  const char* p_;
  const char* const end_;
  std::string error_;
};

}  // namespace

absl::Status AppendStructJson(const Struct& s, absl::string_view field,
                              std::string* out) {
  const size_t size = out->size();
  Writer writer(out);
  if (writer.WriteStruct(s, 1)) return absl::OkStatus();
  out->resize(size);
  const std::string path = writer.path();
  return InvalidArgumentError(
      field, absl::StrCat("not representable as JSON: ", writer.problem(),
                          path.empty() ? "" : " at ", path));
}

absl::Status ParseStructJson(absl::string_view json, absl::string_view field,
                             Struct* out) {
  out->Clear();
  Parser parser(json);
  if (parser.ParseDocument(out)) return absl::OkStatus();
  out->Clear();
  return InvalidArgumentError(
      field, absl::StrCat("not a JSON object: ", parser.error()));
}

}  // namespace jobwire
