// The steps of the HTTP request path that need no connection: the request
// target decoded, the credentials a request carries, the route of an
// authenticated call with its scope checked, and the request message built
// for it. HttpServer's sessions (http_server.cc) run them in this order
// between the ones that need the connection (the health check, the
// dashboard's files, /v1/auth, /metrics, the reply); the fuzz target
// (http_request_fuzz.cc) runs the same functions on every input.
//
// Every refusal is an absl::Status in the codes the HTTP face maps to its
// replies (HttpErrorOf): INVALID_ARGUMENT (400, with a BadRequest field
// violation where a field is at fault), NOT_FOUND (404),
// FAILED_PRECONDITION with the allowed methods (405), PERMISSION_DENIED
// (403). Authentication itself is HttpAuth::Authenticate's (401).
//
// Thread-safety: pure functions.
#ifndef JOBWIRE_SERVER_HTTP_HTTP_REQUEST_H_
#define JOBWIRE_SERVER_HTTP_HTTP_REQUEST_H_

#include <google/protobuf/message.h>

#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/http/http_auth.h"
#include "server/http/route_table.h"

namespace jobwire {

using HttpRequest =
    boost::beast::http::request<boost::beast::http::string_body>;

// A request target in origin form (`/v1/jobs/a%2Fb?state=RUNNING`), decoded.
struct RequestTarget {
  std::string path;                   // "/v1/jobs/a/b", decoded
  std::vector<std::string> segments;  // {"v1", "jobs", "a/b"}
  QueryParams query;                  // every parameter but `ticket`
  std::string ticket;                 // the `ticket` parameter, or empty
};

// Decodes `target`. INVALID_ARGUMENT "malformed request target" when it is
// not in origin form.
absl::StatusOr<RequestTarget> ParseRequestTarget(absl::string_view target);

// The credentials `request` carries (Authorization, Cookie, X-Jobwire-Csrf,
// the target's ticket), for HttpAuth::Authenticate. Views into `request` and
// `target`, which must outlive the result.
HttpAuth::Request CredentialsOf(const HttpRequest& request,
                                const RequestTarget& target);

// The route of `method` on `target` for `caller`: RouteTable::Find, then
// HttpAuth::CheckScope with the scope of the route's gRPC method. NOT_FOUND
// "no route for METHOD PATH"; FAILED_PRECONDITION with `*allowed` set when
// the path has routes for other methods only (405); PERMISSION_DENIED when
// the caller lacks the scope.
absl::StatusOr<RouteTable::Match> RouteCall(const RouteTable& routes,
                                            const HttpAuth::Caller& caller,
                                            absl::string_view method,
                                            const RequestTarget& target,
                                            std::vector<std::string>* allowed);

// Whether `route` is sent as Server-Sent Events (a server stream).
bool IsEventStream(const Route& route);

// Fills `message` (of the route's input type) for a call of `match` with
// `query` and `request`'s body (BuildRequest); on an event stream a
// Last-Event-ID header (EventSource's reconnect) then sets the cursor,
// `after_seq` or `after_event_id`, over the one in the query.
// INVALID_ARGUMENT (BadRequest) as BuildRequest, or naming Last-Event-ID.
absl::Status BuildCallRequest(const RouteTable::Match& match,
                              const QueryParams& query,
                              const HttpRequest& request,
                              google::protobuf::Message* message);

}  // namespace jobwire

#endif  // JOBWIRE_SERVER_HTTP_HTTP_REQUEST_H_
