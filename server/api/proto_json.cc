#include "server/api/proto_json.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/duration.pb.h>
#include <google/protobuf/reflection.h>
#include <google/protobuf/struct.pb.h>
#include <google/protobuf/timestamp.pb.h>
#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "server/api/struct_json.h"

namespace jobwire {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;

void AppendString(absl::string_view s, std::string* out) {
  out->push_back('"');
  for (char c : s) {
    switch (c) {
      case '"':
        out->append("\\\"");
        break;
      case '\\':
        out->append("\\\\");
        break;
      case '\b':
        out->append("\\b");
        break;
      case '\f':
        out->append("\\f");
        break;
      case '\n':
        out->append("\\n");
        break;
      case '\r':
        out->append("\\r");
        break;
      case '\t':
        out->append("\\t");
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          absl::StrAppendFormat(out, "\\u%04x", static_cast<unsigned char>(c));
        } else {
          out->push_back(c);
        }
    }
  }
  out->push_back('"');
}

// The shortest decimal form that reads back as `v` (finite values), as
// protobuf writes numbers; non-finite values as protobuf's strings.
void AppendDouble(double v, int max_digits, std::string* out) {
  if (std::isnan(v)) {
    out->append("\"NaN\"");
    return;
  }
  if (std::isinf(v)) {
    out->append(v > 0 ? "\"Infinity\"" : "\"-Infinity\"");
    return;
  }
  if (v == std::trunc(v) && std::fabs(v) <= 9007199254740992.0) {
    absl::StrAppend(out, static_cast<int64_t>(v));
    return;
  }
  char buf[64];
  for (int digits = 1; digits <= max_digits; ++digits) {
    std::snprintf(buf, sizeof(buf), "%.*g", digits, v);
    if (max_digits > 9 ? std::strtod(buf, nullptr) == v
                       : std::strtof(buf, nullptr) == static_cast<float>(v)) {
      break;
    }
  }
  out->append(buf);
}

// Fractional seconds as protobuf writes them: none, or 3, 6 or 9 digits.
void AppendNanos(int32_t nanos, std::string* out) {
  if (nanos == 0) return;
  if (nanos % 1000000 == 0) {
    absl::StrAppendFormat(out, ".%03d", nanos / 1000000);
  } else if (nanos % 1000 == 0) {
    absl::StrAppendFormat(out, ".%06d", nanos / 1000);
  } else {
    absl::StrAppendFormat(out, ".%09d", nanos);
  }
}

// protobuf's own writer, for what this one does not handle itself.
void AppendByProtobuf(const Message& m, std::string* out) {
  std::string json;
  if (google::protobuf::util::MessageToJsonString(m, &json).ok() &&
      !json.empty()) {
    out->append(json);
  } else {
    out->append("null");
  }
}

void AppendMessage(const Message& m, std::string* out);

void AppendScalar(const Message& m, const Reflection& r,
                  const FieldDescriptor& f, int index, std::string* out) {
  const bool repeated = index >= 0;
  switch (f.cpp_type()) {
    case FieldDescriptor::CPPTYPE_INT32:
      absl::StrAppend(
          out, repeated ? r.GetRepeatedInt32(m, &f, index) : r.GetInt32(m, &f));
      break;
    case FieldDescriptor::CPPTYPE_UINT32:
      absl::StrAppend(out, repeated ? r.GetRepeatedUInt32(m, &f, index)
                                    : r.GetUInt32(m, &f));
      break;
    case FieldDescriptor::CPPTYPE_INT64:
      absl::StrAppend(
          out, "\"",
          repeated ? r.GetRepeatedInt64(m, &f, index) : r.GetInt64(m, &f),
          "\"");
      break;
    case FieldDescriptor::CPPTYPE_UINT64:
      absl::StrAppend(
          out, "\"",
          repeated ? r.GetRepeatedUInt64(m, &f, index) : r.GetUInt64(m, &f),
          "\"");
      break;
    case FieldDescriptor::CPPTYPE_DOUBLE:
      AppendDouble(
          repeated ? r.GetRepeatedDouble(m, &f, index) : r.GetDouble(m, &f), 17,
          out);
      break;
    case FieldDescriptor::CPPTYPE_FLOAT:
      AppendDouble(
          repeated ? r.GetRepeatedFloat(m, &f, index) : r.GetFloat(m, &f), 9,
          out);
      break;
    case FieldDescriptor::CPPTYPE_BOOL:
      out->append(
          (repeated ? r.GetRepeatedBool(m, &f, index) : r.GetBool(m, &f))
              ? "true"
              : "false");
      break;
    case FieldDescriptor::CPPTYPE_ENUM: {
      const int number = repeated ? r.GetRepeatedEnumValue(m, &f, index)
                                  : r.GetEnumValue(m, &f);
      if (f.enum_type()->full_name() == "google.protobuf.NullValue") {
        out->append("null");
      } else if (const auto* v = f.enum_type()->FindValueByNumber(number)) {
        AppendString(v->name(), out);
      } else {
        absl::StrAppend(out, number);
      }
      break;
    }
    case FieldDescriptor::CPPTYPE_STRING: {
      std::string scratch;
      const std::string& s =
          repeated ? r.GetRepeatedStringReference(m, &f, index, &scratch)
                   : r.GetStringReference(m, &f, &scratch);
      if (f.type() == FieldDescriptor::TYPE_BYTES) {
        AppendString(absl::Base64Escape(s), out);
      } else {
        AppendString(s, out);
      }
      break;
    }
    case FieldDescriptor::CPPTYPE_MESSAGE:
      AppendMessage(
          repeated ? r.GetRepeatedMessage(m, &f, index) : r.GetMessage(m, &f),
          out);
      break;
  }
}

// A map field: entries sorted by key (protobuf's binary order is not
// stable), each key as a JSON string.
void AppendMap(const Message& m, const Reflection& r, const FieldDescriptor& f,
               std::string* out) {
  const FieldDescriptor* key = f.message_type()->map_key();
  const FieldDescriptor* value = f.message_type()->map_value();
  const int n = r.FieldSize(m, &f);
  std::vector<std::pair<std::string, const Message*>> entries;
  entries.reserve(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) {
    const Message& entry = r.GetRepeatedMessage(m, &f, i);
    const Reflection& er = *entry.GetReflection();
    std::string k;
    if (key->cpp_type() == FieldDescriptor::CPPTYPE_STRING) {
      k = er.GetString(entry, key);
    } else if (key->cpp_type() == FieldDescriptor::CPPTYPE_BOOL) {
      k = er.GetBool(entry, key) ? "true" : "false";
    } else {
      std::string text;
      AppendScalar(entry, er, *key, -1, &text);
      // 64-bit keys came out quoted.
      if (!text.empty() && text.front() == '"')
        text = text.substr(1, text.size() - 2);
      k = std::move(text);
    }
    entries.emplace_back(std::move(k), &entry);
  }
  std::sort(entries.begin(), entries.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  out->push_back('{');
  for (size_t i = 0; i < entries.size(); ++i) {
    if (i > 0) out->push_back(',');
    AppendString(entries[i].first, out);
    out->push_back(':');
    const Message& entry = *entries[i].second;
    AppendScalar(entry, *entry.GetReflection(), *value, -1, out);
  }
  out->push_back('}');
}

// Well-known types written here; false for any other message.
bool AppendWellKnown(const Message& m, std::string* out) {
  const std::string& name = m.GetDescriptor()->full_name();
  if (name.rfind("google.protobuf.", 0) != 0) return false;
  if (name == "google.protobuf.Timestamp") {
    google::protobuf::Timestamp t;
    t.CopyFrom(m);
    // protobuf's range: 0001-01-01 to 9999-12-31.
    if (t.seconds() < -62135596800 || t.seconds() > 253402300799 ||
        t.nanos() < 0 || t.nanos() > 999999999) {
      AppendByProtobuf(m, out);
      return true;
    }
    out->push_back('"');
    out->append(absl::FormatTime("%E4Y-%m-%dT%H:%M:%S",
                                 absl::FromUnixSeconds(t.seconds()),
                                 absl::UTCTimeZone()));
    AppendNanos(t.nanos(), out);
    out->append("Z\"");
    return true;
  }
  if (name == "google.protobuf.Duration") {
    google::protobuf::Duration d;
    d.CopyFrom(m);
    if (d.seconds() < -315576000000 || d.seconds() > 315576000000 ||
        d.nanos() < -999999999 || d.nanos() > 999999999 ||
        (d.seconds() > 0 && d.nanos() < 0) ||
        (d.seconds() < 0 && d.nanos() > 0)) {
      AppendByProtobuf(m, out);
      return true;
    }
    out->push_back('"');
    if (d.seconds() < 0 || d.nanos() < 0) out->push_back('-');
    absl::StrAppend(out, std::abs(d.seconds()));
    AppendNanos(std::abs(d.nanos()), out);
    out->append("s\"");
    return true;
  }
  if (name == "google.protobuf.Struct") {
    const auto* s = dynamic_cast<const google::protobuf::Struct*>(&m);
    if (s == nullptr || !AppendStructJson(*s, "", out).ok()) {
      AppendByProtobuf(m, out);
    }
    return true;
  }
  AppendByProtobuf(m, out);
  return true;
}

void AppendMessage(const Message& m, std::string* out) {
  if (AppendWellKnown(m, out)) return;
  const Descriptor& d = *m.GetDescriptor();
  const Reflection& r = *m.GetReflection();
  out->push_back('{');
  bool first = true;
  for (int i = 0; i < d.field_count(); ++i) {
    const FieldDescriptor& f = *d.field(i);
    if (f.is_repeated()) {
      if (r.FieldSize(m, &f) == 0) continue;
    } else if (!r.HasField(m, &f)) {
      // Proto3 HasField: set oneof members, set messages, and scalars
      // that differ from their default.
      continue;
    }
    if (!first) out->push_back(',');
    first = false;
    AppendString(f.json_name(), out);
    out->push_back(':');
    if (f.is_map()) {
      AppendMap(m, r, f, out);
    } else if (f.is_repeated()) {
      out->push_back('[');
      for (int j = 0; j < r.FieldSize(m, &f); ++j) {
        if (j > 0) out->push_back(',');
        AppendScalar(m, r, f, j, out);
      }
      out->push_back(']');
    } else {
      AppendScalar(m, r, f, -1, out);
    }
  }
  out->push_back('}');
}

}  // namespace

void AppendProtoJson(const Message& message, std::string* out) {
  AppendMessage(message, out);
}

}  // namespace jobwire
