#include "server/http/gateway.h"

#include <google/protobuf/util/json_util.h>

#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "server/api/proto_json.h"
#include "server/transport/grpc_status.h"

namespace jobwire {
namespace {

using google::protobuf::Message;

// Unary calls through the gateway get this long; longer ones end with
// DEADLINE_EXCEEDED (504).
constexpr absl::Duration kUnaryDeadline = absl::Seconds(60);

std::unique_ptr<Message> NewMessage(const google::protobuf::Descriptor* d) {
  return std::unique_ptr<Message>(
      google::protobuf::MessageFactory::generated_factory()
          ->GetPrototype(d)
          ->New());
}

grpc::ByteBuffer Serialize(const Message& m) {
  grpc::Slice slice(m.SerializeAsString());
  return grpc::ByteBuffer(&slice, 1);
}

bool Parse(const grpc::ByteBuffer& buffer, Message* m) {
  grpc::Slice slice;
  if (!buffer.TrySingleSlice(&slice).ok() &&
      !buffer.DumpToSingleSlice(&slice).ok()) {
    return false;
  }
  return m->ParseFromArray(slice.begin(), static_cast<int>(slice.size()));
}

HttpReply ReplyOf(const grpc::Status& status,
                  const google::protobuf::Descriptor* type,
                  const grpc::ByteBuffer* response) {
  if (!status.ok()) return HttpErrorOf(status);
  std::unique_ptr<Message> m = NewMessage(type);
  if (response == nullptr || !Parse(*response, m.get())) {
    return HttpErrorOf(
        grpc::Status(grpc::StatusCode::INTERNAL, "unreadable response"));
  }
  HttpReply reply;
  reply.body = ToJson(*m);
  return reply;
}

// A unary call: owns its context and buffers until the callback.
struct UnaryCall {
  grpc::ClientContext context;
  grpc::ByteBuffer request;
  grpc::ByteBuffer response;
  const google::protobuf::Descriptor* output = nullptr;
  std::function<void(HttpReply)> done;
  std::shared_ptr<std::atomic<int>> open;
};

// A streaming method called with one request: sends it, half-closes, and
// keeps the last response. Deletes itself in OnDone.
class CollectCall final
    : public grpc::ClientBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer> {
 public:
  CollectCall(const Route& route, const Message& request,
              std::function<void(HttpReply)> done,
              std::shared_ptr<std::atomic<int>> open)
      : request_(Serialize(request)),
        output_(route.method->output_type()),
        done_(std::move(done)),
        open_(std::move(open)) {
    context_.set_deadline(absl::ToChronoTime(absl::Now() + kUnaryDeadline));
  }

  void Start(grpc::GenericStub* stub, const std::string& method) {
    stub->PrepareBidiStreamingCall(&context_, method, grpc::StubOptions(),
                                   this);
    StartWriteLast(&request_, grpc::WriteOptions());
    StartRead(&read_);
    StartCall();
  }

  void OnReadDone(bool ok) override {
    if (!ok) return;
    last_ = read_;
    have_last_ = true;
    StartRead(&read_);
  }

  void OnDone(const grpc::Status& status) override {
    if (status.ok() && !have_last_) {
      done_(HttpErrorOf(grpc::Status(grpc::StatusCode::INTERNAL,
                                     "the call answered nothing")));
    } else {
      done_(ReplyOf(status, output_, &last_));
    }
    open_->fetch_sub(1);
    delete this;
  }

 private:
  grpc::ClientContext context_;
  grpc::ByteBuffer request_;
  grpc::ByteBuffer read_;
  grpc::ByteBuffer last_;
  bool have_last_ = false;
  const google::protobuf::Descriptor* output_;
  std::function<void(HttpReply)> done_;
  std::shared_ptr<std::atomic<int>> open_;
};

}  // namespace

int HttpStatusOf(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK:
      return 200;
    case grpc::StatusCode::CANCELLED:
      return 499;
    case grpc::StatusCode::INVALID_ARGUMENT:
    case grpc::StatusCode::FAILED_PRECONDITION:
    case grpc::StatusCode::OUT_OF_RANGE:
      return 400;
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return 504;
    case grpc::StatusCode::NOT_FOUND:
      return 404;
    case grpc::StatusCode::ALREADY_EXISTS:
    case grpc::StatusCode::ABORTED:
      return 409;
    case grpc::StatusCode::PERMISSION_DENIED:
      return 403;
    case grpc::StatusCode::UNAUTHENTICATED:
      return 401;
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return 429;
    case grpc::StatusCode::UNIMPLEMENTED:
      return 501;
    case grpc::StatusCode::UNAVAILABLE:
      return 503;
    default:
      return 500;
  }
}

std::string ToJson(const Message& message) {
  // The reflection writer, not util::MessageToJsonString: the same text
  // (proto_json_test) without building a TypeResolver's types per call.
  std::string out;
  AppendProtoJson(message, &out);
  return out;
}

HttpReply HttpErrorOf(const grpc::Status& status) {
  // Link the detail types so the JSON printer can resolve their Any.
  (void)google::rpc::BadRequest::descriptor();
  google::rpc::Status rich;
  if (status.error_details().empty() ||
      !rich.ParseFromString(status.error_details())) {
    rich.Clear();
    rich.set_code(status.error_code());
    rich.set_message(status.error_message());
  }
  HttpReply reply;
  reply.status = HttpStatusOf(status.error_code());
  reply.body = ToJson(rich);
  for (const auto& any : rich.details()) {
    google::rpc::RetryInfo retry;
    if (any.UnpackTo(&retry)) {
      const int64_t seconds =
          retry.retry_delay().seconds() + (retry.retry_delay().nanos() > 0);
      reply.headers.emplace_back("Retry-After",
                                 absl::StrCat(std::max<int64_t>(seconds, 1)));
    }
  }
  return reply;
}

HttpReply HttpErrorOf(const absl::Status& status) {
  return HttpErrorOf(ToGrpcStatus(status));
}

LocalCall::LocalCall(const UnaryMethods::Method& method)
    : method_(&method),
      request_(google::protobuf::MessageFactory::generated_factory()
                   ->GetPrototype(method.input)
                   ->New(arena_.get())),
      response_(google::protobuf::MessageFactory::generated_factory()
                    ->GetPrototype(method.output)
                    ->New(arena_.get())) {}

void LocalCall::Unref() {
  if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
}

void LocalCall::Start(std::unique_ptr<LocalCall> owned,
                      std::function<void(HttpReply)> done) {
  LocalCall* call = owned.release();
  call->done_ = std::move(done);
  // Held until both the answer and the return: a method may answer before
  // it returns, and must still find its request.
  call->method_->handler(
      *call->request_, call->response_, [call](const absl::Status& status) {
        HttpReply reply;
        if (status.ok()) {
          AppendProtoJson(*call->response_, &reply.body);
        } else {
          reply = HttpErrorOf(status);
        }
        std::function<void(HttpReply)> done = std::move(call->done_);
        call->Unref();
        done(std::move(reply));
      });
  call->Unref();
}

Gateway::Gateway(std::shared_ptr<grpc::Channel> channel)
    : channel_(std::move(channel)),
      stub_(channel_),
      open_calls_(std::make_shared<std::atomic<int>>(0)) {}

Gateway::~Gateway() = default;

void Gateway::Call(const Route& route, std::unique_ptr<Message> request,
                   std::function<void(HttpReply)> done) {
  open_calls_->fetch_add(1);
  if (route.client_streaming() || route.server_streaming()) {
    auto* call = new CollectCall(route, *request, std::move(done), open_calls_);
    call->Start(&stub_, route.grpc_path);
    return;
  }
  auto* call = new UnaryCall;
  call->request = Serialize(*request);
  call->output = route.method->output_type();
  call->done = std::move(done);
  call->open = open_calls_;
  call->context.set_deadline(absl::ToChronoTime(absl::Now() + kUnaryDeadline));
  stub_.UnaryCall(&call->context, route.grpc_path, grpc::StubOptions(),
                  &call->request, &call->response, [call](grpc::Status status) {
                    call->done(ReplyOf(status, call->output, &call->response));
                    call->open->fetch_sub(1);
                    delete call;
                  });
}

bool Gateway::WaitIdle(absl::Duration timeout) {
  const absl::Time until = absl::Now() + timeout;
  while (open_calls_->load() > 0) {
    if (absl::Now() >= until) return false;
    absl::SleepFor(absl::Milliseconds(5));
  }
  return true;
}

}  // namespace jobwire
