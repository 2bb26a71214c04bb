// Test helpers for worker sessions: a worker that speaks the protocol over a
// real stream, and a recorder of committed events. Test-only.
#ifndef JOBWIRE_SERVER_API_WORKER_TEST_UTIL_H_
#define JOBWIRE_SERVER_API_WORKER_TEST_UTIL_H_

#include <grpcpp/grpcpp.h>

#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "jobwire/v1/worker_service.grpc.pb.h"
#include "server/core/job.h"
#include "server/storage/job_store.h"

namespace jobwire::test {

// The details a status carries in its grpc-status-details-bin trailer, as a
// client decodes them: the RetryInfo delay (nullopt without one) and the
// fields BadRequest names.
std::optional<absl::Duration> RetryDelayOf(const grpc::Status& status);
std::vector<std::string> BadRequestFieldsOf(const grpc::Status& status);

// Submits `job` (kind "k" when empty) and waits for the commit; returns its
// id, or "" (with a test failure) when the store refused it.
std::string SubmitBlocking(JobStore& store, Job job);

// A worker process's stream, driven step by step by a test. Thread-safe.
class TestWorker {
 public:
  // Connects and sends a hello for `queues` ("name" or "name:weight").
  TestWorker(const std::shared_ptr<grpc::Channel>& channel,
             const std::string& worker_id,
             const std::vector<std::string>& queues, int slots,
             const std::vector<std::string>& kinds = {});
  ~TestWorker();

  // The next message from the server; nullopt when none came within
  // `timeout` (a bound against hangs, not a timing assumption) or the stream
  // ended.
  std::optional<v1::ConnectResponse> Next(
      absl::Duration timeout = absl::Seconds(20));
  // The next message of `kind`, skipping others (heartbeats).
  std::optional<v1::ConnectResponse> NextOf(
      v1::ConnectResponse::KindCase kind,
      absl::Duration timeout = absl::Seconds(20));

  bool Send(const v1::ConnectRequest& msg);
  void Complete(const std::string& job_id, int32_t attempt);
  void Fail(const std::string& job_id, int32_t attempt,
            const std::string& message, bool retryable);
  void Ack(const std::string& job_id, int32_t attempt);

  // Breaks the stream as a killed process would.
  void Kill();
  // Closes the worker's side and returns the server's final status.
  grpc::Status Close();
  // Waits for the stream's end and returns the server's status.
  grpc::Status AwaitEnd();

 private:
  grpc::ClientContext context_;
  std::unique_ptr<v1::WorkerService::Stub> stub_;
  std::unique_ptr<
      grpc::ClientReaderWriter<v1::ConnectRequest, v1::ConnectResponse>>
      stream_;
  std::thread reader_;
  absl::Mutex write_mu_;
  absl::Mutex mu_;
  std::deque<v1::ConnectResponse> inbox_ ABSL_GUARDED_BY(mu_);
  bool ended_ ABSL_GUARDED_BY(mu_) = false;
  grpc::Status status_ ABSL_GUARDED_BY(mu_);
};

// Records every committed event. Register it on the store.
class EventRecorder : public CommitListener {
 public:
  void OnCommit(const std::vector<JobEvent>& events) override;
  // Waits until `pred` holds for the events so far (bounded by `timeout`).
  bool WaitFor(const std::function<bool(const std::vector<JobEvent>&)>& pred,
               absl::Duration timeout = absl::Seconds(20));
  // Waits for a state change of `job_id` into `to`.
  bool WaitForState(const std::string& job_id, JobState to,
                    absl::Duration timeout = absl::Seconds(20));
  // Waits for a state change of `job_id` from `from` into `to` and returns
  // its reason; nullopt on timeout.
  std::optional<std::string> WaitForTransition(
      const std::string& job_id, JobState from, JobState to,
      absl::Duration timeout = absl::Seconds(20));
  // State changes of `job_id` into `to` so far.
  int CountState(const std::string& job_id, JobState to);
  std::vector<JobEvent> Events();

 private:
  absl::Mutex mu_;
  std::vector<JobEvent> events_ ABSL_GUARDED_BY(mu_);
};

}  // namespace jobwire::test

#endif  // JOBWIRE_SERVER_API_WORKER_TEST_UTIL_H_
