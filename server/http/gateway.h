// How an HTTP route reaches the service that owns its gRPC method.
//
// Unary methods (every unary route of JobService and AdminService) are
// called in process, as plain functions: LocalCall runs the method that
// UnaryMethods (server/api/unary_methods.h) holds for the route, the same
// function the gRPC handler calls, so the same validation and code answer,
// with no serialisation, channel or interceptor in between. The HTTP face
// keeps what the gRPC path gave such a call: its caller counts it as an open
// call for a graceful stop, bounds it with a deadline and writes the access
// log line (http_server.cc).
//
// Gateway: the routes on streaming methods that take one request
// (SubmitJobs, BulkUpdateJobs) go over an in-process channel to the running
// grpc::Server, through the same handler and interceptors as a gRPC
// client's; the reply is their last response. The server-streaming watches
// (WatchJob, WatchJobs) come to neither: an SSE stream is a watch of its own
// on the service's watch core (http_server.h).
//
// Either way the reply is the response as canonical proto JSON, or the error
// as google.rpc.Status JSON and its HTTP status (HttpErrorOf).
//
// Thread-safety: the free functions and Gateway's methods are thread-safe;
// a LocalCall is filled and started by one thread. Callbacks run
// on the thread that answered the call (a gRPC callback thread, the
// executor, the store's writer) and must not block. The channel (and so the
// server) must outlive every Gateway call; App stops the HTTP face before
// the server.
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

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "server/api/inline_arena.h"
#include "server/api/unary_methods.h"
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

// One call of a unary method in process: owns the request and the response
// on one arena (one allocation for a typical SubmitJob) until the method has
// answered and returned.
class LocalCall {
 public:
  explicit LocalCall(const UnaryMethods::Method& method);
  ~LocalCall() = default;
  LocalCall(const LocalCall&) = delete;
  LocalCall& operator=(const LocalCall&) = delete;

  // The request, of the method's input type, to fill before Start.
  google::protobuf::Message* request() { return request_; }

  // Calls the method; `done` gets the reply once, on the thread the method
  // answered on (maybe this one, before Start returns). The call is freed
  // once the method has answered and returned.
  static void Start(std::unique_ptr<LocalCall> call,
                    std::function<void(HttpReply)> done);

 private:
  void Unref();

  // Bytes of the arena's inline block: a typical SubmitJob's request and
  // response (the job, args as a Struct, labels) fit.
  static constexpr size_t kArenaBytes = 4096;

  InlineArena<kArenaBytes> arena_;
  const UnaryMethods::Method* const method_;
  google::protobuf::Message* const request_;
  google::protobuf::Message* const response_;
  std::function<void(HttpReply)> done_;
  // The method's answer and its return each drop one.
  std::atomic<int> refs_{2};
};

class Gateway {
 public:
  // `channel`: an in-process channel of the server serving the methods.
  explicit Gateway(std::shared_ptr<grpc::Channel> channel);
  ~Gateway();
  Gateway(const Gateway&) = delete;
  Gateway& operator=(const Gateway&) = delete;

  // Sends `request` to the route's method (a streaming one: it is sent the
  // one request and closed); `done` gets the reply once, on a gRPC thread.
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
