#include "server/api/worker_test_util.h"

#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/notification.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "gtest/gtest.h"

namespace jobwire::test {

std::optional<absl::Duration> RetryDelayOf(const grpc::Status& status) {
  google::rpc::Status rich;
  if (!rich.ParseFromString(status.error_details())) return std::nullopt;
  for (const auto& any : rich.details()) {
    google::rpc::RetryInfo info;
    if (any.UnpackTo(&info)) {
      return absl::Seconds(info.retry_delay().seconds()) +
             absl::Nanoseconds(info.retry_delay().nanos());
    }
  }
  return std::nullopt;
}

std::vector<std::string> BadRequestFieldsOf(const grpc::Status& status) {
  std::vector<std::string> fields;
  google::rpc::Status rich;
  if (!rich.ParseFromString(status.error_details())) return fields;
  for (const auto& any : rich.details()) {
    google::rpc::BadRequest bad;
    if (!any.UnpackTo(&bad)) continue;
    for (const auto& v : bad.field_violations()) fields.push_back(v.field());
  }
  return fields;
}

std::string SubmitBlocking(JobStore& store, Job job) {
  if (job.kind.empty()) job.kind = "k";
  absl::Notification done;
  std::string id;
  store.Submit({NewJob{std::move(job)}},
               [&](absl::StatusOr<std::vector<SubmitOutcome>> r) {
                 EXPECT_TRUE(r.ok()) << r.status();
                 if (r.ok()) id = (*r)[0].job.id;
                 done.Notify();
               });
  done.WaitForNotification();
  return id;
}

TestWorker::TestWorker(const std::shared_ptr<grpc::Channel>& channel,
                       const std::string& worker_id,
                       const std::vector<std::string>& queues, int slots,
                       const std::vector<std::string>& kinds)
    : stub_(v1::WorkerService::NewStub(channel)) {
  stream_ = stub_->Connect(&context_);
  v1::ConnectRequest hello;
  v1::Hello* h = hello.mutable_hello();
  h->set_worker_id(worker_id);
  for (const std::string& q : queues) {
    std::pair<std::string, std::string> parts =
        absl::StrSplit(q, absl::MaxSplits(':', 1));
    v1::WorkerQueue* wq = h->add_queues();
    wq->set_name(parts.first);
    int weight = 0;
    if (absl::SimpleAtoi(parts.second, &weight)) wq->set_weight(weight);
  }
  for (const std::string& k : kinds) h->add_kinds(k);
  h->set_slots(slots);
  Send(hello);
  reader_ = std::thread([this] {
    v1::ConnectResponse msg;
    while (stream_->Read(&msg)) {
      absl::MutexLock lock(&mu_);
      inbox_.push_back(msg);
    }
    grpc::Status status = stream_->Finish();
    absl::MutexLock lock(&mu_);
    status_ = status;
    ended_ = true;
  });
}

TestWorker::~TestWorker() {
  Kill();
  reader_.join();
}

std::optional<v1::ConnectResponse> TestWorker::Next(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  auto ready = [this] {
    mu_.AssertReaderHeld();
    return !inbox_.empty() || ended_;
  };
  mu_.AwaitWithTimeout(absl::Condition(&ready), timeout);
  if (inbox_.empty()) return std::nullopt;
  v1::ConnectResponse msg = std::move(inbox_.front());
  inbox_.pop_front();
  return msg;
}

std::optional<v1::ConnectResponse> TestWorker::NextOf(
    v1::ConnectResponse::KindCase kind, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  for (;;) {
    std::optional<v1::ConnectResponse> msg = Next(deadline - absl::Now());
    if (!msg.has_value() || msg->kind_case() == kind) return msg;
  }
}

bool TestWorker::Send(const v1::ConnectRequest& msg) {
  absl::MutexLock lock(&write_mu_);
  return stream_->Write(msg);
}

void TestWorker::Complete(const std::string& job_id, int32_t attempt) {
  v1::ConnectRequest msg;
  msg.mutable_complete()->set_job_id(job_id);
  msg.mutable_complete()->set_attempt(attempt);
  Send(msg);
}

void TestWorker::Fail(const std::string& job_id, int32_t attempt,
                      const std::string& message, bool retryable) {
  v1::ConnectRequest msg;
  msg.mutable_fail()->set_job_id(job_id);
  msg.mutable_fail()->set_attempt(attempt);
  msg.mutable_fail()->mutable_error()->set_message(message);
  msg.mutable_fail()->set_retryable(retryable);
  Send(msg);
}

void TestWorker::Ack(const std::string& job_id, int32_t attempt) {
  v1::ConnectRequest msg;
  msg.mutable_ack()->set_job_id(job_id);
  msg.mutable_ack()->set_attempt(attempt);
  msg.mutable_ack()->set_stopped(true);
  Send(msg);
}

void TestWorker::Kill() { context_.TryCancel(); }

grpc::Status TestWorker::Close() {
  {
    absl::MutexLock lock(&write_mu_);
    stream_->WritesDone();
  }
  return AwaitEnd();
}

grpc::Status TestWorker::AwaitEnd() {
  absl::MutexLock lock(&mu_);
  mu_.AwaitWithTimeout(absl::Condition(&ended_), absl::Seconds(20));
  return status_;
}

void EventRecorder::OnCommit(const std::vector<JobEvent>& events) {
  absl::MutexLock lock(&mu_);
  events_.insert(events_.end(), events.begin(), events.end());
}

bool EventRecorder::WaitFor(
    const std::function<bool(const std::vector<JobEvent>&)>& pred,
    absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  auto holds = [&] {
    mu_.AssertReaderHeld();
    return pred(events_);
  };
  return mu_.AwaitWithTimeout(absl::Condition(&holds), timeout);
}

bool EventRecorder::WaitForState(const std::string& job_id, JobState to,
                                 absl::Duration timeout) {
  return WaitFor(
      [&](const std::vector<JobEvent>& events) {
        for (const JobEvent& e : events) {
          if (e.job_id == job_id && e.type == EventType::kStateChanged &&
              e.to == to) {
            return true;
          }
        }
        return false;
      },
      timeout);
}

std::optional<std::string> EventRecorder::WaitForTransition(
    const std::string& job_id, JobState from, JobState to,
    absl::Duration timeout) {
  std::optional<std::string> reason;
  WaitFor(
      [&](const std::vector<JobEvent>& events) {
        for (const JobEvent& e : events) {
          if (e.job_id == job_id && e.type == EventType::kStateChanged &&
              e.from == from && e.to == to) {
            reason = e.reason;
            return true;
          }
        }
        return false;
      },
      timeout);
  return reason;
}

int EventRecorder::CountState(const std::string& job_id, JobState to) {
  absl::MutexLock lock(&mu_);
  int n = 0;
  for (const JobEvent& e : events_) {
    if (e.job_id == job_id && e.type == EventType::kStateChanged &&
        e.to == to) {
      ++n;
    }
  }
  return n;
}

std::vector<JobEvent> EventRecorder::Events() {
  absl::MutexLock lock(&mu_);
  return events_;
}

}  // namespace jobwire::test
