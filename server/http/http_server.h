// HttpServer: jobwired's HTTP face, for browsers, scripts and monitoring.
//
// HTTP/1.1 on Boost.Beast over Asio, on TCP and Unix socket listeners, one
// thread (`jw-http`) for every connection: idle keep-alive connections and
// open Server-Sent Events streams cost memory, not threads. With
// Options::tls the TCP listeners serve HTTPS only (Asio SSL on OpenSSL):
// the same certificate files as gRPC, re-read when they change (asked
// before each handshake), client certificates required when a client CA is
// set; the handshake must end within request_timeout. Unix socket listeners
// stay plaintext. Requests are
// parsed by Beast with limits on header and body size and a deadline for
// the whole request (slow senders are cut off with 408); responses are
// written with a deadline too (a peer that stops reading is closed).
//
// What it serves:
//  - the JSON API: every route of RouteTable (the google.api.http
//    annotations). A unary route calls the method's function in
//    Options::unary (a LocalCall, gateway.h), the one its gRPC handler
//    calls; the two routes on streaming methods go through the Gateway's
//    in-process channel. So the same code answers, and errors are the same
//    google.rpc.Status, in JSON with the matching HTTP status. A unary call
//    counts in Options::open_calls while it runs (a graceful stop waits for
//    it as for a gRPC call), gets Options::call_timeout (then 504
//    DEADLINE_EXCEEDED, as a gRPC client's deadline) and, at the debug log
//    level, the access log line of a gRPC call ("call /jobwire.v1.JobService/
//    SubmitJob by token:ci from http:127.0.0.1:5"). The HTTP thread only
//    parses and starts it: the method answers on its own threads;
//  - Server-Sent Events on the server-streaming routes (WatchJob at
//    /v1/jobs/{id}/events, WatchJobs at /v1/events). Each stream is a watch
//    of the JobService (Options::watches, JobServiceImpl::NewWatch) whose
//    sink is the connection itself (server/api/watch_sink.h): the same
//    validation, EventBus subscription, catch-up from the log, bounded
//    buffer, heartbeats, stall check, `draining` and shutdown as a gRPC
//    watch, without a gRPC call in between. `id:` is the cursor
//    (seq or event_id), `event:` the event type, `data:` the event as
//    canonical proto JSON; Last-Event-ID resumes; heartbeats are comments;
//    `event: draining` and `event: reset` as in gRPC; the per-job stream
//    ends after its terminal event, and a resume after it gets 204 (which
//    stops an EventSource from reconnecting). An open stream holds no
//    request, parser, read buffer or response headers: only the socket, its
//    timers, the watch and the frame being written;
//  - /healthz (no auth), /metrics (Options::metrics), /v1/auth... (see
//    http_auth.h), CORS for Options::cors_origins.
//  - the dashboard: GET / and /ui/... from the files compiled in
//    (static_files.h), without auth (they hold no data), with a strict
//    Content-Security-Policy and ETag revalidation.
//
// Lifecycle: Start() binds and serves. StartShutdown() (a stop begins)
// closes the listeners and idle connections and marks responses
// `Connection: close`; open SSE streams get `draining` from the service and
// end when it finishes them (JobServiceImpl::FinishShutdown).
// open_event_streams() counts them until they have let go of their watch,
// so a stop can wait for them as for gRPC calls. Stop() (after
// grpc::Server::Shutdown, when every call has ended) answers a unary call
// still running (past the grace period) with 503 UNAVAILABLE and starts no
// more, closes what is left, waits for the streams' watches to be released
// and the answers to be written, and joins the thread; the channel is
// released, so the server may then be destroyed. A method that answers
// after Stop() has its answer dropped. The services must outlive Stop().
//
// Thread-safety: Start, StartShutdown and Stop are called from one thread;
// the counters are safe from any thread.
#ifndef JOBWIRE_SERVER_HTTP_HTTP_SERVER_H_
#define JOBWIRE_SERVER_HTTP_HTTP_SERVER_H_

#include <grpcpp/grpcpp.h>
#include <sys/types.h>

#include <atomic>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/common/clock.h"
#include "server/http/gateway.h"
#include "server/transport/listen_address.h"
#include "server/transport/tls_credentials.h"
#include "server/transport/token_file.h"

namespace jobwire {

class JobServiceImpl;
class UnaryMethods;

class HttpServer {
 public:
  struct Options {
    // Addresses to serve (TCP, or Unix paths made absolute).
    std::vector<ListenAddress> listen;
    mode_t socket_mode = 0600;
    // Group of Unix socket files; -1 leaves the process's.
    gid_t socket_group = static_cast<gid_t>(-1);
    // Empty: no auth. See http_auth.h.
    std::string auth_token;
    // Named tokens with scopes (--auth-token-file), instead of auth_token:
    // each route needs the scope of its gRPC method. See http_auth.h.
    std::shared_ptr<TokenTable> auth_tokens;
    // Set: HTTPS on the TCP listeners (see the class comment).
    std::shared_ptr<TlsCertificates> tls;
    // Origins allowed to call from a page served elsewhere (exact match,
    // e.g. "https://app.example.com"); "*" allows any.
    std::vector<std::string> cors_origins;
    // Connections beyond this are closed at once.
    int max_connections = 10000;
    size_t max_header_bytes = 16 * 1024;
    // Larger bodies get 413, RESOURCE_EXHAUSTED with reason
    // REQUEST_TOO_LARGE naming --max-receive-message-bytes (errors.h).
    size_t max_body_bytes = 4 * 1024 * 1024;
    // A request must arrive whole within this (from its first byte, or from
    // the connection's start); a TLS handshake must end within it too.
    absl::Duration request_timeout = absl::Seconds(10);
    // A keep-alive connection with no request for this long is closed.
    absl::Duration idle_timeout = absl::Seconds(60);
    // A response write (or one SSE event) the peer does not take for this
    // long closes the connection.
    absl::Duration write_timeout = absl::Seconds(60);
    // The `retry:` hint sent to SSE clients (reconnection delay).
    absl::Duration sse_retry = absl::Seconds(2);
    // Renders /metrics (Prometheus text) off the HTTP thread and calls
    // `done` with it; unset: /metrics is 404.
    std::function<void(std::function<void(std::string)> done)> metrics;
    // Whether the server drains (for /healthz).
    std::function<bool()> draining;
    // Makes the SSE routes' watches; required, not owned, must outlive
    // Stop().
    JobServiceImpl* watches = nullptr;
    // Serves every unary route (unary_methods.h); required, not owned, must
    // outlive Stop() (and the services in it every call).
    const UnaryMethods* unary = nullptr;
    // Unary calls in progress are counted here too (the counter of the gRPC
    // server's calls, call_counter.h); may be null.
    std::shared_ptr<std::atomic<int>> open_calls;
    // A unary call not answered within this is answered 504
    // DEADLINE_EXCEEDED (the method itself runs on).
    absl::Duration call_timeout = absl::Seconds(60);
  };

  // Binds every address and starts serving. `channel` is an in-process
  // channel of the running grpc::Server. Fails: INVALID_ARGUMENT for a
  // non-loopback address without an auth token or required client
  // certificates, or certificates OpenSSL refuses (or no Options::watches
  // or Options::unary); INTERNAL when a unary route has no method in
  // Options::unary, or one of other types;
  // FAILED_PRECONDITION when another server holds a Unix path; UNAVAILABLE
  // when binding fails.
  static absl::StatusOr<std::unique_ptr<HttpServer>> Start(
      Options options, std::shared_ptr<grpc::Channel> channel, Clock* clock);

  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // The served addresses: "http://127.0.0.1:8080" ("https://..." with
  // TLS), "http+unix:/abs/h.sock".
  const std::vector<std::string>& addresses() const;

  // See the class comment. Non-blocking; idempotent.
  void StartShutdown();
  // Closes every connection and joins the thread, waiting up to `timeout`
  // for gateway calls to end and answers to be written first. Idempotent.
  void Stop(absl::Duration timeout);

  int open_connections() const;
  // SSE streams whose watch is open (see Lifecycle).
  int open_event_streams() const;

  class Impl;

 private:
  explicit HttpServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace jobwire

#endif  // JOBWIRE_SERVER_HTTP_HTTP_SERVER_H_
