// UnaryMethods: the unary methods of jobwire's gRPC services as plain
// functions, found by gRPC method path, for the faces that are not gRPC (the
// HTTP face's JSON routes).
//
// A unary method is written once, as a member function
//   void ServeFoo(const FooRequest& request, FooResponse* response,
//                 UnaryDone done);
// that validates the request, does the work and calls `done` exactly once
// with the outcome. The gRPC handler (FooServiceImpl::Foo) calls it with a
// `done` that finishes its reactor (FinishReactor); the HTTP face calls it
// through this table with a `done` that writes the HTTP reply. So both faces
// run the same validation and the same code, and a JSON request costs no
// serialisation, channel or interceptor of an in-process gRPC call.
//
// The rules of such a function are those of a callback-API handler: it never
// blocks its caller (store reads run on the Executor, store writes answer in
// the store's completion callback); `request` and `response` stay valid, and
// untouched by the caller, until `done` has been called; `done` may run on any
// thread, before the function returns or after, and must not block.
//
// Thread-safety: fill the table before sharing it; Find is then thread-safe.
// The table does not own the services, which must outlive every call.
#ifndef JOBWIRE_SERVER_API_UNARY_METHODS_H_
#define JOBWIRE_SERVER_API_UNARY_METHODS_H_

#include <google/protobuf/descriptor.h>
#include <google/protobuf/message.h>
#include <grpcpp/grpcpp.h>

#include <cstddef>
#include <functional>
#include <string>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "server/common/errors.h"
#include "server/transport/grpc_status.h"

namespace jobwire {

// Called once with a unary method's outcome; the response is complete when
// the status is OK.
using UnaryDone = std::function<void(const absl::Status&)>;

// A `done` that finishes `reactor` with the status (through ToGrpcStatus,
// so the details go out as over every other path): the gRPC face of a unary
// method.
inline UnaryDone FinishReactor(grpc::ServerUnaryReactor* reactor) {
  return [reactor](const absl::Status& status) {
    reactor->Finish(ToGrpcStatus(status));
  };
}

// OK when `request` is at most `limit` bytes as protobuf; else
// RequestTooLargeError (RESOURCE_EXHAUSTED, reason REQUEST_TOO_LARGE, naming
// --max-receive-message-bytes). gRPC itself receives up to
// kGrpcReceiveSlack times the limit (app.cc), so that a message somewhat
// over it reaches this check and gets an answer a user can act on instead
// of gRPC's own.
inline absl::Status CheckRequestBytes(const google::protobuf::Message& request,
                                      size_t limit) {
  const size_t bytes = request.ByteSizeLong();
  if (bytes <= limit) return absl::OkStatus();
  return RequestTooLargeError("request message", bytes, limit);
}

// How many times --max-receive-message-bytes gRPC's own receive limit is.
inline constexpr int kGrpcReceiveSlack = 2;

// A server-streaming reactor that finishes at once with `status`: the
// answer to a request refused before its stream starts. Create it with
// `new`; it deletes itself in OnDone.
template <typename Response>
class FinishedWriter final : public grpc::ServerWriteReactor<Response> {
 public:
  explicit FinishedWriter(const absl::Status& status) {
    this->Finish(ToGrpcStatus(status));
  }
  void OnDone() override { delete this; }
};

// The gRPC handler of a unary method: calls `service->*method` with a
// `done` that finishes the call's default reactor; a request over
// `service->max_request_bytes()` is refused first (CheckRequestBytes).
template <typename Service, typename Request, typename Response>
grpc::ServerUnaryReactor* ServeOverGrpc(
    grpc::CallbackServerContext* context, Service* service,
    void (Service::*method)(const Request&, Response*, UnaryDone),
    const Request* request, Response* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::Status size = CheckRequestBytes(*request, service->max_request_bytes());
  if (!size.ok()) {
    reactor->Finish(ToGrpcStatus(size));
    return reactor;
  }
  (service->*method)(*request, response, FinishReactor(reactor));
  return reactor;
}

class UnaryMethods {
 public:
  using Handler =
      std::function<void(const google::protobuf::Message& request,
                         google::protobuf::Message* response, UnaryDone done)>;
  struct Method {
    const google::protobuf::Descriptor* input = nullptr;
    const google::protobuf::Descriptor* output = nullptr;
    Handler handler;
  };

  // Serves `/SERVICE/NAME` (the gRPC method path; SERVICE is the generated
  // service's full name) with `service->*method`. A second Add of the same
  // path replaces the first.
  template <typename Service, typename Request, typename Response>
  void Add(absl::string_view service_name, absl::string_view name,
           Service* service,
           void (Service::*method)(const Request&, Response*, UnaryDone)) {
    Method m;
    m.input = Request::descriptor();
    m.output = Response::descriptor();
    m.handler = [service, method](const google::protobuf::Message& request,
                                  google::protobuf::Message* response,
                                  UnaryDone done) {
      (service->*method)(static_cast<const Request&>(request),
                         static_cast<Response*>(response), std::move(done));
    };
    methods_[absl::StrCat("/", service_name, "/", name)] = std::move(m);
  }

  // The method served at `path` ("/jobwire.v1.JobService/SubmitJob"); null
  // when none is.
  const Method* Find(absl::string_view path) const {
    auto it = methods_.find(path);
    return it == methods_.end() ? nullptr : &it->second;
  }

  size_t size() const { return methods_.size(); }

 private:
  absl::flat_hash_map<std::string, Method> methods_;
};

}  // namespace jobwire

#endif  // JOBWIRE_SERVER_API_UNARY_METHODS_H_
