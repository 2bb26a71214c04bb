// Http2Relay: stands between a plaintext TCP client and gRPC, reading the
// client's HTTP/2 frame headers to stop the rapid-reset attack
// (CVE-2023-44487), which Debian's gRPC 1.51 does not bound: one connection
// opening and resetting 200,000 streams took the server to 2.5 GiB, never
// given back, and a minute of CPU (BENCHMARKS.md, rapid_reset_bench).
//
// ConnectionAcceptor hands each accepted TCP connection to Adopt(), which
// returns one end of a socketpair to hand to gRPC in its place. The relay's
// threads (epoll, `threads` of them, never a gRPC thread) copy bytes both
// ways, and pass the client's through an Http2ClientGuard
// (http2_frame_scanner.h). Once a client resets more streams than its budget
// allows, the relay stops passing its bytes on (the frame over the budget is
// never seen by gRPC), closes gRPC's side, sends the client GOAWAY
// ENHANCE_YOUR_CALM (when the server's bytes sent so far end on a frame
// boundary; otherwise it only closes) and closes the connection.
// For one window after that (renewed by each such close), every connection
// from the same client IP address also draws on one budget a tenth the size
// shared by them all, so a client that reconnects to reset more streams
// is closed after a few; connections from that address that reset nothing
// are not touched. At most 65,536 addresses are remembered (per thread).
//
// Memory per connection is bounded: bytes are read into one scratch buffer
// per thread, and a connection keeps only what a peer did not take yet (at
// most one read, 64 KiB, per direction); a direction whose bytes wait is not
// read from until they are gone, so a slow reader holds the writer back as
// TCP would. A connection whose server side has closed gets up to 5 s to
// take what is left, then is closed.
//
// Ownership: the relay owns each adopted client fd and its own end of the
// socketpair, and closes both; the caller owns the end Adopt returns.
// Thread-safe: Adopt from any thread; Stop (or the destructor) once, after
// the gRPC server has shut down, closes every connection and joins.
#ifndef JOBWIRE_SERVER_TRANSPORT_HTTP2_RELAY_H_
#define JOBWIRE_SERVER_TRANSPORT_HTTP2_RELAY_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "server/transport/http2_frame_scanner.h"

namespace jobwire {

class Http2Relay {
 public:
  struct Options {
    Http2ClientGuard::Limits limits;
    int threads = 1;
  };

  // Starts the relay's threads. Fails INTERNAL when epoll or eventfd
  // cannot be created.
  static absl::StatusOr<std::unique_ptr<Http2Relay>> Start(Options options);
  ~Http2Relay();
  Http2Relay(const Http2Relay&) = delete;
  Http2Relay& operator=(const Http2Relay&) = delete;

  // Takes connected TCP socket `client_fd` (non-blocking; owned from here)
  // and returns the fd for gRPC to serve in its place (owned by the caller).
  // Fails RESOURCE_EXHAUSTED when the process has no descriptor left for
  // the socketpair, INTERNAL otherwise; `client_fd` is closed then.
  absl::StatusOr<int> Adopt(int client_fd);

  // Closes every connection and joins the threads. Idempotent.
  void Stop();

  // Connections closed because their client reset too many streams.
  int64_t closed_over_budget() const { return closed_over_budget_->load(); }

  class Worker;

 private:
  explicit Http2Relay(Options options);

  const Options options_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::atomic<uint32_t> next_worker_{0};
  // Shared with the workers, which count into it.
  std::shared_ptr<std::atomic<int64_t>> closed_over_budget_ =
      std::make_shared<std::atomic<int64_t>>(0);
};

}  // namespace jobwire

#endif  // JOBWIRE_SERVER_TRANSPORT_HTTP2_RELAY_H_
