#include "server/api/health_service.h"

#include <atomic>
#include <utility>

#include "absl/status/status.h"
#include "server/api/unary_methods.h"
#include "server/common/errors.h"
#include "server/transport/grpc_status.h"

namespace jobwire {

using grpc::health::v1::HealthCheckRequest;
using grpc::health::v1::HealthCheckResponse;

// One Watch stream. Shaped like gRPC's own health watch: at most one write in
// flight, the newest status pending behind it, Finish exactly once (behind
// finished_), finish on cancel. Lifetime is a reference count: gRPC holds one
// reference until OnDone, and the service takes one while it notifies the
// reactor outside its lock.
class HealthServiceImpl::WatchReactor final
    : public grpc::ServerWriteReactor<HealthCheckResponse> {
 public:
  WatchReactor(HealthServiceImpl* service, std::string name)
      : service_(service), name_(std::move(name)) {}

  const std::string& name() const { return name_; }

  void Ref() { refs_.fetch_add(1, std::memory_order_relaxed); }
  void Unref() {
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }

  // Sends `status` (or keeps it as the next write if one is in flight).
  void Send(ServingStatus status) {
    {
      absl::MutexLock lock(&mu_);
      if (finished_) return;
      if (writing_) {
        pending_ = status;
        has_pending_ = true;
        return;
      }
      writing_ = true;
      response_.set_status(status);
    }
    StartWrite(&response_);
  }

  // Finishes the stream with `status` once the write in flight (if any) is
  // done.
  void FinishAfterWrites(grpc::Status status) {
    {
      absl::MutexLock lock(&mu_);
      if (finished_ || finish_requested_) return;
      finish_requested_ = true;
      if (writing_) {
        final_status_ = status;  // OnWriteDone finishes.
        return;
      }
      finished_ = true;
    }
    Finish(std::move(status));
  }

  void OnWriteDone(bool ok) override {
    enum class Next { kNothing, kWrite, kFinish } next = Next::kNothing;
    grpc::Status finish_with;
    {
      absl::MutexLock lock(&mu_);
      writing_ = false;
      if (finished_) return;
      if (!ok) {
        // The client went away; finish now rather than wait for OnCancel.
        finished_ = true;
        next = Next::kFinish;
        finish_with = ToGrpcStatus(absl::CancelledError("write failed"));
      } else if (has_pending_) {
        has_pending_ = false;
        writing_ = true;
        response_.set_status(pending_);
        next = Next::kWrite;
      } else if (finish_requested_) {
        finished_ = true;
        next = Next::kFinish;
        finish_with = final_status_;
      }
    }
    if (next == Next::kWrite) StartWrite(&response_);
    if (next == Next::kFinish) Finish(finish_with);
  }

  void OnCancel() override {
    {
      absl::MutexLock lock(&mu_);
      if (finished_) return;
      finished_ = true;
    }
    Finish(ToGrpcStatus(absl::CancelledError("cancelled by the client")));
  }

  void OnDone() override {
    // gRPC runs OnDone after OnCancel has returned, but orders the two
    // through its own (uninstrumented) executor. Taking mu_, which OnCancel
    // holds, makes that order one ThreadSanitizer sees too.
    { absl::MutexLock lock(&mu_); }
    service_->RemoveWatcher(this);
    Unref();
  }

 private:
  HealthServiceImpl* const service_;  // not owned; outlives every reactor
  const std::string name_;
  std::atomic<int> refs_{1};

  mutable absl::Mutex mu_;
  // Written under mu_ while !writing_; read by gRPC while writing_.
  HealthCheckResponse response_;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool has_pending_ ABSL_GUARDED_BY(mu_) = false;
  ServingStatus pending_ ABSL_GUARDED_BY(mu_) = HealthCheckResponse::UNKNOWN;
  bool finish_requested_ ABSL_GUARDED_BY(mu_) = false;
  grpc::Status final_status_ ABSL_GUARDED_BY(mu_);
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
};

namespace {

grpc::Status ShuttingDown() { return ToGrpcStatus(ShuttingDownError()); }

}  // namespace

HealthServiceImpl::HealthServiceImpl(const std::vector<std::string>& services,
                                     size_t max_request_bytes)
    : max_request_bytes_(max_request_bytes) {
  statuses_[""] = HealthCheckResponse::SERVING;
  for (const std::string& name : services) {
    statuses_[name] = HealthCheckResponse::SERVING;
  }
}

HealthServiceImpl::~HealthServiceImpl() = default;

HealthServiceImpl::ServingStatus HealthServiceImpl::StatusLocked(
    const std::string& service) const {
  auto it = statuses_.find(service);
  return it == statuses_.end() ? HealthCheckResponse::SERVICE_UNKNOWN
                               : it->second;
}

void HealthServiceImpl::SetServingStatus(const std::string& service,
                                         ServingStatus status) {
  std::vector<WatchReactor*> to_notify;
  {
    absl::MutexLock lock(&mu_);
    if (shut_down_) return;
    statuses_[service] = status;
    for (WatchReactor* w : watchers_) {
      if (w->name() != service) continue;
      w->Ref();
      to_notify.push_back(w);
    }
  }
  for (WatchReactor* w : to_notify) {
    w->Send(status);
    w->Unref();
  }
}

void HealthServiceImpl::Shutdown(absl::Time /*deadline*/) {
  std::vector<WatchReactor*> to_finish;
  {
    absl::MutexLock lock(&mu_);
    if (shut_down_) return;
    shut_down_ = true;
    for (auto& entry : statuses_)
      entry.second = HealthCheckResponse::NOT_SERVING;
    for (WatchReactor* w : watchers_) {
      w->Ref();
      to_finish.push_back(w);
    }
  }
  // Health has nothing to drain: watchers learn NOT_SERVING, then the stream
  // ends, well before the deadline.
  for (WatchReactor* w : to_finish) {
    w->Send(HealthCheckResponse::NOT_SERVING);
    w->FinishAfterWrites(ShuttingDown());
    w->Unref();
  }
}

int HealthServiceImpl::watchers() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(watchers_.size());
}

grpc::ServerUnaryReactor* HealthServiceImpl::Check(
    grpc::CallbackServerContext* context, const HealthCheckRequest* request,
    HealthCheckResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::Status size = CheckRequestBytes(*request, max_request_bytes_);
  if (!size.ok()) {
    reactor->Finish(ToGrpcStatus(size));
    return reactor;
  }
  ServingStatus status;
  {
    absl::MutexLock lock(&mu_);
    status = StatusLocked(request->service());
  }
  if (status == HealthCheckResponse::SERVICE_UNKNOWN) {
    reactor->Finish(ToGrpcStatus(
        absl::NotFoundError("unknown service \"" + request->service() + "\"")));
    return reactor;
  }
  response->set_status(status);
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerWriteReactor<HealthCheckResponse>* HealthServiceImpl::Watch(
    grpc::CallbackServerContext* /*context*/,
    const HealthCheckRequest* request) {
  absl::Status size = CheckRequestBytes(*request, max_request_bytes_);
  if (!size.ok()) return new FinishedWriter<HealthCheckResponse>(size);
  auto* reactor = new WatchReactor(this, request->service());
  ServingStatus status;
  bool shut_down;
  {
    absl::MutexLock lock(&mu_);
    status = StatusLocked(request->service());
    shut_down = shut_down_;
    watchers_.insert(reactor);
    reactor->Ref();  // held until the first Send below is started
  }
  reactor->Send(status);
  if (shut_down) reactor->FinishAfterWrites(ShuttingDown());
  reactor->Unref();
  return reactor;
}

void HealthServiceImpl::RemoveWatcher(WatchReactor* reactor) {
  absl::MutexLock lock(&mu_);
  watchers_.erase(reactor);
}

}  // namespace jobwire
