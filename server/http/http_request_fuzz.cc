// libFuzzer target: the HTTP request path up to, not including, the service
// call. Raw bytes go through Boost.Beast's request parser with the limits
// HttpServer sets, then the functions HttpServer's Session::Handle calls
// (http_request.h): the request target parsed by Boost.URL (origin form),
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
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_replace.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/message.h"
#include "google/protobuf/util/message_differencer.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "jobwire/v1/admin_service.pb.h"
#include "jobwire/v1/job_service.pb.h"
#include "server/common/clock.h"
#include "server/http/http_auth.h"
#include "server/http/http_request.h"
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

// Handle's steps after the parse (http_request.h), for one HttpAuth.
void Handle(const HttpRequest& req, const HttpAuth& auth,
            const RouteTable& routes) {
  absl::StatusOr<RequestTarget> target = ParseRequestTarget(View(req.target()));
  if (!target.ok()) {  // 400 "malformed request target"
    FUZZ_CHECK(target.status().code() == absl::StatusCode::kInvalidArgument,
               target.status().ToString());
    return;
  }
  absl::StatusOr<HttpAuth::Caller> caller =
      auth.Authenticate(CredentialsOf(req, *target));
  if (!caller.ok()) {
    FUZZ_CHECK(caller.status().code() == absl::StatusCode::kUnauthenticated,
               caller.status().ToString());
    CheckRefusal(caller.status());
    return;
  }
  const std::string method(req.method_string());
  std::vector<std::string> allowed;
  absl::StatusOr<RouteTable::Match> match =
      RouteCall(routes, *caller, method, *target, &allowed);
  if (!match.ok()) {
    const absl::StatusCode code = match.status().code();
    FUZZ_CHECK(
        code == absl::StatusCode::kNotFound ||
            code == absl::StatusCode::kPermissionDenied ||
            (code == absl::StatusCode::kFailedPrecondition && !allowed.empty()),
        match.status().ToString());
    if (allowed.empty()) CheckRefusal(match.status());
    return;
  }
  std::unique_ptr<google::protobuf::Message> rpc(
      google::protobuf::MessageFactory::generated_factory()
          ->GetPrototype(match->route->method->input_type())
          ->New());
  const absl::Status built =
      BuildCallRequest(*match, target->query, req, rpc.get());
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

// LLVMFuzzerInitialize: tests/fuzz/quiet_protobuf.cc.
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
  const HttpRequest& req = parser.get();
  Handle(req, *w.token_auth, w.routes);
  Handle(req, *w.table_auth, w.routes);
  return 0;
}
