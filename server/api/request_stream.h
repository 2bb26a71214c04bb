// RequestStream: a bidi stream that answers each request with one response,
// one request at a time (SubmitJobs, BulkUpdateJobs).
//
// It reads a request, hands it to Handle(), writes the response Handle's
// work passes to Answer(), and only then reads the next request, so a stream
// holds one request's work at a time. An error passed to Answer() ends the
// stream with that status; the client ending its side ends it with OK, and
// a cancelled call or a failed write with CANCELLED. Registered in a
// StreamRegistry for shutdown: Abort() finishes the stream at once (work in
// flight still calls Answer, which is then ignored).
//
// Lifetime: the stream deletes itself once gRPC is done with it (OnDone) and
// the work of every Handle() has answered. Create it with `new`, then call
// Start(). Thread-safe.
#ifndef JOBWIRE_SERVER_API_REQUEST_STREAM_H_
#define JOBWIRE_SERVER_API_REQUEST_STREAM_H_

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <cstddef>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/api/stream_registry.h"
#include "server/api/unary_methods.h"
#include "server/transport/grpc_status.h"

namespace jobwire {

template <typename Request, typename Response>
class RequestStream : public grpc::ServerBidiReactor<Request, Response>,
                      public ServiceStream {
 public:
  // A request over `max_request_bytes` as protobuf ends the stream with
  // RESOURCE_EXHAUSTED (CheckRequestBytes) instead of reaching Handle().
  RequestStream(StreamRegistry* registry, size_t max_request_bytes)
      : registry_(registry), max_request_bytes_(max_request_bytes) {}

  // Registers the stream and reads the first request. Call once, after
  // construction (Handle is virtual).
  void Start() {
    registry_->Add(this);
    this->StartRead(&request_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {  // the client has sent its last request
      absl::MutexLock lock(&mu_);
      FinishLocked(absl::OkStatus());
      return;
    }
    refs_.fetch_add(1);  // released by Answer
    absl::Status size = CheckRequestBytes(request_, max_request_bytes_);
    if (!size.ok()) return Answer(std::move(size));
    Handle(request_);
  }

  void OnWriteDone(bool ok) override {
    absl::MutexLock lock(&mu_);
    if (!ok) {
      FinishLocked(absl::CancelledError("write failed"));
      return;
    }
    if (!finished_) this->StartRead(&request_);
  }

  void OnCancel() override {
    absl::MutexLock lock(&mu_);
    FinishLocked(absl::CancelledError("cancelled by the client"));
  }

  void OnDone() override { Unref(); }

  // ServiceStream. Streams that send nothing on their own need no ticks.
  void Tick(absl::Time) override {}
  void Drain(absl::Time) override {}
  void Abort(const absl::Status& status) override {
    absl::MutexLock lock(&mu_);
    FinishLocked(status);
  }
  size_t BufferedMessages() override { return 0; }

 protected:
  // Starts the work for `request` (valid until Answer is called; copy what
  // outlives that). Must not block, and must lead to exactly one Answer(),
  // from any thread, possibly before Handle returns.
  virtual void Handle(const Request& request) = 0;

  // The answer to the request being handled: OK writes it, an error ends the
  // stream with it.
  void Answer(absl::StatusOr<Response> response) {
    {
      absl::MutexLock lock(&mu_);
      if (!finished_) {
        if (response.ok()) {
          response_ = *std::move(response);
          this->StartWrite(&response_);
        } else {
          FinishLocked(response.status());
        }
      }
    }
    Unref();
  }

  // Whether the stream has finished (its answers are no longer sent).
  bool finished() {
    absl::MutexLock lock(&mu_);
    return finished_;
  }

  ~RequestStream() override = default;

 private:
  void FinishLocked(const absl::Status& status)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (finished_) return;
    finished_ = true;
    this->Finish(ToGrpcStatus(status));
  }

  void Unref() {
    if (refs_.fetch_sub(1) != 1) return;
    registry_->Remove(this);
    delete this;
  }

  StreamRegistry* const registry_;
  const size_t max_request_bytes_;
  // gRPC holds one until OnDone; the request being handled holds another.
  std::atomic<int> refs_{1};
  Request request_;  // owned by the read in flight, then by Handle
  absl::Mutex mu_;
  Response response_ ABSL_GUARDED_BY(mu_);
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace jobwire

#endif  // JOBWIRE_SERVER_API_REQUEST_STREAM_H_
