// libFuzzer target: the HTTP request path up to, not including, the service
// call. Raw bytes go through Boost.Beast's request parser with the limits
// HttpServer sets, then the steps of HttpServer's Session::Handle
// (http_server.cc): the request target parsed by Boost.URL (origin form),
// the credentials checked by HttpAuth (bearer token, session cookie with its
// CSRF header, stream ticket), the route found in the RouteTable of the
// JobService and AdminService annotations, its scope checked, and the
// request message built from the path bindings, the query and the JSON body
// (BuildRequest), plus Last-Event-ID on the event-stream routes.
//
// Two HttpAuth are tried on each request: one with --auth-token and one
// with an --auth-token-file table. In the input, the text @SESSION@ and
// @TICKET@ is replaced by a valid session / stream ticket of the first
// (@TSESSION@, @TTICKET@: of the table's token "ci"), so the fuzzer starts
// from accepted credentials and mutates around them.
//
// Oracle: no crash or sanitizer report; every refusal has the code the
// HTTP face maps to its status (UNAUTHENTICATED, PERMISSION_DENIED,
// NOT_FOUND, FAILED_PRECONDITION for 405, INVALID_ARGUMENT with one
// violation) and, converted as the HTTP face sends it, is valid UTF-8 with
// details that parse; a request that BuildRequest
// accepts is one the service can receive: it serializes, and the bytes parse
// back (gRPC's own check: proto3 strings must be valid UTF-8) to an equal
// message.
#include <unistd.h>

#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/url/parse.hpp>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/message.h"
#include "google/protobuf/stubs/logging.h"
#include "google/protobuf/util/message_differencer.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "jobwire/v1/admin_service.pb.h"
#include "jobwire/v1/job_service.pb.h"
#include "server/common/clock.h"
#include "server/http/http_auth.h"
#include "server/http/route_table.h"
#include "server/transport/grpc_status.h"
#include "server/transport/token_file.h"
#include "tests/fuzz/fuzz_util.h"

namespace jobwire {
namespace {

namespace http = boost::beast::http;

struct World {
  FakeClock clock{absl::FromUnixSeconds(1'800'000'000)};
  RouteTable routes;
  std::unique_ptr<HttpAuth> token_auth;
  std::unique_ptr<HttpAuth> table_auth;
  std::string session, ticket, table_session, table_ticket;
};

World& TheWorld() {
  static World* world = [] {
    auto* w = new World;
    (void)v1::SubmitJobRequest::descriptor();
    (void)v1::GetServerInfoRequest::descriptor();
    const auto* pool = google::protobuf::DescriptorPool::generated_pool();
    absl::StatusOr<RouteTable> routes = RouteTable::FromServices(
        {pool->FindServiceByName("jobwire.v1.JobService"),
         pool->FindServiceByName("jobwire.v1.AdminService")});
    FUZZ_CHECK(routes.ok(), routes.status().ToString());
    w->routes = *std::move(routes);

    w->token_auth = std::make_unique<HttpAuth>(
        HttpAuth::Options{"s3cret-token"}, &w->clock);
    absl::Time expires;
    w->session = w->token_auth->NewSession(&expires);
    w->ticket = w->token_auth->NewTicket(&expires);

    char path[] = "/tmp/jobwire-http-fuzz-tokens-XXXXXX";
    const int fd = mkstemp(path);
    FUZZ_CHECK(fd >= 0, "mkstemp");
    const std::string text =
        "ci s3cret-ci submit,read\nworker w0rker-token work\n";
    FUZZ_CHECK(write(fd, text.data(), text.size()) ==
                   static_cast<ssize_t>(text.size()),
               "write");
    close(fd);
    absl::StatusOr<std::shared_ptr<TokenTable>> table = TokenTable::Load(path);
    FUZZ_CHECK(table.ok(), table.status().ToString());
    unlink(path);  // loaded; Find re-reads only a changed file
    HttpAuth::Options options;
    options.table = *table;
    w->table_auth = std::make_unique<HttpAuth>(options, &w->clock);
    std::optional<HttpAuth::Caller> ci =
        w->table_auth->CallerOfToken("s3cret-ci");
    FUZZ_CHECK(ci.has_value(), "no caller ci");
    w->table_session = w->table_auth->NewSession(*ci, &expires);
    w->table_ticket = w->table_auth->NewTicket(*ci, &expires);
    return w;
  }();
  return *world;
}

absl::string_view View(boost::beast::string_view v) {
  return absl::string_view(v.data(), v.size());
}

// A refusal is sent as HttpErrorOf sends it (ToGrpcStatus, then
// google.rpc.Status JSON): it must reach the client whole, whatever bytes
// the request held.
void CheckRefusal(const absl::Status& s) {
  if (s.code() == absl::StatusCode::kInvalidArgument) {
    const std::vector<FieldViolation> v = GetFieldViolations(s);
    FUZZ_CHECK(v.size() == 1, s.ToString());
  }
  const grpc::Status sent = ToGrpcStatus(s);
  FUZZ_CHECK(fuzz::IsValidUtf8(sent.error_message()), sent.error_message());
  if (sent.error_details().empty()) return;
  google::rpc::Status rich;
  FUZZ_CHECK(rich.ParseFromString(sent.error_details()),
             "details do not parse: " + sent.error_message());
  for (const google::protobuf::Any& any : rich.details()) {
    google::rpc::BadRequest bad;
    if (any.Is<google::rpc::BadRequest>()) {
      FUZZ_CHECK(any.UnpackTo(&bad),
                 "BadRequest does not parse: " + sent.error_message());
    }
  }
}

// Handle's steps after the parse, for one HttpAuth.
void Handle(const http::request<http::string_body>& req, const HttpAuth& auth,
            const RouteTable& routes) {
  const auto target = boost::urls::parse_origin_form(req.target());
  if (!target) return;  // 400 "malformed request target"
  std::vector<std::string> segments;
  for (auto segment : target->segments()) segments.push_back(segment);
  const std::string path(target->path());
  QueryParams query;
  std::string ticket;
  for (auto param : target->params()) {
    if (param.key == "ticket") {
      ticket = param.value;
    } else {
      query.emplace_back(param.key, param.value);
    }
  }
  const std::string method(req.method_string());
  HttpAuth::Request credentials;
  credentials.method = method;
  credentials.authorization = View(req[http::field::authorization]);
  credentials.cookie = View(req[http::field::cookie]);
  credentials.csrf = View(req["X-Jobwire-Csrf"]);
  credentials.ticket = ticket;
  absl::StatusOr<HttpAuth::Caller> caller = auth.Authenticate(credentials);
  if (!caller.ok()) {
    FUZZ_CHECK(caller.status().code() == absl::StatusCode::kUnauthenticated,
               caller.status().ToString());
    CheckRefusal(caller.status());
    return;
  }
  std::vector<std::string> allowed;
  absl::StatusOr<RouteTable::Match> match =
      routes.Find(method, segments, &allowed);
  if (!match.ok()) {
    FUZZ_CHECK(
        match.status().code() == absl::StatusCode::kNotFound ||
            (match.status().code() == absl::StatusCode::kFailedPrecondition &&
             !allowed.empty()),
        match.status().ToString());
    return;
  }
  const Route& route = *match->route;
  const absl::Status scope = HttpAuth::CheckScope(
      *caller,
      ScopeOf(absl::StrCat("/", route.method->service()->full_name(), "/",
                           route.method->name())),
      absl::StrCat(method, " ", path));
  if (!scope.ok()) {
    FUZZ_CHECK(scope.code() == absl::StatusCode::kPermissionDenied,
               scope.ToString());
    CheckRefusal(scope);
    return;
  }
  std::unique_ptr<google::protobuf::Message> rpc(
      google::protobuf::MessageFactory::generated_factory()
          ->GetPrototype(route.method->input_type())
          ->New());
  absl::Status built =
      BuildRequest(route, match->bindings, query, View(req.body()), rpc.get());
  if (built.ok() && route.server_streaming() && !route.client_streaming()) {
    const absl::string_view last_id =
        absl::StripAsciiWhitespace(View(req["Last-Event-ID"]));
    if (!last_id.empty()) {
      const char* field =
          rpc->GetDescriptor()->FindFieldByName("after_seq") != nullptr
              ? "after_seq"
              : "after_event_id";
      built = SetFieldFromText(rpc.get(), field, last_id, "Last-Event-ID");
    }
  }
  if (!built.ok()) {
    FUZZ_CHECK(built.code() == absl::StatusCode::kInvalidArgument,
               built.ToString());
    CheckRefusal(built);
    return;
  }
  // What the gateway sends, the service must be able to read.
  std::string wire;
  FUZZ_CHECK(rpc->SerializeToString(&wire), "request does not serialize");
  std::unique_ptr<google::protobuf::Message> back(rpc->New());
  FUZZ_CHECK(back->ParseFromString(wire),
             "the service cannot parse the request built from " +
                 std::string(req.target()) + ": " + rpc->ShortDebugString());
  FUZZ_CHECK(google::protobuf::util::MessageDifferencer::Equals(*rpc, *back),
             rpc->ShortDebugString());
}

}  // namespace
}  // namespace jobwire

// protobuf logs each string field with invalid UTF-8 it refuses to parse;
// at thousands of inputs a second that is most of the run.
extern "C" int LLVMFuzzerInitialize(int* /*argc*/, char*** /*argv*/) {
  google::protobuf::SetLogHandler(
      [](google::protobuf::LogLevel, const char*, int, const std::string&) {});
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace jobwire;
  World& w = TheWorld();
  const std::string raw = absl::StrReplaceAll(
      absl::string_view(reinterpret_cast<const char*>(data), size),
      {{"@SESSION@", w.session},
       {"@TICKET@", w.ticket},
       {"@TSESSION@", w.table_session},
       {"@TTICKET@", w.table_ticket}});
  // HttpServer's limits, smaller: the fuzzer's inputs are small anyway.
  http::request_parser<http::string_body> parser;
  parser.header_limit(16 * 1024);
  parser.body_limit(64 * 1024);
  parser.eager(true);
  boost::beast::error_code ec;
  boost::asio::const_buffer rest(raw.data(), raw.size());
  while (rest.size() > 0 && !parser.is_done()) {
    const size_t used = parser.put(rest, ec);
    if (ec == http::error::need_more) ec = {};
    if (ec || used == 0) break;
    rest += used;
  }
  if (!ec && !parser.is_done()) parser.put_eof(ec);
  if (ec || !parser.is_done()) return 0;  // 400, 413 or 408
  const http::request<http::string_body>& req = parser.get();
  Handle(req, *w.token_auth, w.routes);
  Handle(req, *w.table_auth, w.routes);
  return 0;
}
