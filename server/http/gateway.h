// Gateway: runs an HTTP route's request through the gRPC service that owns
// the method, over an in-process channel to the running grpc::Server.
//
// This is how the HTTP face keeps every guarantee of the gRPC API with one
// implementation: the request goes through the same handler, the same
// validation and the same interceptors (call counting for a graceful stop)
// as a gRPC client's.
// What the in-process channel costs is one serialisation each way and no
// socket; BENCHMARKS.md measures the JSON route against gRPC.
//
// Unary methods (and, for routes on streaming methods that take one request,
// SubmitJobs and BulkUpdateJobs) answer once with the response as canonical
// proto JSON, or with the error as google.rpc.Status JSON and its HTTP
// status (HttpErrorOf). The server-streaming watches (WatchJob, WatchJobs)
// do not come here: an SSE stream is a watch of its own on the service's
// watch core, with no gRPC call in between (http_server.h).
//
// Thread-safety: all methods are thread-safe. Callbacks run on gRPC's
// callback threads and must not block. The channel (and so the server)
// must outlive every call; App stops the HTTP face before the server.
#ifndef JOBWIRE_SERVER_HTTP_GATEWAY_H_
#define JOBWIRE_SERVER_HTTP_GATEWAY_H_

#include <google/protobuf/message.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/time/time.h"
#include "server/http/route_table.h"

namespace jobwire {

// What an HTTP response carries.
struct HttpReply {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
};

// The HTTP status of a gRPC code (google.rpc.Code's documented mapping:
// INVALID_ARGUMENT 400, NOT_FOUND 404, ABORTED 409, UNAVAILABLE 503, ...).
int HttpStatusOf(grpc::StatusCode code);

// `status` as an HTTP reply: google.rpc.Status JSON with its details (the
// ones in grpc-status-details-bin, e.g. BadRequest), its HTTP status, and
// Retry-After when it carries a RetryInfo.
HttpReply HttpErrorOf(const grpc::Status& status);

// An error raised by the HTTP face itself, in the same shape.
HttpReply HttpErrorOf(const absl::Status& status);

// The canonical proto JSON of `message` (lowerCamelCase names, defaults
// omitted), as grpcurl and the SDKs print it.
std::string ToJson(const google::protobuf::Message& message);

class Gateway {
 public:
  // `channel`: an in-process channel of the server serving the methods.
  explicit Gateway(std::shared_ptr<grpc::Channel> channel);
  ~Gateway();
  Gateway(const Gateway&) = delete;
  Gateway& operator=(const Gateway&) = delete;

  // Sends `request` to the route's method; `done` gets the reply once, on a
  // gRPC thread. Streaming methods are sent the one request and closed;
  // the reply is their last response.
  void Call(const Route& route,
            std::unique_ptr<google::protobuf::Message> request,
            std::function<void(HttpReply)> done);

  // Calls started and not yet ended.
  int open_calls() const { return open_calls_->load(); }

  // Waits up to `timeout` for every call to end; true when none is open.
  bool WaitIdle(absl::Duration timeout);

 private:
  std::shared_ptr<grpc::Channel> channel_;
  grpc::GenericStub stub_;
  std::shared_ptr<std::atomic<int>> open_calls_;
};

}  // namespace jobwire

#endif  // JOBWIRE_SERVER_HTTP_GATEWAY_H_
