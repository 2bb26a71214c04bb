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

#include "absl/container/inlined_vector.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
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

namespace {

// --- Reading (ParseProtoJsonDirect) ---

// Integers of smaller magnitude read back exactly from a JSON number (a
// double); 2^53 itself is also what 2^53 + 1 reads as.
constexpr double kMaxExactInteger = 9007199254740992.0;  // 2^53

bool IsWellKnown(const Descriptor* d, absl::string_view name) {
  return d->full_name() == name;
}

// An integer field's value from a JSON number or a quoted integer.
template <typename T>
bool ReadInteger(const google::protobuf::Value& v, T* out) {
  if (v.kind_case() == google::protobuf::Value::kNumberValue) {
    const double d = v.number_value();
    if (!(std::fabs(d) < kMaxExactInteger) || d != std::trunc(d)) {
      return false;
    }
    if (d < static_cast<double>(std::numeric_limits<T>::min()) ||
        d > static_cast<double>(std::numeric_limits<T>::max())) {
      return false;
    }
    *out = static_cast<T>(d);
    return true;
  }
  if (v.kind_case() == google::protobuf::Value::kStringValue) {
    absl::string_view text = v.string_value();
    absl::string_view digits = text;
    if (!digits.empty() && digits[0] == '-') digits.remove_prefix(1);
    if (digits.empty() || digits.size() > 18 ||
        (digits.size() > 1 && digits[0] == '0')) {
      return false;
    }
    for (char c : digits) {
      if (c < '0' || c > '9') return false;
    }
    int64_t n = 0;
    if (!absl::SimpleAtoi(text, &n)) return false;
    if (n < static_cast<int64_t>(std::numeric_limits<T>::min()) ||
        (n > 0 && static_cast<uint64_t>(n) >
                      static_cast<uint64_t>(std::numeric_limits<T>::max()))) {
      return false;
    }
    *out = static_cast<T>(n);
    return true;
  }
  return false;
}

bool FillMessage(const google::protobuf::Struct& object, Message* m);

// Sets (or, for a repeated field, adds) `f` of `m` from `v`.
bool SetValue(const google::protobuf::Value& v, const FieldDescriptor* f,
              Message* m) {
  const Reflection* r = m->GetReflection();
  const bool add = f->is_repeated();
  switch (f->cpp_type()) {
#define JW_READ_INTEGER(CPPTYPE, T, Add, Set) \
  case FieldDescriptor::CPPTYPE: {            \
    T n{};                                    \
    if (!ReadInteger<T>(v, &n)) return false; \
    add ? r->Add(m, f, n) : r->Set(m, f, n);  \
    return true;                              \
  }
    JW_READ_INTEGER(CPPTYPE_INT32, int32_t, AddInt32, SetInt32)
    JW_READ_INTEGER(CPPTYPE_INT64, int64_t, AddInt64, SetInt64)
    JW_READ_INTEGER(CPPTYPE_UINT32, uint32_t, AddUInt32, SetUInt32)
    JW_READ_INTEGER(CPPTYPE_UINT64, uint64_t, AddUInt64, SetUInt64)
#undef JW_READ_INTEGER
    case FieldDescriptor::CPPTYPE_DOUBLE:
    case FieldDescriptor::CPPTYPE_FLOAT: {
      if (v.kind_case() != google::protobuf::Value::kNumberValue) return false;
      const double d = v.number_value();
      if (f->cpp_type() == FieldDescriptor::CPPTYPE_DOUBLE) {
        add ? r->AddDouble(m, f, d) : r->SetDouble(m, f, d);
        return true;
      }
      if (std::fabs(d) > std::numeric_limits<float>::max()) return false;
      const float x = static_cast<float>(d);
      add ? r->AddFloat(m, f, x) : r->SetFloat(m, f, x);
      return true;
    }
    case FieldDescriptor::CPPTYPE_BOOL: {
      if (v.kind_case() != google::protobuf::Value::kBoolValue) return false;
      add ? r->AddBool(m, f, v.bool_value()) : r->SetBool(m, f, v.bool_value());
      return true;
    }
    case FieldDescriptor::CPPTYPE_ENUM: {
      const google::protobuf::EnumValueDescriptor* e = nullptr;
      if (v.kind_case() == google::protobuf::Value::kStringValue) {
        e = f->enum_type()->FindValueByName(v.string_value());
      } else {
        int32_t n = 0;
        if (v.kind_case() == google::protobuf::Value::kNumberValue &&
            ReadInteger<int32_t>(v, &n)) {
          e = f->enum_type()->FindValueByNumber(n);
        }
      }
      if (e == nullptr) return false;
      add ? r->AddEnum(m, f, e) : r->SetEnum(m, f, e);
      return true;
    }
    case FieldDescriptor::CPPTYPE_STRING: {
      if (f->type() == FieldDescriptor::TYPE_BYTES ||
          v.kind_case() != google::protobuf::Value::kStringValue) {
        return false;
      }
      add ? r->AddString(m, f, v.string_value())
          : r->SetString(m, f, v.string_value());
      return true;
    }
    case FieldDescriptor::CPPTYPE_MESSAGE: {
      const Descriptor* d = f->message_type();
      Message* sub = add ? r->AddMessage(m, f) : r->MutableMessage(m, f);
      if (IsWellKnown(d, "google.protobuf.Struct")) {
        if (v.kind_case() != google::protobuf::Value::kStructValue) {
          return false;
        }
        sub->CopyFrom(v.struct_value());
        return true;
      }
      if (IsWellKnown(d, "google.protobuf.Value")) {
        sub->CopyFrom(v);
        return true;
      }
      if (IsWellKnown(d, "google.protobuf.ListValue")) {
        if (v.kind_case() != google::protobuf::Value::kListValue) return false;
        sub->CopyFrom(v.list_value());
        return true;
      }
      // Any other well-known type has a JSON form of its own.
      if (d->file()->package() == "google.protobuf") return false;
      if (v.kind_case() != google::protobuf::Value::kStructValue) return false;
      return FillMessage(v.struct_value(), sub);
    }
  }
  return false;
}

// The field a JSON key names: by its json_name, else by its name.
const FieldDescriptor* FieldOfKey(const Descriptor* d, const std::string& key) {
  for (int i = 0; i < d->field_count(); ++i) {
    if (d->field(i)->json_name() == key) return d->field(i);
  }
  return d->FindFieldByName(key);
}

bool FillMessage(const google::protobuf::Struct& object, Message* m) {
  const Descriptor* d = m->GetDescriptor();
  const Reflection* r = m->GetReflection();
  // Fields already set from this object: a second key naming one (its
  // json_name and its name) is left to protobuf.
  absl::InlinedVector<const FieldDescriptor*, 8> seen;
  for (const auto& [key, v] : object.fields()) {
    const FieldDescriptor* f = FieldOfKey(d, key);
    if (f == nullptr) return false;
    if (std::find(seen.begin(), seen.end(), f) != seen.end()) return false;
    seen.push_back(f);
    if (v.kind_case() == google::protobuf::Value::kNullValue ||
        v.kind_case() == google::protobuf::Value::KIND_NOT_SET) {
      return false;
    }
    if (const auto* oneof = f->containing_oneof();
        oneof != nullptr && r->HasOneof(*m, oneof)) {
      return false;
    }
    if (f->is_map()) {
      if (v.kind_case() != google::protobuf::Value::kStructValue) return false;
      const Descriptor* entry = f->message_type();
      const FieldDescriptor* key_field = entry->map_key();
      const FieldDescriptor* value_field = entry->map_value();
      if (key_field->cpp_type() != FieldDescriptor::CPPTYPE_STRING) {
        return false;
      }
      for (const auto& [k, item] : v.struct_value().fields()) {
        if (item.kind_case() == google::protobuf::Value::kNullValue) {
          return false;
        }
        Message* e = r->AddMessage(m, f);
        e->GetReflection()->SetString(e, key_field, k);
        if (!SetValue(item, value_field, e)) return false;
      }
      continue;
    }
    if (f->is_repeated()) {
      if (v.kind_case() != google::protobuf::Value::kListValue) return false;
      for (const google::protobuf::Value& item : v.list_value().values()) {
        if (item.kind_case() == google::protobuf::Value::kNullValue) {
          return false;
        }
        if (!SetValue(item, f, m)) return false;
      }
      continue;
    }
    if (!SetValue(v, f, m)) return false;
  }
  return true;
}

// Members of all objects in the JSON text `json`: its ':' outside strings.
size_t CountMembers(absl::string_view json) {
  size_t n = 0;
  bool in_string = false;
  for (size_t i = 0; i < json.size(); ++i) {
    const char c = json[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == ':') {
      ++n;
    }
  }
  return n;
}

size_t CountMembers(const google::protobuf::Value& v);

size_t CountMembers(const google::protobuf::Struct& s) {
  size_t n = s.fields_size();
  for (const auto& [key, v] : s.fields()) n += CountMembers(v);
  return n;
}

size_t CountMembers(const google::protobuf::Value& v) {
  if (v.kind_case() == google::protobuf::Value::kStructValue) {
    return CountMembers(v.struct_value());
  }
  size_t n = 0;
  if (v.kind_case() == google::protobuf::Value::kListValue) {
    for (const auto& item : v.list_value().values()) n += CountMembers(item);
  }
  return n;
}

}  // namespace

bool ParseProtoJsonDirect(absl::string_view json, Message* message) {
  google::protobuf::Arena arena;
  auto* object =
      google::protobuf::Arena::CreateMessage<google::protobuf::Struct>(&arena);
  if (!ParseStructJson(json, "body", object).ok()) return false;
  // A key given twice in one object: struct_json keeps the last, protobuf
  // may merge both; left to protobuf.
  if (CountMembers(*object) != CountMembers(json)) return false;
  return FillMessage(*object, message);
}

absl::Status ParseProtoJson(absl::string_view json, Message* message) {
  if (ParseProtoJsonDirect(json, message)) return absl::OkStatus();
  message->Clear();
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;
  const auto status = google::protobuf::util::JsonStringToMessage(
      google::protobuf::StringPiece(json.data(), json.size()), message,
      options);
  if (status.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(status.code()),
                      std::string(status.message()));
}

}  // namespace jobwire
