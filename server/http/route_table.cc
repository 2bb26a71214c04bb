#include "server/http/route_table.h"

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "google/api/annotations.pb.h"
#include "server/api/proto_json.h"
#include "server/common/errors.h"
#include "server/common/status_macros.h"
#include "server/common/utf8.h"

namespace jobwire {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;

absl::StatusOr<Route> ParseRoute(const google::protobuf::MethodDescriptor* m,
                                 std::string http_method,
                                 const std::string& pattern,
                                 const std::string& body) {
  Route route;
  route.http_method = std::move(http_method);
  route.pattern = pattern;
  route.body = body;
  route.method = m;
  route.grpc_path =
      absl::StrCat("/", m->service()->full_name(), "/", m->name());
  auto bad = [&](absl::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat(
        m->full_name(), ": google.api.http path \"", pattern, "\": ", why));
  };
  absl::string_view path = pattern;
  if (!absl::ConsumePrefix(&path, "/")) return bad("must start with '/'");
  // The verb follows the last ':' outside a variable.
  const size_t last_slash = path.rfind('/');
  const size_t colon = path.rfind(':');
  const size_t brace = path.rfind('}');
  if (colon != absl::string_view::npos &&
      (last_slash == absl::string_view::npos || colon > last_slash) &&
      (brace == absl::string_view::npos || colon > brace)) {
    route.verb = std::string(path.substr(colon + 1));
    path = path.substr(0, colon);
  }
  for (absl::string_view part : absl::StrSplit(path, '/')) {
    Route::Segment segment;
    if (absl::ConsumePrefix(&part, "{")) {
      if (!absl::ConsumeSuffix(&part, "}") ||
          part.find_first_of("=*{}") != absl::string_view::npos) {
        return bad("only {field} variables of one segment are served");
      }
      segment.variable = true;
    } else if (part.empty() ||
               part.find_first_of("{}*") != absl::string_view::npos) {
      return bad("empty or wildcard segment");
    }
    segment.text = std::string(part);
    route.segments.push_back(std::move(segment));
  }
  if (!body.empty() && body != "*" &&
      m->input_type()->FindFieldByName(body) == nullptr) {
    return bad(absl::StrCat("body field \"", body, "\" is not in ",
                            m->input_type()->full_name()));
  }
  return route;
}

// The field named `name` (snake_case or lowerCamelCase) of `d`.
const FieldDescriptor* FindField(const Descriptor* d, absl::string_view name) {
  const FieldDescriptor* f = d->FindFieldByName(std::string(name));
  for (int i = 0; f == nullptr && i < d->field_count(); ++i) {
    if (d->field(i)->json_name() == name) f = d->field(i);
  }
  return f;
}

absl::Status BadValue(absl::string_view name, absl::string_view why) {
  return InvalidArgumentError(name, why);
}

// `s` as a JSON string literal.
std::string JsonQuote(absl::string_view s) {
  google::protobuf::Value value;
  value.set_string_value(std::string(s));
  std::string out;
  (void)google::protobuf::util::MessageToJsonString(value, &out);
  return out;
}

}  // namespace

absl::StatusOr<RouteTable> RouteTable::FromServices(
    const std::vector<const google::protobuf::ServiceDescriptor*>& services) {
  RouteTable table;
  for (const auto* service : services) {
    for (int i = 0; i < service->method_count(); ++i) {
      const auto* m = service->method(i);
      if (!m->options().HasExtension(google::api::http)) continue;
      const google::api::HttpRule& rule =
          m->options().GetExtension(google::api::http);
      std::string method;
      std::string pattern;
      switch (rule.pattern_case()) {
        case google::api::HttpRule::kGet:
          method = "GET", pattern = rule.get();
          break;
        case google::api::HttpRule::kPost:
          method = "POST", pattern = rule.post();
          break;
        case google::api::HttpRule::kPatch:
          method = "PATCH", pattern = rule.patch();
          break;
        case google::api::HttpRule::kPut:
          method = "PUT", pattern = rule.put();
          break;
        case google::api::HttpRule::kDelete:
          method = "DELETE", pattern = rule.delete_();
          break;
        default:
          return absl::InvalidArgumentError(
              absl::StrCat(m->full_name(), ": unsupported google.api.http"));
      }
      absl::StatusOr<Route> route = ParseRoute(m, method, pattern, rule.body());
      if (!route.ok()) return route.status();
      table.routes_.push_back(*std::move(route));
    }
  }
  return table;
}

absl::StatusOr<RouteTable::Match> RouteTable::Find(
    absl::string_view method, const std::vector<std::string>& segments,
    std::vector<std::string>* allowed) const {
  allowed->clear();
  if (segments.empty()) return absl::NotFoundError("no such route");
  for (const Route& route : routes_) {
    if (route.segments.size() != segments.size()) continue;
    // The last segment carries the verb, if the route has one.
    absl::string_view last = segments.back();
    if (!route.verb.empty()) {
      if (!absl::ConsumeSuffix(&last, absl::StrCat(":", route.verb))) continue;
    } else if (last.find(':') != absl::string_view::npos &&
               !route.segments.back().variable) {
      continue;
    }
    Match match;
    match.route = &route;
    bool ok = true;
    for (size_t i = 0; i < segments.size() && ok; ++i) {
      absl::string_view got =
          i + 1 == segments.size() ? last : absl::string_view(segments[i]);
      const Route::Segment& want = route.segments[i];
      if (want.variable) {
        // A custom verb on a route without one is not a value.
        if (got.empty() ||
            (route.verb.empty() && got.find(':') != absl::string_view::npos)) {
          ok = false;
        } else {
          match.bindings.emplace_back(want.text, std::string(got));
        }
      } else {
        ok = got == want.text;
      }
    }
    if (!ok) continue;
    if (route.http_method == method) return match;
    allowed->push_back(route.http_method);
  }
  if (!allowed->empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("method ", method,
                     " not allowed; allowed: ", absl::StrJoin(*allowed, ", ")));
  }
  return absl::NotFoundError("no such route");
}

absl::Status SetFieldFromText(Message* message, absl::string_view path,
                              absl::string_view value, absl::string_view name) {
  std::vector<absl::string_view> parts = absl::StrSplit(path, '.');
  for (size_t i = 0; i + 1 < parts.size(); ++i) {
    const FieldDescriptor* f = FindField(message->GetDescriptor(), parts[i]);
    if (f == nullptr || f->is_repeated() ||
        f->cpp_type() != FieldDescriptor::CPPTYPE_MESSAGE) {
      return BadValue(name, "unknown parameter");
    }
    message = message->GetReflection()->MutableMessage(message, f);
  }
  const FieldDescriptor* f = FindField(message->GetDescriptor(), parts.back());
  if (f == nullptr || f->is_map()) return BadValue(name, "unknown parameter");
  const Reflection* r = message->GetReflection();
  const bool repeated = f->is_repeated();
  switch (f->cpp_type()) {
    case FieldDescriptor::CPPTYPE_STRING: {
      if (f->type() == FieldDescriptor::TYPE_BYTES) {
        return BadValue(name, "bytes cannot be set from a parameter");
      }
      // A proto string must be valid UTF-8: the service could not parse the
      // request (an INTERNAL error) if it were not.
      if (!IsValidUtf8(value)) return BadValue(name, "is not valid UTF-8");
      repeated ? r->AddString(message, f, std::string(value))
               : r->SetString(message, f, std::string(value));
      return absl::OkStatus();
    }
#define JW_SET_NUMBER(CPPTYPE, T, Add, Set, Parse)                      \
  case FieldDescriptor::CPPTYPE: {                                      \
    T v{};                                                              \
    if (!Parse(value, &v)) return BadValue(name, "not a valid number"); \
    repeated ? r->Add(message, f, v) : r->Set(message, f, v);           \
    return absl::OkStatus();                                            \
  }
      JW_SET_NUMBER(CPPTYPE_INT32, int32_t, AddInt32, SetInt32,
                    absl::SimpleAtoi)
      JW_SET_NUMBER(CPPTYPE_INT64, int64_t, AddInt64, SetInt64,
                    absl::SimpleAtoi)
      JW_SET_NUMBER(CPPTYPE_UINT32, uint32_t, AddUInt32, SetUInt32,
                    absl::SimpleAtoi)
      JW_SET_NUMBER(CPPTYPE_UINT64, uint64_t, AddUInt64, SetUInt64,
                    absl::SimpleAtoi)
      JW_SET_NUMBER(CPPTYPE_DOUBLE, double, AddDouble, SetDouble,
                    absl::SimpleAtod)
      JW_SET_NUMBER(CPPTYPE_FLOAT, float, AddFloat, SetFloat, absl::SimpleAtof)
#undef JW_SET_NUMBER
    case FieldDescriptor::CPPTYPE_BOOL: {
      bool v = false;
      if (value == "true" || value == "1") {
        v = true;
      } else if (value != "false" && value != "0") {
        return BadValue(name, "want true or false");
      }
      repeated ? r->AddBool(message, f, v) : r->SetBool(message, f, v);
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_ENUM: {
      const auto* e = f->enum_type()->FindValueByName(std::string(value));
      int number = 0;
      if (e == nullptr && absl::SimpleAtoi(value, &number)) {
        e = f->enum_type()->FindValueByNumber(number);
      }
      if (e == nullptr) {
        return BadValue(
            name, absl::StrCat("not a value of ", f->enum_type()->full_name()));
      }
      repeated ? r->AddEnum(message, f, e) : r->SetEnum(message, f, e);
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_MESSAGE: {
      // Well-known types with a JSON string form (FieldMask, Timestamp,
      // Duration, wrappers): parse that form.
      if (f->message_type()->file()->name().rfind("google/protobuf/", 0) != 0) {
        return BadValue(name, "a message cannot be set from a parameter");
      }
      Message* sub =
          repeated ? r->AddMessage(message, f) : r->MutableMessage(message, f);
      const auto status =
          google::protobuf::util::JsonStringToMessage(JsonQuote(value), sub);
      if (!status.ok()) {
        return BadValue(
            name, absl::StrCat("not a valid ", f->message_type()->name(), ": ",
                               std::string(status.message())));
      }
      return absl::OkStatus();
    }
  }
  return BadValue(name, "unknown parameter");
}

absl::Status BuildRequest(const Route& route, const PathBindings& bindings,
                          const QueryParams& query, absl::string_view body,
                          Message* request) {
  if (!route.body.empty()) {
    Message* target = request;
    if (route.body != "*") {
      const FieldDescriptor* f =
          request->GetDescriptor()->FindFieldByName(route.body);
      target = request->GetReflection()->MutableMessage(request, f);
    }
    if (absl::StripAsciiWhitespace(body).empty()) body = "{}";
    const absl::Status status = ParseProtoJson(body, target);
    if (!status.ok()) {
      return InvalidArgumentError(
          "body",
          absl::StrCat("not JSON of ", target->GetDescriptor()->full_name(),
                       ": ", std::string(status.message())));
    }
  } else if (!absl::StripAsciiWhitespace(body).empty()) {
    return InvalidArgumentError("body", "this route takes no body");
  }
  for (const auto& [key, value] : query) {
    JW_RETURN_IF_ERROR(SetFieldFromText(request, key, value, key));
  }
  for (const auto& [path, value] : bindings) {
    // Set last, so the path wins over the body and the query.
    JW_RETURN_IF_ERROR(SetFieldFromText(request, path, value, path));
  }
  return absl::OkStatus();
}

}  // namespace jobwire
