#include "server/http/http_server.h"

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>
#include <sys/stat.h>

#include <array>
#include <atomic>
#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "jobwire/v1/job_service.pb.h"
#include "server/api/convert.h"
#include "server/api/job_service.h"
#include "server/api/unary_methods.h"
#include "server/api/watch_reactors.h"
#include "server/common/errors.h"
#include "server/common/logging.h"
#include "server/common/status_macros.h"
#include "server/core/validation.h"
#include "server/http/http_auth.h"
#include "server/http/http_request.h"
#include "server/http/route_table.h"
#include "server/http/static_files.h"
#include "server/transport/peer_name.h"
#include "server/transport/unix_socket_guard.h"

namespace jobwire {

namespace beast = boost::beast;
namespace http = boost::beast::http;
namespace net = boost::asio;
using google::protobuf::Message;

namespace {

// How long an SSE response waits for its first message before sending its
// headers anyway: a watch that ends at once (a resume after the terminal
// event) is then answered 204, which tells EventSource not to reconnect.
constexpr absl::Duration kEventsHeaderWait = absl::Seconds(1);

// After an accept error (EMFILE, ENFILE, ...) the listener waits this long
// and accepts again, rather than spinning or giving up.
constexpr absl::Duration kAcceptRetry = absl::Milliseconds(100);

// How long an orderly TLS close waits for the peer's close_notify after
// sending its own (most clients close without answering).
constexpr std::chrono::seconds kTlsShutdownTimeout{2};

// A certificate's subject as RFC 2253 text ("CN=client,O=...").
std::string SubjectOf(X509* cert) {
  BIO* bio = BIO_new(BIO_s_mem());
  if (bio == nullptr) return "?";
  X509_NAME_print_ex(bio, X509_get_subject_name(cert), 0, XN_FLAG_RFC2253);
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio, &data);
  std::string subject(data, n > 0 ? static_cast<size_t>(n) : 0);
  BIO_free(bio);
  return subject;
}

std::chrono::steady_clock::duration Chrono(absl::Duration d) {
  return absl::ToChronoNanoseconds(d);
}

std::string Rfc3339(absl::Time t) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", t, absl::UTCTimeZone());
}

// One SSE frame of a watch message.
std::string FrameOf(const WatchMessage& m, bool cursor_is_seq) {
  v1::WatchJobsResponse r;  // the same oneof as WatchJobResponse
  WatchMessageToProto(m, &r);
  switch (r.kind_case()) {
    case v1::WatchJobsResponse::kEvent: {
      const v1::JobEvent& e = r.event();
      const auto* oneof = e.GetDescriptor()->FindOneofByName("type");
      const auto* field = e.GetReflection()->GetOneofFieldDescriptor(e, oneof);
      return absl::StrCat("id: ", cursor_is_seq ? e.seq() : e.event_id(),
                          "\nevent: ", field ? field->name() : "event",
                          "\ndata: ", ToJson(e), "\n\n");
    }
    case v1::WatchJobsResponse::kHeartbeat:
      return absl::StrCat(": heartbeat ", ToJson(r.heartbeat()), "\n\n");
    case v1::WatchJobsResponse::kDraining:
      return absl::StrCat("event: draining\ndata: ", ToJson(r.draining()),
                          "\n\n");
    case v1::WatchJobsResponse::kReset:
      return absl::StrCat("event: reset\ndata: ", ToJson(r.reset()), "\n\n");
    default:
      return "";
  }
}

// Lets the threads that answer unary calls post to the HTTP thread until
// Stop() has joined it; later answers are dropped. Shared with every call,
// which may outlive the server.
class PostGate {
 public:
  explicit PostGate(net::io_context* ioc) : ioc_(ioc) {}

  template <typename Handler>
  void Post(Handler&& handler) {
    absl::MutexLock lock(&mu_);
    if (ioc_ != nullptr) net::post(*ioc_, std::forward<Handler>(handler));
  }

  void Close() {
    absl::MutexLock lock(&mu_);
    ioc_ = nullptr;
  }

 private:
  absl::Mutex mu_;
  net::io_context* ioc_ ABSL_GUARDED_BY(mu_);
};

// The RetryInfo delay of a unary call refused or cut off by a stop.
constexpr absl::Duration kStopRetryDelay = absl::Seconds(1);

HttpReply JsonReply(int status, std::string body) {
  HttpReply r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

std::string StructJson(
    std::initializer_list<std::pair<std::string, google::protobuf::Value>>
        fields) {
  google::protobuf::Struct s;
  for (const auto& [k, v] : fields) (*s.mutable_fields())[k] = v;
  return ToJson(s);
}

google::protobuf::Value BoolValue(bool b) {
  google::protobuf::Value v;
  v.set_bool_value(b);
  return v;
}

google::protobuf::Value StringValue(std::string s) {
  google::protobuf::Value v;
  v.set_string_value(std::move(s));
  return v;
}

// An OpenSSL server context serving `pem`: TLS 1.2 and later, and with a
// client CA, a client certificate chaining to it required.
absl::StatusOr<std::shared_ptr<net::ssl::context>> MakeTlsContext(
    const TlsCertificates::PemTexts& pem) {
  auto ctx = std::make_shared<net::ssl::context>(net::ssl::context::tls_server);
  beast::error_code ec;
  ctx->set_options(
      net::ssl::context::default_workarounds | net::ssl::context::no_sslv2 |
          net::ssl::context::no_sslv3 | net::ssl::context::no_tlsv1 |
          net::ssl::context::no_tlsv1_1,
      ec);
  const char* flag = "--tls-cert";
  if (!ec) ctx->use_certificate_chain(net::buffer(pem.cert), ec);
  if (!ec) flag = "--tls-key";
  if (!ec) {
    ctx->use_private_key(net::buffer(pem.key), net::ssl::context::pem, ec);
  }
  if (!ec && !pem.client_ca.empty()) {
    flag = "--tls-client-ca";
    ctx->add_certificate_authority(net::buffer(pem.client_ca), ec);
    if (!ec) {
      ctx->set_verify_mode(
          net::ssl::verify_peer | net::ssl::verify_fail_if_no_peer_cert, ec);
    }
  }
  if (ec) {
    return absl::InvalidArgumentError(
        absl::StrCat(flag, ": not usable for HTTPS: ", ec.message()));
  }
  return ctx;
}

}  // namespace

// What every connection shares; lives until Stop() has joined the thread.
class HttpServer::Impl {
 public:
  class SessionBase {
   public:
    virtual ~SessionBase() = default;
    // At a stop: close when idle, else close after the current response.
    virtual void Drain() = 0;
    // Close now.
    virtual void Close() = 0;
    // At Stop(): answer a unary call in progress, else close now.
    virtual void Abort() = 0;
  };

  Impl(Options options, std::shared_ptr<grpc::Channel> channel, Clock* clock,
       RouteTable routes)
      : options(std::move(options)),
        clock(clock),
        auth(AuthOptions(this->options), clock),
        routes(std::move(routes)),
        gateway(std::make_unique<Gateway>(std::move(channel))),
        ioc(1),
        gate(std::make_shared<PostGate>(&ioc)) {}

  static HttpAuth::Options AuthOptions(const Options& options) {
    HttpAuth::Options auth;
    auth.token = options.auth_token;
    auth.table = options.auth_tokens;
    return auth;
  }

  absl::Status Bind();
  void Run() {
    thread = std::thread([this] {
      auto guard = net::make_work_guard(ioc);
      ioc.run();
    });
  }

  template <typename Acceptor, typename Stream>
  void Accept(Acceptor* acceptor);

  // The context for the next TLS handshake: a new one when the certificate
  // files changed (TlsCertificates::Current); the last good one when the
  // new files do not make one. HTTP thread only (and Bind).
  std::shared_ptr<net::ssl::context> TlsContext() {
    std::shared_ptr<const TlsCertificates::PemTexts> pem =
        options.tls->Current();
    if (pem == tls_pem) return tls_context;
    tls_pem = pem;
    absl::StatusOr<std::shared_ptr<net::ssl::context>> ctx =
        MakeTlsContext(*pem);
    if (!ctx.ok()) {
      JW_LOG(WARNING) << "http: " << ctx.status().message()
                      << "; still serving the previous certificate";
      return tls_context;
    }
    tls_context = *std::move(ctx);
    return tls_context;
  }

  // The CORS origin to answer for `origin`; empty when not allowed.
  std::string AllowedOrigin(absl::string_view origin) const {
    if (origin.empty()) return "";
    for (const std::string& o : options.cors_origins) {
      if (o == "*" || o == origin) return std::string(origin);
    }
    return "";
  }

  bool Draining() const {
    return draining.load() || (options.draining && options.draining());
  }

  const Options options;
  Clock* const clock;
  const HttpAuth auth;
  const RouteTable routes;
  std::unique_ptr<Gateway> gateway;
  std::atomic<int> connections{0};
  std::atomic<int> event_streams{0};
  // Unary calls started whose answer has not reached the HTTP thread.
  std::atomic<int> local_calls{0};
  std::atomic<bool> draining{false};
  std::shared_ptr<const TlsCertificates::PemTexts> tls_pem;
  std::shared_ptr<net::ssl::context> tls_context;
  // Open sessions; touched on the HTTP thread only (and by the io_context's
  // destructor, which destroys the sessions its handlers still hold: so it
  // is declared after everything a session touches when destroyed).
  absl::flat_hash_set<SessionBase*> sessions;
  net::io_context ioc;
  const std::shared_ptr<PostGate> gate;
  // Set by Stop() on the HTTP thread: unary calls are refused from then on.
  bool calls_closed = false;
  std::thread thread;
  std::vector<std::unique_ptr<net::ip::tcp::acceptor>> tcp_acceptors;
  std::vector<std::unique_ptr<net::local::stream_protocol::acceptor>>
      unix_acceptors;
  std::vector<std::unique_ptr<UnixSocketGuard>> socket_guards;
  std::vector<std::string> addresses;
};

namespace {

// One connection. Lives in shared_ptrs held by its pending operations (and,
// while an SSE stream's watch is open, by itself: watch_hold_); runs on the
// HTTP thread only, but for the WatchSink calls, which post to it. Destroyed
// on that thread (FinishWatch hands the last reference over by a post), or
// with the io_context at Stop().
template <typename Stream>
class Session final : public HttpServer::Impl::SessionBase,
                      public WatchSink,
                      public std::enable_shared_from_this<Session<Stream>> {
 public:
  // The TCP or Unix stream under TLS (if any): timeouts and the socket.
  using Lowest = std::remove_reference_t<decltype(beast::get_lowest_layer(
      std::declval<Stream&>()))>;
  using Socket = typename Lowest::socket_type;
  static constexpr bool kTls = !std::is_same_v<Stream, Lowest>;

  // `tls` is the TLS context of an HTTPS connection; null otherwise.
  Session(Socket&& socket, HttpServer::Impl* server,
          std::shared_ptr<net::ssl::context> tls = nullptr)
      : tls_(std::move(tls)),
        stream_(MakeStream(std::move(socket), tls_.get())),
        server_(server),
        call_timer_(stream_.get_executor()),
        header_timer_(stream_.get_executor()) {
    server_->connections.fetch_add(1);
    server_->sessions.insert(this);
  }

  ~Session() override {
    // Only after FinishWatch (watch_hold_ keeps the session until then),
    // when the io_context drops the posted OnEventsEnd at Stop().
    ReleaseWatch();
    server_->sessions.erase(this);
    server_->connections.fetch_sub(1);
  }

  void Start() {
    if constexpr (kTls) {
      // A peer that does not finish its handshake in time is cut off like
      // a slow request.
      lowest().expires_after(Chrono(server_->options.request_timeout));
      stream_.async_handshake(
          net::ssl::stream_base::server,
          [self = this->shared_from_this()](beast::error_code ec) {
            if (self->closed_) return;
            if (ec) return self->Close();
            self->handshake_done_ = true;
            self->Read();
          });
    } else {
      Read();
    }
  }

  void Drain() override {
    if (state_ == State::kIdle && !(parser_ && parser_->got_some())) {
      CloseGracefully();
    } else {
      keep_alive_ = false;
    }
  }

  // At Stop(): a unary call still running is answered 503 (and the
  // connection closes after the answer); anything else closes now.
  void Abort() override {
    if (call_pending_) {
      keep_alive_ = false;
      return Answer(call_id_, HttpErrorOf(UnavailableError(
                                  "server is shutting down", kStopRetryDelay)));
    }
    Close();
  }

  void Close() override {
    if (closed_) return;
    closed_ = true;
    header_timer_.cancel();
    call_timer_.cancel();
    if (watch_ != nullptr && !ended_) watch_->Cancelled();
    beast::error_code ec;
    lowest().socket().shutdown(net::socket_base::shutdown_both, ec);
    lowest().close();
  }

  // An orderly end (the response said close, the peer closed, a drain, the
  // end of an event stream): over TLS, a close_notify first, so the peer can
  // tell the end from a truncation; the peer's close_notify is awaited for
  // at most kTlsShutdownTimeout. A write in flight makes it Close().
  void CloseGracefully() {
    if constexpr (kTls) {
      if (closed_) return;
      if (!handshake_done_ || writing_) return Close();
      closed_ = true;
      header_timer_.cancel();
      if (watch_ != nullptr && !ended_) watch_->Cancelled();
      // A pending read (the next request, or an event stream's peer watch)
      // ends aborted; its handler sees closed_. The shutdown is posted after
      // it, so the TLS stream never has two reads in flight.
      beast::error_code ec;
      lowest().socket().cancel(ec);
      net::post(stream_.get_executor(), [self = this->shared_from_this()] {
        self->lowest().expires_after(kTlsShutdownTimeout);
        self->stream_.async_shutdown([self](beast::error_code) {
          beast::error_code ignored;
          self->lowest().socket().shutdown(net::socket_base::shutdown_both,
                                           ignored);
          self->lowest().close();
        });
      });
    } else {
      Close();
    }
  }

 private:
  static Stream MakeStream(Socket&& socket, net::ssl::context* tls) {
    if constexpr (kTls) {
      return Stream(std::move(socket), *tls);
    } else {
      return Stream(std::move(socket));
    }
  }

  Lowest& lowest() { return beast::get_lowest_layer(stream_); }

  enum class State { kIdle, kBusy, kEvents };

  // WatchSink, for the SSE stream's watch: called on any thread with the
  // watch's lock held, so each posts to the HTTP thread. The frame is
  // rendered here, off the HTTP thread.
  void WriteMessage(const WatchMessage& message,
                    bool /*more_queued*/) override {
    std::string frame = FrameOf(message, cursor_is_seq_);
    net::post(stream_.get_executor(), [s = this->shared_from_this(),
                                       frame = std::move(frame)]() mutable {
      s->OnFrame(std::move(frame));
    });
  }
  void FinishWatch(const absl::Status& status) override {
    // The posted handler holds the session: it is released on its thread.
    // Nothing of this session is touched after the post.
    auto executor = stream_.get_executor();
    net::post(executor,
              [s = std::move(watch_hold_), status] { s->OnEventsEnd(status); });
  }

  struct Chunk {
    std::string bytes;
    bool from_watch = false;  // WriteDone() once written
    bool last = false;        // the terminating chunk
  };

  void Read() {
    state_ = State::kIdle;
    parser_.emplace();
    parser_->header_limit(
        static_cast<std::uint32_t>(server_->options.max_header_bytes));
    parser_->body_limit(server_->options.max_body_bytes);
    lowest().expires_after(Chrono(first_ ? server_->options.request_timeout
                                         : server_->options.idle_timeout));
    http::async_read(
        stream_, buffer_, *parser_,
        beast::bind_front_handler(&Session::OnRead, this->shared_from_this()));
  }

  void OnRead(beast::error_code ec, std::size_t /*bytes*/) {
    if (closed_) return;
    if (ec == http::error::end_of_stream || ec == net::error::eof) {
      return CloseGracefully();
    }
    if (ec) {
      int status = 0;
      std::string why;
      if (ec == http::error::header_limit) {
        status = 431, why = "request headers too large";
      } else if (ec == http::error::body_limit) {
        status = 413;
      } else if (ec.category() ==
                 http::make_error_code(http::error::bad_target).category()) {
        status = 400, why = absl::StrCat("malformed request: ", ec.message());
      }
      // A timeout has closed the socket already (slow or idle peer).
      if (status == 0 || ec == beast::error::timeout) return Close();
      keep_alive_ = false;
      HttpReply reply = HttpErrorOf(
          status == 413 ? RequestTooLargeError("request body", 0,
                                               server_->options.max_body_bytes)
                        : absl::InvalidArgumentError(why));
      reply.status = status;
      return Write(std::move(reply));
    }
    first_ = false;
    request_ = parser_->release();
    cors_origin_ =
        server_->AllowedOrigin(ToView(request_[http::field::origin]));
    keep_alive_ = request_.keep_alive() && !server_->Draining();
    state_ = State::kBusy;
    Handle();
  }

  void Write(HttpReply reply) {
    if (closed_) return;
    auto res = std::make_shared<http::response<http::string_body>>(
        static_cast<http::status>(reply.status), 11);
    res->set(http::field::server, "jobwired");
    if (!reply.content_type.empty()) {
      res->set(http::field::content_type, reply.content_type);
    }
    AddCors(res.get());
    bool cache_control = false;
    for (const auto& [k, v] : reply.headers) {
      res->insert(k, v);
      cache_control =
          cache_control || absl::EqualsIgnoreCase(k, "Cache-Control");
    }
    if (!cache_control) res->set(http::field::cache_control, "no-store");
    res->keep_alive(keep_alive_ && !server_->Draining());
    res->body() = std::move(reply.body);
    res->prepare_payload();
    state_ = State::kBusy;
    lowest().expires_after(Chrono(server_->options.write_timeout));
    http::async_write(stream_, *res,
                      [self = this->shared_from_this(), res](
                          beast::error_code ec, std::size_t) {
                        self->OnWritten(ec, res->keep_alive());
                      });
  }

  void OnWritten(beast::error_code ec, bool keep_alive) {
    if (ec || closed_) return Close();
    if (!keep_alive) return CloseGracefully();
    Read();
  }

  // Posts a reply from another thread. The replier is dropped on that
  // thread (the executor's), and the session's last reference may be the
  // one it holds: that one is released on the HTTP thread, the only one that
  // may destroy a session (its destructor edits Impl::sessions; TSan found
  // the executor erasing while the HTTP thread iterated them).
  std::function<void(HttpReply)> Replier() {
    struct Hold {
      std::shared_ptr<Session> self;
      ~Hold() {
        if (self == nullptr) return;  // moved from
        auto executor = self->stream_.get_executor();
        net::post(executor, [self = std::move(self)] {});
      }
    };
    auto hold = std::make_shared<Hold>(Hold{this->shared_from_this()});
    return [hold](HttpReply reply) {
      net::post(hold->self->stream_.get_executor(),
                [self = hold->self, reply = std::move(reply)]() mutable {
                  self->Write(std::move(reply));
                });
    };
  }

  // CORS headers for the request's origin (cors_origin_).
  template <typename Response>
  void AddCors(Response* res) {
    if (cors_origin_.empty()) return;
    res->set(http::field::access_control_allow_origin, cors_origin_);
    res->set(http::field::vary, "Origin");
    res->set(http::field::access_control_expose_headers,
             "Retry-After, WWW-Authenticate");
  }

  void Handle() {
    absl::StatusOr<RequestTarget> target =
        ParseRequestTarget(ToView(request_.target()));
    if (!target.ok()) {
      keep_alive_ = false;
      return Write(HttpErrorOf(target.status()));
    }
    const std::string& path = target->path;
    const std::string method(request_.method_string());

    if (request_.method() == http::verb::options) return Preflight();
    if (path == "/healthz") {
      const bool draining = server_->Draining();
      return Write(JsonReply(
          draining ? 503 : 200,
          StructJson({{"status",
                       StringValue(draining ? "NOT_SERVING" : "SERVING")}})));
    }
    // The dashboard's files hold no data, so they need no auth (the API
    // calls they make do).
    if (request_.method() == http::verb::get) {
      if (const StaticFile* file = FindStaticFile(path)) {
        return WriteStatic(*file);
      }
    }
    const HttpAuth::Request credentials = CredentialsOf(request_, *target);
    if (absl::StartsWith(path, "/v1/auth"))
      return HandleAuth(path, credentials);
    absl::StatusOr<HttpAuth::Caller> caller =
        server_->auth.Authenticate(credentials);
    if (!caller.ok()) {
      HttpReply reply = HttpErrorOf(caller.status());
      reply.headers.emplace_back("WWW-Authenticate",
                                 "Bearer realm=\"jobwire\"");
      return Write(std::move(reply));
    }
    if (LogLevelEnabled(LogLevel::kDebug)) LogCall(method, path, *caller);
    if (path == "/metrics" && server_->options.metrics) {
      if (request_.method() != http::verb::get)
        return MethodNotAllowed({"GET"});
      if (absl::Status s = HttpAuth::CheckScope(*caller, "read", "/metrics");
          !s.ok()) {
        return Write(HttpErrorOf(s));
      }
      auto reply = Replier();
      server_->options.metrics([reply](std::string text) {
        HttpReply r;
        r.content_type = "text/plain; version=0.0.4; charset=utf-8";
        r.body = std::move(text);
        reply(std::move(r));
      });
      return;
    }

    std::vector<std::string> allowed;
    absl::StatusOr<RouteTable::Match> match =
        RouteCall(server_->routes, *caller, method, *target, &allowed);
    if (!match.ok()) {
      if (!allowed.empty()) return MethodNotAllowed(allowed);
      return Write(HttpErrorOf(match.status()));
    }
    const Route& route = *match->route;
    if (const UnaryMethods::Method* unary =
            server_->options.unary->Find(route.grpc_path)) {
      auto call = std::make_unique<LocalCall>(*unary);
      if (absl::Status s = BuildCallRequest(*match, target->query, request_,
                                            call->request());
          !s.ok()) {
        return Write(HttpErrorOf(s));
      }
      return CallLocal(std::move(call));
    }
    std::unique_ptr<Message> rpc(
        google::protobuf::MessageFactory::generated_factory()
            ->GetPrototype(route.method->input_type())
            ->New());
    if (absl::Status s =
            BuildCallRequest(*match, target->query, request_, rpc.get());
        !s.ok()) {
      return Write(HttpErrorOf(s));
    }
    // Args that grow past gRPC's message limit as protobuf (JSON numbers
    // do, ~5x) would be refused by the in-process channel with a transport
    // error; the same check as SubmitJob's names the field instead.
    if (const auto* submit =
            dynamic_cast<const v1::SubmitJobRequest*>(rpc.get())) {
      if (absl::Status s = CheckWireBytes(submit->job().args(),
                                          kMaxArgsWireBytes, "job.args");
          !s.ok()) {
        return Write(HttpErrorOf(s));
      }
    }
    if (IsEventStream(route)) {
      return StartEvents(
          *rpc, rpc->GetDescriptor()->FindFieldByName("after_seq") != nullptr);
    }
    server_->gateway->Call(route, std::move(rpc), Replier());
  }

  // --- Unary calls (gateway.h) ---

  void CallLocal(std::unique_ptr<LocalCall> call) {
    if (server_->calls_closed) {
      keep_alive_ = false;
      return Write(HttpErrorOf(
          UnavailableError("server is shutting down", kStopRetryDelay)));
    }
    const uint64_t id = ++call_id_;
    call_pending_ = true;
    if (server_->options.open_calls != nullptr) {
      server_->options.open_calls->fetch_add(1);
    }
    server_->local_calls.fetch_add(1);
    call_timer_.expires_after(Chrono(server_->options.call_timeout));
    call_timer_.async_wait([self = this->shared_from_this(),
                            id](beast::error_code ec) {
      if (ec) return;  // answered (or closed) first
      self->Answer(
          id, HttpErrorOf(absl::DeadlineExceededError("Deadline Exceeded")));
    });
    // The answer comes on the method's thread; it holds the session weakly
    // (a session is destroyed on the HTTP thread only).
    // Nothing of the server is touched there but through the gate, which
    // drops the answer once Stop() has joined the HTTP thread.
    LocalCall::Start(
        std::move(call), [server = server_, gate = server_->gate,
                          open_calls = server_->options.open_calls,
                          weak = this->weak_from_this(), id](HttpReply reply) {
          if (open_calls != nullptr) open_calls->fetch_sub(1);
          gate->Post([server, weak, id, reply = std::move(reply)]() mutable {
            server->local_calls.fetch_sub(1);
            if (auto self = weak.lock()) self->Answer(id, std::move(reply));
          });
        });
  }

  // Writes the answer to call `id`, unless it was answered already (by the
  // deadline or the stop).
  void Answer(uint64_t id, HttpReply reply) {
    if (!call_pending_ || id != call_id_) return;
    call_pending_ = false;
    call_timer_.cancel();
    Write(std::move(reply));
  }

  // The access log line of a call, in the shape of gRPC's (access_log.h):
  //   call POST /v1/jobs by token:ci from unix:uid=1000,gid=1000,pid=42
  void LogCall(const std::string& method, const std::string& path,
               const HttpAuth::Caller& caller) {
    if (peer_.empty()) peer_ = PeerNameOf(lowest().socket().native_handle());
    std::string by = caller.name == "anonymous"
                         ? std::string("anonymous")
                         : absl::StrCat("token:", caller.name);
    if constexpr (kTls) {
      // Without a token, a client certificate (mTLS) names the caller.
      if (by == "anonymous") {
        if (X509* cert = SSL_get1_peer_certificate(stream_.native_handle())) {
          by = absl::StrCat("cert:", SubjectOf(cert));
          X509_free(cert);
        }
      }
    }
    JW_LOG(DEBUG) << "call " << method << " " << path << " by " << by
                  << " from " << peer_;
  }

  void WriteStatic(const StaticFile& file) {
    StaticReply s =
        ServeStaticFile(file, ToView(request_[http::field::if_none_match]));
    HttpReply reply;
    reply.status = s.status;
    reply.content_type.clear();  // among s.headers on a 200
    reply.headers = std::move(s.headers);
    reply.body = std::string(s.body);
    Write(std::move(reply));
  }

  static absl::string_view ToView(beast::string_view v) {
    return absl::string_view(v.data(), v.size());
  }

  void MethodNotAllowed(const std::vector<std::string>& allowed) {
    HttpReply reply = HttpErrorOf(absl::UnimplementedError(absl::StrCat(
        "method ", ToView(request_.method_string()),
        " not allowed here; allowed: ", absl::StrJoin(allowed, ", "))));
    reply.status = 405;
    reply.headers.emplace_back("Allow", absl::StrJoin(allowed, ", "));
    Write(std::move(reply));
  }

  void Preflight() {
    const auto origin = ToView(request_[http::field::origin]);
    if (!origin.empty() && server_->AllowedOrigin(origin).empty()) {
      HttpReply reply = HttpErrorOf(absl::PermissionDeniedError(absl::StrCat(
          "origin ", origin, " is not allowed (--http-cors-origin)")));
      return Write(std::move(reply));
    }
    HttpReply reply;
    reply.status = 204;
    reply.content_type.clear();
    reply.headers = {
        {"Access-Control-Allow-Methods", "GET, POST, PATCH, DELETE, OPTIONS"},
        {"Access-Control-Allow-Headers",
         "Authorization, Content-Type, Last-Event-ID, X-Jobwire-Csrf"},
        {"Access-Control-Max-Age", "600"}};
    Write(std::move(reply));
  }

  void HandleAuth(const std::string& path,
                  const HttpAuth::Request& credentials) {
    const HttpAuth& auth = server_->auth;
    const auto verb = request_.method();
    if (path == "/v1/auth") {
      if (verb != http::verb::get) return MethodNotAllowed({"GET"});
      return Write(JsonReply(
          200, StructJson({{"authRequired", BoolValue(auth.enabled())},
                           {"authenticated",
                            BoolValue(auth.Check(credentials).ok())}})));
    }
    if (verb != http::verb::post) return MethodNotAllowed({"POST"});
    if (path == "/v1/auth:login") {
      if (!auth.enabled()) {
        return Write(
            JsonReply(200, StructJson({{"authRequired", BoolValue(false)}})));
      }
      std::string token(HttpAuth::BearerOf(credentials.authorization));
      std::optional<HttpAuth::Caller> caller;
      if (token.empty()) {
        google::protobuf::Struct body;
        if (google::protobuf::util::JsonStringToMessage(request_.body(), &body)
                .ok() &&
            body.fields().count("token") > 0) {
          token = body.fields().at("token").string_value();
        }
      }
      if (!token.empty()) caller = auth.CallerOfToken(token);
      if (!caller.has_value()) {
        return Write(HttpErrorOf(absl::UnauthenticatedError(
            token.empty() ? "send the token as {\"token\": ...} or a bearer "
                            "header"
                          : "wrong token")));
      }
      absl::Time expires;
      const std::string session = auth.NewSession(*caller, &expires);
      HttpReply reply = JsonReply(
          200, StructJson({{"authRequired", BoolValue(true)},
                           {"expireTime", StringValue(Rfc3339(expires))}}));
      reply.headers.emplace_back(
          "Set-Cookie",
          absl::StrCat(HttpAuth::kCookieName, "=", session,
                       "; Path=/; HttpOnly; SameSite=Strict; Max-Age=",
                       absl::ToInt64Seconds(expires - server_->clock->Now())));
      return Write(std::move(reply));
    }
    if (path == "/v1/auth:logout") {
      HttpReply reply;
      reply.status = 204;
      reply.content_type.clear();
      reply.headers.emplace_back(
          "Set-Cookie", absl::StrCat(HttpAuth::kCookieName,
                                     "=; Path=/; HttpOnly; SameSite=Strict; "
                                     "Max-Age=0"));
      return Write(std::move(reply));
    }
    if (path == "/v1/auth:ticket") {
      absl::StatusOr<HttpAuth::Caller> caller = auth.Authenticate(credentials);
      if (!caller.ok()) return Write(HttpErrorOf(caller.status()));
      if (!auth.enabled()) {
        return Write(HttpErrorOf(absl::FailedPreconditionError(
            "auth is off (no --auth-token): no ticket is needed")));
      }
      absl::Time expires;
      const std::string ticket = auth.NewTicket(*caller, &expires);
      return Write(JsonReply(
          200, StructJson({{"ticket", StringValue(ticket)},
                           {"expireTime", StringValue(Rfc3339(expires))}})));
    }
    Write(
        HttpErrorOf(absl::NotFoundError(absl::StrCat("no route for ", path))));
  }

  // --- Server-Sent Events ---

  void StartEvents(const Message& rpc, bool cursor_is_seq) {
    absl::StatusOr<WatchReactorCore*> watch = absl::InternalError("no watch");
    if (const auto* r = dynamic_cast<const v1::WatchJobRequest*>(&rpc)) {
      watch = server_->options.watches->NewWatch(*r);
    } else if (const auto* r =
                   dynamic_cast<const v1::WatchJobsRequest*>(&rpc)) {
      watch = server_->options.watches->NewWatch(*r);
    }
    if (!watch.ok()) return Write(HttpErrorOf(watch.status()));
    state_ = State::kEvents;
    keep_alive_ = false;  // an SSE connection is never reused
    cursor_is_seq_ = cursor_is_seq;
    // The request (its origin is in cors_origin_) and the read buffers go:
    // an idle stream holds none of them.
    request_ = {};
    parser_.reset();
    buffer_ = beast::flat_buffer();
    server_->event_streams.fetch_add(1);
    watch_ = *watch;
    watch_hold_ = this->shared_from_this();
    watch_->Begin(this);
    header_timer_.expires_after(Chrono(kEventsHeaderWait));
    header_timer_.async_wait(
        [self = this->shared_from_this()](beast::error_code ec) {
          if (!ec && !self->headers_sent_ && !self->ended_) self->Pump();
        });
    WatchPeer();
  }

  // Lets go of the watch (its last call here), once it has finished.
  void ReleaseWatch() {
    if (watch_ == nullptr) return;
    watch_->Done();
    watch_ = nullptr;
    server_->event_streams.fetch_sub(1);
  }

  // A read that completes only when the peer closes (or sends something,
  // which is ignored): how a gone EventSource is noticed between events.
  void WatchPeer() {
    auto done = [self = this->shared_from_this()](beast::error_code ec,
                                                  std::size_t) {
      if (self->closed_) return;
      // EOF: the peer's close_notify (TLS) or FIN; answered in kind.
      if (ec == net::error::eof) return self->CloseGracefully();
      if (ec) return self->Close();
      self->WatchPeer();
    };
    if constexpr (kTls) {
      // Through TLS (a record is not a close); with no read deadline (only
      // the read's: a pending write keeps its own).
      lowest().expires_never();
      stream_.async_read_some(net::buffer(discard_), std::move(done));
    } else {
      lowest().socket().async_read_some(net::buffer(discard_), std::move(done));
    }
  }

  void OnFrame(std::string frame) {
    if (closed_) return;
    out_.push_back(Chunk{std::move(frame), /*from_watch=*/true});
    Pump();
  }

  void OnEventsEnd(const absl::Status& status) {
    ended_ = true;
    ReleaseWatch();
    header_timer_.cancel();
    if (closed_) return;
    if (!headers_sent_) {
      // Nothing was sent: an answer of its own.
      if (status.ok()) {
        HttpReply reply;
        reply.status = 204;  // nothing more to follow: do not reconnect
        reply.content_type.clear();
        return Write(std::move(reply));
      }
      return Write(HttpErrorOf(status));
    }
    if (!status.ok() && !absl::IsCancelled(status)) {
      out_.push_back(Chunk{absl::StrCat(
          "event: error\ndata: ", HttpErrorOf(status).body, "\n\n")});
    }
    out_.push_back(Chunk{"", false, /*last=*/true});
    Pump();
  }

  void Pump() {
    if (closed_ || writing_) return;
    if (!headers_sent_) {
      headers_sent_ = true;
      header_timer_.cancel();
      // Held by the write only: an open stream keeps no response headers.
      struct Head {
        http::response<http::empty_body> response;
        http::response_serializer<http::empty_body> serializer{response};
      };
      auto head = std::make_shared<Head>();
      http::response<http::empty_body>& res = head->response;
      res.result(http::status::ok);
      res.version(11);
      res.set(http::field::server, "jobwired");
      res.set(http::field::content_type, "text/event-stream");
      res.set(http::field::cache_control, "no-cache");
      res.set("X-Accel-Buffering", "no");
      AddCors(&res);
      res.keep_alive(false);
      res.chunked(true);
      writing_ = true;
      lowest().expires_after(Chrono(server_->options.write_timeout));
      http::async_write_header(stream_, head->serializer,
                               [self = this->shared_from_this(), head](
                                   beast::error_code ec, std::size_t) {
                                 self->writing_ = false;
                                 if (ec) return self->Close();
                                 self->Pump();
                               });
      return;
    }
    if (out_.empty()) return;
    writing_chunk_ = std::move(out_.front());
    out_.erase(out_.begin());
    if (!retry_sent_ && !writing_chunk_.last) {
      // The reconnection delay rides on the first frame: a block of its own
      // would be an empty event to some clients.
      retry_sent_ = true;
      writing_chunk_.bytes = absl::StrCat(
          "retry: ", absl::ToInt64Milliseconds(server_->options.sse_retry),
          "\n", writing_chunk_.bytes);
    }
    writing_ = true;
    lowest().expires_after(Chrono(server_->options.write_timeout));
    auto done = [self = this->shared_from_this()](beast::error_code ec,
                                                  std::size_t) {
      self->OnChunkWritten(ec);
    };
    if (writing_chunk_.last) {
      net::async_write(stream_, http::make_chunk_last(), std::move(done));
    } else {
      net::async_write(stream_,
                       http::make_chunk(net::buffer(writing_chunk_.bytes)),
                       std::move(done));
    }
  }

  void OnChunkWritten(beast::error_code ec) {
    writing_ = false;
    if (ec) return Close();
    if (writing_chunk_.last) return CloseGracefully();
    if (writing_chunk_.from_watch && watch_ != nullptr && !ended_) {
      watch_->WriteDone(true);
    }
    Pump();
  }

  // Before stream_, which uses it.
  std::shared_ptr<net::ssl::context> tls_;
  Stream stream_;
  HttpServer::Impl* const server_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  http::request<http::string_body> request_;
  State state_ = State::kIdle;
  bool first_ = true;
  bool keep_alive_ = true;
  bool closed_ = false;
  bool handshake_done_ = false;  // TLS only
  std::string peer_;             // PeerNameOf, once a call was logged

  // The unary call in progress (gateway.h), if call_pending_: the id of
  // the last one started; its deadline.
  uint64_t call_id_ = 0;
  bool call_pending_ = false;
  net::steady_timer call_timer_;

  // SSE. watch_ is the stream's watch until released; watch_hold_ keeps
  // this session alive from Begin until FinishWatch.
  WatchReactorCore* watch_ = nullptr;
  std::shared_ptr<Session> watch_hold_;
  bool cursor_is_seq_ = false;
  std::string cors_origin_;
  net::steady_timer header_timer_;
  // At most a frame, an error and the last chunk wait (one watch message at
  // a time); a vector allocates nothing on connections that never stream.
  std::vector<Chunk> out_;
  Chunk writing_chunk_;
  bool writing_ = false;
  bool headers_sent_ = false;
  bool retry_sent_ = false;
  bool ended_ = false;
  std::array<char, 256> discard_{};
};

using TcpStream = beast::tcp_stream;
using TlsStream = beast::ssl_stream<beast::tcp_stream>;
using UnixStream =
    beast::basic_stream<net::local::stream_protocol, net::any_io_executor,
                        beast::unlimited_rate_policy>;

}  // namespace

template <typename Acceptor, typename Stream>
void HttpServer::Impl::Accept(Acceptor* acceptor) {
  acceptor->async_accept([this, acceptor](
                             beast::error_code ec,
                             typename Session<Stream>::Socket socket) {
    if (ec == net::error::operation_aborted || !acceptor->is_open()) return;
    if (ec) {
      JW_LOG(WARNING) << "http: accept: " << ec.message() << "; retrying in "
                      << kAcceptRetry;
      auto timer = std::make_shared<net::steady_timer>(ioc);
      timer->expires_after(Chrono(kAcceptRetry));
      timer->async_wait([this, acceptor, timer](beast::error_code) {
        if (acceptor->is_open()) Accept<Acceptor, Stream>(acceptor);
      });
      return;
    }
    if (connections.load() >= options.max_connections || Draining()) {
      beast::error_code ignored;
      socket.close(ignored);
    } else if constexpr (std::is_same_v<Stream, TlsStream>) {
      std::make_shared<Session<Stream>>(std::move(socket), this, TlsContext())
          ->Start();
    } else {
      std::make_shared<Session<Stream>>(std::move(socket), this)->Start();
    }
    Accept<Acceptor, Stream>(acceptor);
  });
}

absl::Status HttpServer::Impl::Bind() {
  if (options.tls != nullptr) {
    // The start fails on files OpenSSL refuses; later changes are checked
    // as they come (TlsContext).
    tls_pem = options.tls->Current();
    JW_ASSIGN_OR_RETURN(tls_context, MakeTlsContext(*tls_pem));
  }
  const bool client_certificates =
      options.tls != nullptr && options.tls->requires_client_certificate();
  for (const ListenAddress& a : options.listen) {
    if (a.kind == ListenAddress::Kind::kTcp) {
      if (!a.IsLoopback() && options.auth_token.empty() &&
          options.auth_tokens == nullptr && !client_certificates) {
        return absl::InvalidArgumentError(absl::StrCat(
            "--http ", a.ToUri(),
            " is not a loopback address; refusing to serve it without "
            "--auth-token (or JOBWIRE_AUTH_TOKEN), --auth-token-file or "
            "--tls-client-ca"));
      }
      beast::error_code ec;
      net::ip::tcp::resolver resolver(ioc);
      auto results = resolver.resolve(a.host, std::to_string(a.port),
                                      net::ip::tcp::resolver::passive, ec);
      if (ec || results.empty()) {
        return absl::UnavailableError(absl::StrCat(
            "--http ", a.ToUri(), ": cannot resolve: ", ec.message()));
      }
      auto acceptor = std::make_unique<net::ip::tcp::acceptor>(ioc);
      const auto endpoint = results.begin()->endpoint();
      acceptor->open(endpoint.protocol(), ec);
      if (!ec) acceptor->set_option(net::socket_base::reuse_address(true), ec);
      if (!ec) acceptor->bind(endpoint, ec);
      if (!ec) acceptor->listen(net::socket_base::max_listen_connections, ec);
      if (ec) {
        return absl::UnavailableError(absl::StrCat(
            "cannot serve HTTP on ", a.ToUri(), ": ", ec.message()));
      }
      const auto bound = acceptor->local_endpoint();
      const std::string host =
          bound.address().is_v6()
              ? absl::StrCat("[", bound.address().to_string(), "]")
              : bound.address().to_string();
      addresses.push_back(absl::StrCat(options.tls ? "https://" : "http://",
                                       host, ":", bound.port()));
      tcp_acceptors.push_back(std::move(acceptor));
      continue;
    }
    std::string path = a.path;
    if (a.kind == ListenAddress::Kind::kUnixPath) {
      JW_ASSIGN_OR_RETURN(auto guard, UnixSocketGuard::Acquire(a.path));
      socket_guards.push_back(std::move(guard));
    } else {
      path = std::string(1, '\0') + a.path;
    }
    beast::error_code ec;
    auto acceptor =
        std::make_unique<net::local::stream_protocol::acceptor>(ioc);
    {
      ScopedUmask umask(0177);
      acceptor->open(net::local::stream_protocol(), ec);
      if (!ec) acceptor->bind(net::local::stream_protocol::endpoint(path), ec);
      if (!ec) acceptor->listen(net::socket_base::max_listen_connections, ec);
    }
    if (ec) {
      return absl::UnavailableError(
          absl::StrCat("cannot serve HTTP on ", a.ToUri(), ": ", ec.message()));
    }
    if (a.kind == ListenAddress::Kind::kUnixPath) {
      JW_RETURN_IF_ERROR(socket_guards.back()->SetMode(options.socket_mode,
                                                       options.socket_group));
    }
    addresses.push_back(absl::StrCat("http+", a.ToUri()));
    unix_acceptors.push_back(std::move(acceptor));
  }
  if (addresses.empty())
    return absl::InvalidArgumentError("--http: no address");
  for (auto& a : tcp_acceptors) {
    if (options.tls != nullptr) {
      Accept<net::ip::tcp::acceptor, TlsStream>(a.get());
    } else {
      Accept<net::ip::tcp::acceptor, TcpStream>(a.get());
    }
  }
  for (auto& a : unix_acceptors) {
    Accept<net::local::stream_protocol::acceptor, UnixStream>(a.get());
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(
    Options options, std::shared_ptr<grpc::Channel> channel, Clock* clock) {
  if (options.watches == nullptr || options.unary == nullptr) {
    return absl::InvalidArgumentError(
        "HttpServer: Options::watches or Options::unary is unset");
  }
  std::vector<const google::protobuf::ServiceDescriptor*> services;
  for (const char* name :
       {"jobwire.v1.JobService", "jobwire.v1.AdminService"}) {
    const auto* s =
        google::protobuf::DescriptorPool::generated_pool()->FindServiceByName(
            name);
    if (s == nullptr) return absl::InternalError(absl::StrCat("no ", name));
    services.push_back(s);
  }
  JW_ASSIGN_OR_RETURN(RouteTable routes, RouteTable::FromServices(services));
  // Every unary route is served in process, by a method of its types.
  for (const Route& route : routes.routes()) {
    if (route.client_streaming() || route.server_streaming()) continue;
    const UnaryMethods::Method* m = options.unary->Find(route.grpc_path);
    if (m == nullptr || m->input != route.method->input_type() ||
        m->output != route.method->output_type()) {
      return absl::InternalError(
          absl::StrCat("HttpServer: no unary method of the right types for ",
                       route.grpc_path, " (", route.pattern, ")"));
    }
  }
  auto impl = std::make_unique<Impl>(std::move(options), std::move(channel),
                                     clock, std::move(routes));
  JW_RETURN_IF_ERROR(impl->Bind());
  impl->Run();
  return std::unique_ptr<HttpServer>(new HttpServer(std::move(impl)));
}

HttpServer::HttpServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

HttpServer::~HttpServer() { Stop(absl::ZeroDuration()); }

const std::vector<std::string>& HttpServer::addresses() const {
  return impl_->addresses;
}

int HttpServer::open_connections() const { return impl_->connections.load(); }
int HttpServer::open_event_streams() const {
  return impl_->event_streams.load();
}

void HttpServer::StartShutdown() {
  if (impl_->draining.exchange(true)) return;
  Impl* impl = impl_.get();
  net::post(impl->ioc, [impl] {
    beast::error_code ec;
    for (auto& a : impl->tcp_acceptors) a->close(ec);
    for (auto& a : impl->unix_acceptors) a->close(ec);
    std::vector<Impl::SessionBase*> sessions(impl->sessions.begin(),
                                             impl->sessions.end());
    for (Impl::SessionBase* s : sessions) {
      if (impl->sessions.contains(s)) s->Drain();
    }
  });
}

void HttpServer::Stop(absl::Duration timeout) {
  if (!impl_->thread.joinable()) return;
  StartShutdown();
  Impl* impl = impl_.get();
  net::post(impl->ioc, [impl] {
    impl->calls_closed = true;
    std::vector<Impl::SessionBase*> sessions(impl->sessions.begin(),
                                             impl->sessions.end());
    for (Impl::SessionBase* s : sessions) {
      if (impl->sessions.contains(s)) s->Abort();
    }
  });
  // The Close()s cancel the SSE streams' watches; each lets go of its
  // watch on this thread when the watch has finished. The Abort()s of
  // sessions with a unary call write its 503 and then close.
  const absl::Time until = absl::Now() + timeout;
  if (!impl->gateway->WaitIdle(timeout)) {
    JW_LOG(WARNING) << "http: " << impl->gateway->open_calls()
                    << " calls still open at stop";
  }
  while ((impl->event_streams.load() > 0 || impl->connections.load() > 0) &&
         absl::Now() < until) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  if (impl->event_streams.load() > 0) {
    JW_LOG(WARNING) << "http: " << impl->event_streams.load()
                    << " event streams still open at stop";
  }
  if (impl->local_calls.load() > 0) {
    JW_LOG(WARNING) << "http: " << impl->local_calls.load()
                    << " unary calls unanswered at stop (answered 503)";
  }
  impl->ioc.stop();
  impl->thread.join();
  impl->gate->Close();
  impl->socket_guards.clear();
}

}  // namespace jobwire
