#include "clients/cpp/worker.h"

#include <unistd.h>

#include <algorithm>
#include <optional>
#include <utility>

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"

namespace jobwire::sdk {
namespace {

constexpr char kPermanentPayload[] = "jobwire.dev/permanent-failure";
// The most of a refusal's message a fail carries (a fail's error may hold
// 64 KiB; the server's refusals are one line).
constexpr size_t kMaxRefusalBytes = 4096;
constexpr char kJobErrorPayload[] = "type.googleapis.com/jobwire.v1.JobError";

std::string Key(const std::string& id, int32_t attempt) {
  return absl::StrCat(id, "/", attempt);
}

std::string DefaultWorkerId() {
  char host[256] = {};
  ::gethostname(host, sizeof(host) - 1);
  return absl::StrCat(host, ":", ::getpid());
}

}  // namespace

absl::Status PermanentFailure(absl::string_view message) {
  absl::Status s = absl::FailedPreconditionError(message);
  s.SetPayload(kPermanentPayload, absl::Cord("1"));
  return s;
}

absl::Status JobFailure(const v1::JobError& error) {
  absl::Status s(absl::StatusCode::kAborted, error.message());
  s.SetPayload(kJobErrorPayload, absl::Cord(error.SerializeAsString()));
  return s;
}

// One Connect stream. `ended` is set (under Worker::mu_) when its reads end.
struct Worker::Session {
  std::unique_ptr<grpc::ClientContext> context;
  std::unique_ptr<
      grpc::ClientReaderWriter<v1::ConnectRequest, v1::ConnectResponse>>
      stream;
  absl::Duration heartbeat = absl::Seconds(1);
  bool ended = false;          // guarded by Worker::mu_
  bool writes_closed = false;  // guarded by Worker::write_mu_
};

Task::Task(Worker* worker, const v1::Assign& assign)
    : worker_(worker),
      job_(assign.job()),
      attempt_(assign.attempt()),
      checkpoint_(assign.checkpoint()) {}

bool Task::WaitForStop(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  mu_.AwaitWithTimeout(absl::Condition(
                           +[](std::atomic<StopReason>* r) {
                             return r->load() != StopReason::kNone;
                           },
                           &reason_),
                       timeout);
  return stopping();
}

void Task::Stop(StopReason reason, bool ack, bool lost) {
  absl::MutexLock lock(&mu_);
  if (ack) ack_ = true;
  if (lost) lost_ = true;
  StopReason none = StopReason::kNone;
  reason_.compare_exchange_strong(none, reason);
}

void Task::Progress(int64_t done, int64_t total, const std::string& message,
                    const std::string& log) {
  v1::Progress progress;
  progress.set_done(done);
  progress.set_total(total);
  progress.set_message(message);
  {
    absl::MutexLock lock(&mu_);
    progress_ = progress;
  }
  Report(progress, log);
}

void Task::Log(const std::string& line) {
  v1::Progress progress;
  {
    // A report carries progress: the last one, so a log line moves no bar.
    absl::MutexLock lock(&mu_);
    progress = progress_;
  }
  Report(progress, line);
}

void Task::Report(const v1::Progress& progress, const std::string& log) {
  if (lost_.load()) return;
  v1::ConnectRequest request;
  v1::ReportProgress* p = request.mutable_progress();
  p->set_job_id(job_.id());
  p->set_attempt(attempt_);
  *p->mutable_progress() = progress;
  p->set_log(log);
  worker_->Send(request);
}

void Task::SaveCheckpoint(const std::string& data) {
  if (lost_.load()) return;
  v1::ConnectRequest request;
  v1::Checkpoint* c = request.mutable_checkpoint();
  c->set_job_id(job_.id());
  c->set_attempt(attempt_);
  c->set_data(data);
  worker_->Send(request);
}

Worker::Worker(Client* client, Options options)
    : client_(client), options_(std::move(options)) {}

Worker::~Worker() {
  Stop();
  JoinAll();
}

void Worker::Handle(const std::string& kind, Handler handler) {
  handlers_[kind] = std::move(handler);
}

void Worker::HandleAny(Handler handler) { any_ = std::move(handler); }

void Worker::Stop() {
  absl::MutexLock lock(&mu_);
  stop_ = true;
}

absl::Status Worker::Run() {
  if (handlers_.empty() && !any_)
    return absl::InvalidArgumentError("register a handler before Run()");
  absl::Duration backoff = absl::Milliseconds(100);
  absl::Status result = absl::OkStatus();
  for (;;) {
    {
      absl::MutexLock lock(&mu_);
      if (stop_) break;
    }
    bool welcomed = false;
    const absl::Status status = ServeOnce(&welcomed);
    {
      absl::MutexLock lock(&mu_);
      for (auto& [key, task] : active_)
        task->Stop(StopReason::kLost, false, true);
      if (stop_) break;
    }
    if (!status.ok() && status.code() != absl::StatusCode::kUnavailable &&
        status.code() != absl::StatusCode::kCancelled &&
        status.code() != absl::StatusCode::kInternal &&
        status.code() != absl::StatusCode::kUnknown) {
      result = status;
      break;
    }
    if (welcomed) backoff = absl::Milliseconds(100);
    if (options_.on_disconnected) options_.on_disconnected(status, backoff);
    // The pause ends early on Stop(), and once a server that was away is
    // back: waiting on the channel drives its connection attempts. (A
    // channel still connected leads to the server that ended the session:
    // that pause is whole.)
    const absl::Time end = absl::Now() + backoff;
    grpc::Channel* channel = client_->channel().get();
    const bool connected =
        channel->GetState(/*try_to_connect=*/false) == GRPC_CHANNEL_READY;
    for (;;) {
      const absl::Time step =
          std::min(end, absl::Now() + absl::Milliseconds(100));
      if (connected) {
        absl::MutexLock lock(&mu_);
        mu_.AwaitWithDeadline(absl::Condition(&stop_), step);
      } else if (channel->WaitForConnected(absl::ToChronoTime(step))) {
        break;
      }
      absl::MutexLock lock(&mu_);
      if (stop_ || absl::Now() >= end) break;
    }
    backoff = std::min(backoff * 2, absl::Seconds(5));
  }
  JoinAll();
  return result;
}

absl::Status Worker::ServeOnce(bool* welcomed) {
  Session session;
  session.context = client_->NewContext();
  session.stream = client_->worker_stub()->Connect(session.context.get());
  v1::ConnectRequest hello;
  v1::Hello* h = hello.mutable_hello();
  h->set_worker_id(options_.worker_id.empty() ? DefaultWorkerId()
                                              : options_.worker_id);
  for (const std::string& q : options_.queues) {
    v1::WorkerQueue* queue = h->add_queues();
    queue->set_name(q);
    auto weight = options_.queue_weights.find(q);
    if (weight != options_.queue_weights.end())
      queue->set_weight(weight->second);
  }
  if (!any_) {  // else no kinds: jobs of any kind
    for (const auto& [kind, handler] : handlers_) h->add_kinds(kind);
  }
  h->set_slots(options_.slots);
  session.stream->Write(hello);
  v1::ConnectResponse message;
  if (session.stream->Read(&message) && message.has_welcome()) {
    const auto& d = message.welcome().heartbeat_interval();
    const absl::Duration hb =
        absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
    if (hb > absl::ZeroDuration()) session.heartbeat = hb;
    *welcomed = true;
    if (options_.on_connected)
      options_.on_connected(message.welcome().session_id());
    {
      absl::MutexLock lock(&write_mu_);
      session_ = &session;
    }
    std::thread control([this, &session] { Control(&session); });
    while (session.stream->Read(&message)) {
      if (message.has_assign()) {
        Start(message.assign());
      } else if (message.has_cancel()) {
        const auto& c = message.cancel();
        const bool expired =
            c.reason() == "lease expired" || c.reason() == "attempt timeout";
        StopTask(c.job_id(), c.attempt(),
                 expired ? StopReason::kLost : StopReason::kCancelled, !expired,
                 expired);
      } else if (message.has_pause()) {
        StopTask(message.pause().job_id(), message.pause().attempt(),
                 StopReason::kPaused, true, false);
      } else if (message.has_rejected()) {
        OnRejected(message.rejected());
      }
      // drain: nothing new is assigned; the stream ends UNAVAILABLE later.
    }
    {
      absl::MutexLock lock(&mu_);
      session.ended = true;
    }
    control.join();
    absl::MutexLock lock(&write_mu_);
    session_ = nullptr;
  }
  return FromGrpc(session.stream->Finish());
}

// Heartbeats while the session lasts; after Stop(), no new jobs, the grace
// for running ones, then the stream's close.
void Worker::Control(Session* session) {
  absl::Time next_heartbeat = absl::Now() + session->heartbeat;
  bool draining = false;
  absl::Time drain_deadline;
  absl::MutexLock lock(&mu_);
  while (!session->ended) {
    if (stop_ && !draining) {
      draining = true;
      drain_deadline = absl::Now() + options_.grace;
      mu_.Unlock();
      v1::ConnectRequest ready;
      ready.mutable_ready()->set_slots(-options_.slots);
      Send(ready);
      mu_.Lock();
    }
    if (draining && (active_.empty() || absl::Now() >= drain_deadline)) {
      const bool running = !active_.empty();
      mu_.Unlock();
      {
        absl::MutexLock write_lock(&write_mu_);
        if (running) {
          session->context->TryCancel();  // jobs still running past the grace
        } else if (!session->writes_closed) {
          session->writes_closed = true;
          session->stream->WritesDone();  // the server ends the stream OK
        }
      }
      mu_.Lock();
      mu_.Await(absl::Condition(&session->ended));
      break;
    }
    const absl::Time wake =
        draining
            ? std::min(next_heartbeat, absl::Now() + absl::Milliseconds(20))
            : next_heartbeat;
    // Woken by the session's end, or at once by Stop().
    auto woken = [&] {
      mu_.AssertReaderHeld();
      return session->ended || (stop_ && !draining);
    };
    mu_.AwaitWithDeadline(absl::Condition(&woken), wake);
    if (!session->ended && absl::Now() >= next_heartbeat) {
      next_heartbeat = absl::Now() + session->heartbeat;
      mu_.Unlock();
      v1::ConnectRequest heartbeat;
      heartbeat.mutable_heartbeat();
      Send(heartbeat);
      mu_.Lock();
    }
  }
}

void Worker::Send(const v1::ConnectRequest& request) {
  absl::MutexLock lock(&write_mu_);
  if (session_ == nullptr || session_->writes_closed) return;
  session_->stream->Write(request);
}

void Worker::Start(const v1::Assign& assign) {
  auto task = std::shared_ptr<Task>(new Task(this, assign));
  // The threads of tasks that have finished are joined here, so that a
  // long-lived worker holds only the threads of what runs.
  std::vector<std::thread> finished;
  {
    absl::MutexLock lock(&mu_);
    for (uint64_t key : finished_) {
      auto it = threads_.find(key);
      finished.push_back(std::move(it->second));
      threads_.erase(it);
    }
    finished_.clear();
    active_[Key(task->job().id(), task->attempt())] = task;
    const uint64_t key = next_thread_++;
    threads_[key] = std::thread([this, task, key] {
      RunTask(task);
      absl::MutexLock lock(&mu_);
      finished_.push_back(key);
    });
  }
  for (std::thread& t : finished) t.join();
}

void Worker::JoinAll() {
  std::map<uint64_t, std::thread> threads;
  {
    absl::MutexLock lock(&mu_);
    threads.swap(threads_);
    finished_.clear();
  }
  for (auto& [key, t] : threads) t.join();
}

void Worker::StopTask(const std::string& id, int32_t attempt, StopReason reason,
                      bool ack, bool lost) {
  absl::MutexLock lock(&mu_);
  auto it = active_.find(Key(id, attempt));
  if (it != active_.end()) it->second->Stop(reason, ack, lost);
}

void Worker::OnRejected(const v1::Rejected& rejected) {
  // INVALID_ARGUMENT (a field over its limit) and RESOURCE_EXHAUSTED (the
  // message over the server's request limit) refuse the report only.
  if (rejected.code() !=
          static_cast<int32_t>(absl::StatusCode::kInvalidArgument) &&
      rejected.code() !=
          static_cast<int32_t>(absl::StatusCode::kResourceExhausted)) {
    // ABORTED, NOT_FOUND: the attempt is no longer this worker's.
    StopTask(rejected.job_id(), rejected.attempt(), StopReason::kLost, false,
             true);
    return;
  }
  {
    absl::MutexLock lock(&mu_);
    auto it = active_.find(Key(rejected.job_id(), rejected.attempt()));
    // A refused progress or checkpoint of a running handler changed nothing;
    // the handler goes on and reports its outcome.
    if (it != active_.end() && !it->second->reported_.load()) return;
  }
  // The handler's outcome (complete, fail, checkpoint) was refused: the
  // attempt would stay RUNNING while heartbeats renew its lease. Fail it
  // with the refusal, so the job is retried per its policy or ends FAILED.
  v1::ConnectRequest report;
  v1::Fail* f = report.mutable_fail();
  f->set_job_id(rejected.job_id());
  f->set_attempt(rejected.attempt());
  f->mutable_error()->set_code(rejected.code());
  f->mutable_error()->set_message(
      absl::StrCat("the server refused the worker's report: ",
                   rejected.message().substr(0, kMaxRefusalBytes)));
  f->mutable_error()->set_retryable(true);
  f->set_retryable(true);
  Send(report);
}

void Worker::RunTask(std::shared_ptr<Task> task) {
  v1::ConnectRequest report = Outcome(*task);
  task->reported_.store(true);
  if (!task->lost_.load()) {
    if (task->stopping() && task->ack_.load()) {
      report.Clear();
      v1::Ack* ack = report.mutable_ack();
      ack->set_job_id(task->job().id());
      ack->set_attempt(task->attempt());
      ack->set_stopped(true);
    }
    Send(report);
  }
  absl::MutexLock lock(&mu_);
  active_.erase(Key(task->job().id(), task->attempt()));
}

v1::ConnectRequest Worker::Outcome(Task& task) {
  v1::ConnectRequest report;
  auto fail = [&](const std::string& message, bool retryable) {
    v1::Fail* f = report.mutable_fail();
    f->set_job_id(task.job().id());
    f->set_attempt(task.attempt());
    f->mutable_error()->set_message(message);
    f->mutable_error()->set_retryable(retryable);
    f->set_retryable(retryable);
    return report;
  };
  auto it = handlers_.find(task.job().kind());
  const Handler* handler = it != handlers_.end() ? &it->second
                           : any_                ? &any_
                                                 : nullptr;
  if (handler == nullptr)
    return fail(absl::StrCat("no handler for kind \"", task.job().kind(), "\""),
                false);
  absl::StatusOr<v1::JobResult> result = (*handler)(task);
  if (!result.ok()) {
    if (absl::optional<absl::Cord> error =
            result.status().GetPayload(kJobErrorPayload)) {
      fail("", false);
      v1::JobError* e = report.mutable_fail()->mutable_error();
      if (e->ParseFromString(std::string(*error))) {
        report.mutable_fail()->set_retryable(e->retryable());
        return report;
      }
    }
    const bool permanent =
        result.status().GetPayload(kPermanentPayload).has_value();
    return fail(std::string(result.status().message()), !permanent);
  }
  v1::Complete* c = report.mutable_complete();
  c->set_job_id(task.job().id());
  c->set_attempt(task.attempt());
  *c->mutable_result() = *std::move(result);
  return report;
}

}  // namespace jobwire::sdk
