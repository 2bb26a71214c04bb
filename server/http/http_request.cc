#include "server/http/http_request.h"

#include <boost/url/parse.hpp>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "server/transport/token_file.h"

namespace jobwire {
namespace {

absl::string_view ToView(boost::beast::string_view v) {
  return absl::string_view(v.data(), v.size());
}

}  // namespace

absl::StatusOr<RequestTarget> ParseRequestTarget(absl::string_view target) {
  const auto parsed = boost::urls::parse_origin_form(
      boost::core::string_view(target.data(), target.size()));
  if (!parsed) return absl::InvalidArgumentError("malformed request target");
  RequestTarget out;
  out.path = std::string(parsed->path());
  for (auto segment : parsed->segments()) out.segments.push_back(segment);
  for (auto param : parsed->params()) {
    if (param.key == "ticket") {
      out.ticket = param.value;
    } else {
      out.query.emplace_back(param.key, param.value);
    }
  }
  return out;
}

HttpAuth::Request CredentialsOf(const HttpRequest& request,
                                const RequestTarget& target) {
  namespace http = boost::beast::http;
  HttpAuth::Request credentials;
  credentials.method = ToView(request.method_string());
  credentials.authorization = ToView(request[http::field::authorization]);
  credentials.cookie = ToView(request[http::field::cookie]);
  credentials.csrf = ToView(request["X-Jobwire-Csrf"]);
  credentials.ticket = target.ticket;
  return credentials;
}

absl::StatusOr<RouteTable::Match> RouteCall(const RouteTable& routes,
                                            const HttpAuth::Caller& caller,
                                            absl::string_view method,
                                            const RequestTarget& target,
                                            std::vector<std::string>* allowed) {
  absl::StatusOr<RouteTable::Match> match =
      routes.Find(method, target.segments, allowed);
  if (!match.ok()) {
    if (!allowed->empty()) return match.status();
    return absl::NotFoundError(
        absl::StrCat("no route for ", method, " ", target.path));
  }
  // The route's gRPC method decides the scope, as over gRPC.
  const Route& route = *match->route;
  absl::Status scope = HttpAuth::CheckScope(
      caller,
      ScopeOf(absl::StrCat("/", route.method->service()->full_name(), "/",
                           route.method->name())),
      absl::StrCat(method, " ", target.path));
  if (!scope.ok()) return scope;
  return match;
}

bool IsEventStream(const Route& route) {
  return route.server_streaming() && !route.client_streaming();
}

absl::Status BuildCallRequest(const RouteTable::Match& match,
                              const QueryParams& query,
                              const HttpRequest& request,
                              google::protobuf::Message* message) {
  const Route& route = *match.route;
  absl::Status built = BuildRequest(route, match.bindings, query,
                                    ToView(request.body()), message);
  if (!built.ok() || !IsEventStream(route)) return built;
  // EventSource's reconnect names the last event it saw; it wins over the
  // cursor in the URL, which is the one of the first connection.
  const absl::string_view last_id =
      absl::StripAsciiWhitespace(ToView(request["Last-Event-ID"]));
  if (last_id.empty()) return absl::OkStatus();
  const char* field =
      message->GetDescriptor()->FindFieldByName("after_seq") != nullptr
          ? "after_seq"
          : "after_event_id";
  return SetFieldFromText(message, field, last_id, "Last-Event-ID");
}

}  // namespace jobwire
