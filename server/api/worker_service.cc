#include "server/api/worker_service.h"

#include <atomic>
#include <cstddef>
#include <deque>
#include <memory>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "google/protobuf/arena.h"
#include "server/api/convert.h"
#include "server/api/inline_arena.h"
#include "server/api/unary_methods.h"
#include "server/api/write_coalescing.h"
#include "server/common/errors.h"
#include "server/common/logging.h"
#include "server/core/validation.h"
#include "server/transport/grpc_status.h"

namespace jobwire {
namespace {

namespace v1 = ::jobwire::v1;

// Reports in flight per session before the stream stops reading (bounds the
// memory a fast worker can make the server hold).
constexpr int kMaxReportsInFlight = 4096;

// Bytes of a queued message's inline arena block. An `assign` of a job
// without args, labels or payload takes ~800 bytes of it (plus the arena's
// own bookkeeping; 1024 spilled into a second block), so building and
// freeing it costs one allocation instead of one per submessage and string.
// Bigger jobs spill into blocks the arena allocates.
constexpr size_t kInlineArenaBytes = 1536;

// One queued message on its own arena whose first block is inline. Not
// movable; queued by unique_ptr. An `assign` is made by AssignProtoEncoder
// outside the dispatcher's lock and handed back to the session as an
// EncodedAssign.
class Outgoing final : public EncodedAssign {
 public:
  Outgoing()
      : msg_(google::protobuf::Arena::CreateMessage<v1::ConnectResponse>(
            arena_.get())) {}
  Outgoing(const Outgoing&) = delete;
  Outgoing& operator=(const Outgoing&) = delete;

  v1::ConnectResponse& msg() { return *msg_; }

 private:
  InlineArena<kInlineArenaBytes> arena_;
  v1::ConnectResponse* const msg_;
};

// Builds `assign` messages: JobToProto parses the job's args JSON, the bulk
// of an assign's CPU, so this runs outside the dispatcher's lock.
class AssignProtoEncoder final : public AssignEncoder {
 public:
  std::unique_ptr<EncodedAssign> Encode(
      const Job& job, absl::Time lease_deadline) const override {
    auto out = std::make_unique<Outgoing>();
    v1::Assign* a = out->msg().mutable_assign();
    JobToProto(job, a->mutable_job());
    a->set_attempt(job.attempt);
    TimeToProto(lease_deadline, a->mutable_lease_deadline());
    if (!job.checkpoint.empty()) a->set_checkpoint(job.checkpoint);
    return out;
  }

  // Shared by every session; never destroyed (the dispatcher may encode
  // after the service is gone).
  static const AssignProtoEncoder& Get() {
    static const auto* const encoder = new AssignProtoEncoder();
    return *encoder;
  }
};

WorkerHello FromProto(const v1::Hello& h) {
  WorkerHello out;
  out.worker_id = h.worker_id();
  for (const v1::WorkerQueue& q : h.queues()) {
    out.queues.push_back({q.name(), q.weight()});
  }
  out.kinds.assign(h.kinds().begin(), h.kinds().end());
  out.slots = h.slots();
  return out;
}

}  // namespace

// One worker session. Lifetime: held once by gRPC until OnDone and once per
// store callback in flight; deleted when the last hold goes.
class WorkerSessionReactor final
    : public grpc::ServerBidiReactor<v1::ConnectRequest, v1::ConnectResponse>,
      public WorkerConnection {
 public:
  WorkerSessionReactor(WorkerServiceImpl* service, bool refuse)
      : service_(service) {
    if (refuse) {
      FinishOnce(ShuttingDownError());
      return;
    }
    service_->Register(this);
    registered_ = true;
    StartRead(&request_);
  }

  // --- WorkerConnection (called with the dispatcher's lock held) ---
  const AssignEncoder& assign_encoder() const override {
    return AssignProtoEncoder::Get();
  }
  void SendAssign(std::unique_ptr<EncodedAssign> assign) override {
    // Made by assign_encoder(): an Outgoing.
    Send(std::unique_ptr<Outgoing>(static_cast<Outgoing*>(assign.release())));
  }
  void SendCancel(const std::string& job_id, int32_t attempt,
                  const std::string& reason) override {
    auto out = std::make_unique<Outgoing>();
    v1::CancelAssignment* c = out->msg().mutable_cancel();
    c->set_job_id(job_id);
    c->set_attempt(attempt);
    c->set_reason(reason);
    Send(std::move(out));
  }
  void SendPause(const std::string& job_id, int32_t attempt) override {
    auto out = std::make_unique<Outgoing>();
    out->msg().mutable_pause()->set_job_id(job_id);
    out->msg().mutable_pause()->set_attempt(attempt);
    Send(std::move(out));
  }
  void SendDrain(absl::Time deadline) override {
    auto out = std::make_unique<Outgoing>();
    TimeToProto(deadline, out->msg().mutable_drain()->mutable_deadline());
    Send(std::move(out));
  }
  void EndSession() override { FinishOnce(ShuttingDownError()); }

  // Finishes the stream once, after the queued messages are written. Every
  // end of the stream comes here, so its status goes out through
  // ToGrpcStatus with its details (RetryInfo, BadRequest).
  void FinishOnce(const absl::Status& status) {
    grpc::Status converted = ToGrpcStatus(status);  // outside the lock
    absl::MutexLock lock(&mu_);
    if (finish_requested_) return;
    finish_requested_ = true;
    finish_status_ = std::move(converted);
    if (!writing_) {
      outbox_.clear();
      Finish(finish_status_);
    }
  }

  // --- Reactions ---
  void OnReadDone(bool ok) override {
    if (!ok) {
      // The worker closed its side or the stream broke. Its leases go now;
      // the stream ends once every report it sent has been answered (made
      // durable, or `rejected` sent), so a worker that closes right after
      // `complete` learns of a failure before the OK.
      CloseSession();
      bool answered;
      {
        absl::MutexLock lock(&mu_);
        half_closed_ = true;
        answered = in_flight_ == 0;
      }
      if (answered) FinishOnce(absl::OkStatus());
      return;
    }
    if (session_.load() != 0) dispatcher()->Touch(session_.load());
    absl::Status size =
        CheckRequestBytes(request_, service_->max_request_bytes_);
    if (size.ok()) {
      Handle(request_);
    } else if (const auto [job_id, attempt] = ReportedAttempt(request_);
               !job_id.empty()) {
      Reject(job_id, attempt, std::move(size));
    } else {
      FinishOnce(size);
    }
    request_.Clear();
    absl::MutexLock lock(&mu_);
    if (finish_requested_) return;
    if (in_flight_ >= kMaxReportsInFlight) {
      read_paused_ = true;
    } else {
      StartRead(&request_);
    }
  }

  void OnWriteDone(bool ok) override {
    std::unique_ptr<Outgoing> written;  // freed after the lock is released
    absl::MutexLock lock(&mu_);
    written = std::move(current_);
    writing_ = false;
    if (!ok) outbox_.clear();
    if (finish_requested_ && (outbox_.empty() || !ok)) {
      outbox_.clear();
      Finish(finish_status_);
      return;
    }
    WriteNextLocked();
  }

  void OnCancel() override {
    CloseSession();
    FinishOnce(absl::CancelledError("stream cancelled"));
  }

  void OnDone() override {
    CloseSession();
    if (registered_) service_->Unregister(this);
    Unref();
  }

 private:
  Dispatcher* dispatcher() const { return service_->dispatcher_; }

  void Ref() { refs_.fetch_add(1, std::memory_order_relaxed); }
  void Unref() {
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }

  void CloseSession() {
    {
      absl::MutexLock lock(&mu_);
      session_closed_ = true;
    }
    const int64_t session = session_.load();
    if (session != 0) dispatcher()->CloseSession(session);
  }

  void Send(std::unique_ptr<Outgoing> msg) {
    absl::MutexLock lock(&mu_);
    if (finish_requested_) return;
    outbox_.push_back(std::move(msg));
    // Nothing goes out before the welcome.
    if (welcomed_) WriteNextLocked();
  }

  void WriteNextLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (writing_ || outbox_.empty()) return;
    writing_ = true;
    current_ = std::move(outbox_.front());
    outbox_.pop_front();
    // A burst leaves in one socket write (server/api/write_coalescing.h).
    const grpc::WriteOptions options = coalescer_.Next(!outbox_.empty());
    StartWrite(&current_->msg(), options);
  }

  // A report's outcome: a refusal goes back as `rejected`.
  StatusCallback Answer(const std::string& job_id, int32_t attempt) {
    Ref();
    {
      absl::MutexLock lock(&mu_);
      ++in_flight_;
    }
    return [this, job_id, attempt](absl::Status status) {
      if (!status.ok()) {
        // A refused report is worth an operator's eye: a worker that lost
        // its lease (frozen, partitioned) or a buggy one.
        JW_LOG(INFO) << "worker report refused: " << status;
        auto out = std::make_unique<Outgoing>();
        v1::Rejected* r = out->msg().mutable_rejected();
        r->set_job_id(job_id);
        r->set_attempt(attempt);
        r->set_code(static_cast<int32_t>(status.code()));
        r->set_message(std::string(status.message()));
        Send(std::move(out));
      }
      bool all_answered = false;
      {
        absl::MutexLock lock(&mu_);
        --in_flight_;
        all_answered = half_closed_ && in_flight_ == 0;
        if (read_paused_ && !finish_requested_ && !half_closed_ &&
            in_flight_ < kMaxReportsInFlight / 2) {
          read_paused_ = false;
          StartRead(&request_);
        }
      }
      if (all_answered) FinishOnce(absl::OkStatus());
      Unref();
    };
  }

  // The job and attempt a report names; "" for other messages.
  static std::pair<std::string, int32_t> ReportedAttempt(
      const v1::ConnectRequest& r) {
    switch (r.kind_case()) {
      case v1::ConnectRequest::kProgress:
        return {r.progress().job_id(), r.progress().attempt()};
      case v1::ConnectRequest::kComplete:
        return {r.complete().job_id(), r.complete().attempt()};
      case v1::ConnectRequest::kFail:
        return {r.fail().job_id(), r.fail().attempt()};
      case v1::ConnectRequest::kCheckpoint:
        return {r.checkpoint().job_id(), r.checkpoint().attempt()};
      case v1::ConnectRequest::kAck:
        return {r.ack().job_id(), r.ack().attempt()};
      default:
        return {"", 0};
    }
  }

  void Reject(const std::string& job_id, int32_t attempt, absl::Status s) {
    Answer(job_id, attempt)(std::move(s));
  }

  // Conversions are those of convert.h; a report whose Struct fields JSON
  // cannot hold (NaN numbers) is rejected with INVALID_ARGUMENT before it
  // reaches the dispatcher.
  void Handle(const v1::ConnectRequest& req) {
    if (req.kind_case() == v1::ConnectRequest::kHello) {
      OnHello(req.hello());
      return;
    }
    const int64_t session = session_.load();
    if (session == 0) {
      FinishOnce(
          InvalidArgumentError("hello", "the first message must be hello"));
      return;
    }
    switch (req.kind_case()) {
      case v1::ConnectRequest::kReady:
        dispatcher()->AddSlots(session, req.ready().slots());
        break;
      case v1::ConnectRequest::kProgress: {
        const v1::ReportProgress& p = req.progress();
        absl::StatusOr<Progress> progress =
            ProgressFromProto(p.progress(), "progress.progress");
        if (progress.ok() && p.log().size() > kMaxLogLineBytes) {
          progress = InvalidArgumentError(
              "progress.log",
              absl::StrCat("is ", p.log().size(), " bytes; at most ",
                           kMaxLogLineBytes));
        }
        if (!progress.ok()) {
          Reject(p.job_id(), p.attempt(), progress.status());
          break;
        }
        dispatcher()->ReportProgress(session, p.job_id(), p.attempt(),
                                     *progress, p.log(),
                                     Answer(p.job_id(), p.attempt()));
        break;
      }
      case v1::ConnectRequest::kComplete: {
        const v1::Complete& c = req.complete();
        absl::StatusOr<JobResult> result =
            ResultFromProto(c.result(), "complete.result");
        if (!result.ok()) {
          Reject(c.job_id(), c.attempt(), result.status());
          break;
        }
        dispatcher()->Complete(session, c.job_id(), c.attempt(), *result,
                               Answer(c.job_id(), c.attempt()));
        break;
      }
      case v1::ConnectRequest::kFail: {
        const v1::Fail& f = req.fail();
        absl::StatusOr<JobError> error =
            ErrorFromProto(f.error(), "fail.error");
        if (!error.ok()) {
          Reject(f.job_id(), f.attempt(), error.status());
          break;
        }
        // Fail.retryable decides, not error.retryable; an error without a
        // code is recorded as UNKNOWN (2).
        if (error->code == 0) error->code = 2;
        error->retryable = f.retryable();
        dispatcher()->Fail(session, f.job_id(), f.attempt(), *error,
                           Answer(f.job_id(), f.attempt()));
        break;
      }
      case v1::ConnectRequest::kCheckpoint: {
        const v1::Checkpoint& c = req.checkpoint();
        if (c.data().size() > kMaxCheckpointBytes) {
          Reject(c.job_id(), c.attempt(),
                 InvalidArgumentError(
                     "checkpoint.data",
                     absl::StrCat("is ", c.data().size(), " bytes; at most ",
                                  kMaxCheckpointBytes)));
          break;
        }
        dispatcher()->Checkpoint(session, c.job_id(), c.attempt(), c.data(),
                                 c.release(), Answer(c.job_id(), c.attempt()));
        break;
      }
      case v1::ConnectRequest::kAck: {
        const v1::Ack& a = req.ack();
        dispatcher()->Ack(session, a.job_id(), a.attempt(), a.stopped(),
                          Answer(a.job_id(), a.attempt()));
        break;
      }
      case v1::ConnectRequest::kHeartbeat:
        break;  // Touch above renewed the leases.
      default:
        Reject("", 0,
               absl::InvalidArgumentError("empty or unknown message kind"));
        break;
    }
  }

  void OnHello(const v1::Hello& hello) {
    if (session_.load() != 0) {
      FinishOnce(InvalidArgumentError("hello", "sent twice"));
      return;
    }
    absl::StatusOr<int64_t> session =
        dispatcher()->AddSession(FromProto(hello), this);
    if (!session.ok()) {
      FinishOnce(session.status());
      return;
    }
    bool closed;
    {
      absl::MutexLock lock(&mu_);
      session_.store(*session);
      closed = session_closed_;
    }
    if (closed) {  // cancelled while the hello was handled
      dispatcher()->CloseSession(*session);
      return;
    }
    auto msg = std::make_unique<Outgoing>();
    v1::Welcome* w = msg->msg().mutable_welcome();
    w->set_session_id(absl::StrCat("s", *session));
    const absl::Duration ttl = dispatcher()->lease_ttl();
    DurationToProto(ttl, w->mutable_lease_ttl());
    DurationToProto(ttl / 3, w->mutable_heartbeat_interval());
    // The dispatcher may queue an assign as soon as AddSession returned; the
    // welcome goes first, and Send holds messages back until it is queued.
    absl::MutexLock lock(&mu_);
    if (finish_requested_) return;
    outbox_.push_front(std::move(msg));
    welcomed_ = true;
    WriteNextLocked();
  }

  WorkerServiceImpl* const service_;
  bool registered_ = false;
  std::atomic<int> refs_{1};
  v1::ConnectRequest request_;

  absl::Mutex mu_;
  // Set once by the hello (read thread); read by store callbacks too.
  std::atomic<int64_t> session_{0};
  bool session_closed_ ABSL_GUARDED_BY(mu_) = false;
  std::deque<std::unique_ptr<Outgoing>> outbox_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<Outgoing> current_ ABSL_GUARDED_BY(mu_);  // being written
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  WriteCoalescer coalescer_ ABSL_GUARDED_BY(mu_);
  bool welcomed_ ABSL_GUARDED_BY(mu_) = false;
  bool finish_requested_ ABSL_GUARDED_BY(mu_) = false;
  grpc::Status finish_status_ ABSL_GUARDED_BY(mu_);
  int in_flight_ ABSL_GUARDED_BY(mu_) = 0;
  bool read_paused_ ABSL_GUARDED_BY(mu_) = false;
  bool half_closed_ ABSL_GUARDED_BY(mu_) = false;  // the worker's reads ended
};

WorkerServiceImpl::WorkerServiceImpl(Dispatcher* dispatcher,
                                     size_t max_request_bytes)
    : dispatcher_(dispatcher), max_request_bytes_(max_request_bytes) {}

WorkerServiceImpl::~WorkerServiceImpl() = default;

grpc::ServerBidiReactor<v1::ConnectRequest, v1::ConnectResponse>*
WorkerServiceImpl::Connect(grpc::CallbackServerContext* context) {
  bool refuse;
  {
    absl::MutexLock lock(&mu_);
    refuse = shutting_down_;
  }
  return new WorkerSessionReactor(this, refuse);
}

void WorkerServiceImpl::Register(WorkerSessionReactor* reactor) {
  absl::MutexLock lock(&mu_);
  reactors_.insert(reactor);
}

void WorkerServiceImpl::Unregister(WorkerSessionReactor* reactor) {
  absl::MutexLock lock(&mu_);
  reactors_.erase(reactor);
}

int WorkerServiceImpl::SessionCount() {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(reactors_.size());
}

void WorkerServiceImpl::Shutdown(absl::Time deadline) {
  {
    absl::MutexLock lock(&mu_);
    if (shutting_down_) return;
    shutting_down_ = true;
  }
  dispatcher_->Drain(deadline);
}

}  // namespace jobwire
