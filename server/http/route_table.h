// RouteTable: the HTTP routes of the gRPC API, read from the
// `google.api.http` annotations on its methods (AIP-127), and the request
// message each HTTP request becomes.
//
// The routes are not written twice: RouteTable::FromServices walks the
// compiled service descriptors, so a route added to a .proto file is served
// by the next build. A path template is literal segments and `{field.path}`
// variables binding one segment each, with an optional custom verb after the
// last segment (`/v1/jobs/{id}:cancel`). `body` is `*` (the body is the
// whole request, less the path variables), a field name (the body is that
// field), or empty (no body; query parameters set the fields).
//
// BuildRequest fills a request from the bound path variables, the query
// parameters and the JSON body. Everything it refuses is INVALID_ARGUMENT
// with a google.rpc.BadRequest field violation naming the parameter or
// "body", the same currency the gRPC handlers use; it checks only what JSON
// and field types demand, and leaves every rule of the API to the service
// the request is then sent to, so nothing is validated twice.
//
// Thread-safety: a built RouteTable is immutable and safe to share; the free
// functions are pure.
#ifndef JOBWIRE_SERVER_HTTP_ROUTE_TABLE_H_
#define JOBWIRE_SERVER_HTTP_ROUTE_TABLE_H_

#include <google/protobuf/descriptor.h>
#include <google/protobuf/message.h>

#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace jobwire {

struct Route {
  struct Segment {
    bool variable = false;
    std::string text;  // the literal, or the bound field path ("job.id")
  };
  std::string http_method;  // "GET", "POST", "PATCH", "PUT", "DELETE"
  std::string pattern;      // as written, e.g. "/v1/jobs/{id}:cancel"
  std::vector<Segment> segments;
  std::string verb;  // "cancel", or empty
  std::string body;  // "*", a field name, or empty
  const google::protobuf::MethodDescriptor* method = nullptr;
  // "/jobwire.v1.JobService/CancelJob", the gRPC method path.
  std::string grpc_path;

  bool server_streaming() const { return method->server_streaming(); }
  bool client_streaming() const { return method->client_streaming(); }
};

// Decoded name=value pairs of a query string, in order.
using QueryParams = std::vector<std::pair<std::string, std::string>>;
// Bound path variables: field path -> decoded segment.
using PathBindings = std::vector<std::pair<std::string, std::string>>;

class RouteTable {
 public:
  struct Match {
    const Route* route = nullptr;
    PathBindings bindings;
  };

  // Reads the routes of every method of `services` that carries a
  // google.api.http option. Fails with INVALID_ARGUMENT for a template this
  // table cannot serve (a multi-segment variable, an unknown field).
  static absl::StatusOr<RouteTable> FromServices(
      const std::vector<const google::protobuf::ServiceDescriptor*>& services);

  // The route for `method` on the decoded path `segments` (the path split at
  // '/', without the empty first one). NOT_FOUND when no route has that
  // path; otherwise, when none has that method too, FAILED_PRECONDITION
  // with `*allowed` set to the methods that do (HTTP 405).
  absl::StatusOr<Match> Find(absl::string_view method,
                             const std::vector<std::string>& segments,
                             std::vector<std::string>* allowed) const;

  const std::vector<Route>& routes() const { return routes_; }

 private:
  std::vector<Route> routes_;
};

// Fills `request` (of the route's input type): the JSON body per
// Route::body (an empty body is `{}`), then each query parameter (a field
// path in snake_case or lowerCamelCase; repeatable for repeated fields;
// FieldMask, Timestamp and Duration in their JSON string forms), then the
// path bindings, which win. INVALID_ARGUMENT (BadRequest) on a body that is
// not JSON of the request type, an unknown parameter, or a value of the
// wrong type.
absl::Status BuildRequest(const Route& route, const PathBindings& bindings,
                          const QueryParams& query, absl::string_view body,
                          google::protobuf::Message* request);

// Sets the field at `path` ("after_seq", "job.id", "updateMask") of
// `message` from its text form; appends to a repeated field. `name` is the
// field's name in errors.
absl::Status SetFieldFromText(google::protobuf::Message* message,
                              absl::string_view path, absl::string_view value,
                              absl::string_view name);

}  // namespace jobwire

#endif  // JOBWIRE_SERVER_HTTP_ROUTE_TABLE_H_
