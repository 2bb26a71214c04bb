// jobwire::sdk::Worker: runs registered handlers for the jobs jobwired
// assigns, over one WorkerService.Connect stream (docs/worker-protocol.md).
//
// Each assigned job runs its kind's Handler on a thread of its own (at most
// `slots` at once: the server never assigns more). The runtime reports
// progress, the result or the failure, heartbeats, acknowledges cancel and
// pause, and reconnects with backoff when the stream ends (a server restart
// or drain).
//
//   jobwire::sdk::Worker worker(&client, {.queues = {"images"}, .slots = 4});
//   worker.Handle("resize", [](jobwire::sdk::Task& task)
//                               -> absl::StatusOr<jobwire::v1::JobResult> {
//     task.Progress(1, 2, "downloading");
//     if (task.stopping()) return jobwire::v1::JobResult();  // cancelled...
//     return jobwire::v1::JobResult();
//   });
//   std::thread t([&] { worker.Run(); });  ...  worker.Stop(); t.join();
//
// A handler fails the attempt by returning an error status: retryable,
// unless made with PermanentFailure() (the job then ends FAILED). When the
// job is cancelled or paused while its handler runs, Task::stopping() turns
// true; whatever the handler then returns, the runtime acknowledges the
// stop and the job ends CANCELLED (or PAUSED). stopping() is also true when
// the attempt lost its lease (its reports would be refused; none are sent).
// When the server refuses a handler's outcome as invalid (a result over
// 1 MiB), the runtime fails the attempt with the refusal's message instead:
// the job is retried per its policy or ends FAILED.
//
// Thread-safe: Stop() from any thread; Handle() before Run().
#ifndef JOBWIRE_CLIENTS_CPP_WORKER_H_
#define JOBWIRE_CLIENTS_CPP_WORKER_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "clients/cpp/client.h"

namespace jobwire::sdk {

class Worker;

// A failed attempt that must not be retried: the job ends FAILED.
absl::Status PermanentFailure(absl::string_view message);
// A failed attempt recorded as `error`, with its code, message, structured
// details and retryable flag (a handler that ran a program records its exit
// status this way).
absl::Status JobFailure(const v1::JobError& error);

// Why Task::stopping() turned true.
enum class StopReason { kNone, kCancelled, kPaused, kLost };

// One attempt of one job, as its handler sees it.
class Task {
 public:
  const v1::Job& job() const { return job_; }
  int32_t attempt() const { return attempt_; }
  // Saved by an earlier attempt (SaveCheckpoint).
  const std::string& checkpoint() const { return checkpoint_; }

  bool stopping() const { return reason_.load() != StopReason::kNone; }
  StopReason stop_reason() const { return reason_.load(); }
  // Waits up to `timeout` for a stop; returns stopping().
  bool WaitForStop(absl::Duration timeout);

  // Reports progress (watchers see it live); `log` adds a log line.
  void Progress(int64_t done, int64_t total, const std::string& message = "",
                const std::string& log = "");
  // Adds `line` to the job's log events (with the last progress reported).
  void Log(const std::string& line);
  // Saves `data`; a later attempt of the job gets it as checkpoint().
  void SaveCheckpoint(const std::string& data);

 private:
  friend class Worker;
  Task(Worker* worker, const v1::Assign& assign);
  void Stop(StopReason reason, bool ack, bool lost);
  // Sends a progress report (and `log`, when not empty) unless lost.
  void Report(const v1::Progress& progress, const std::string& log);

  Worker* const worker_;
  const v1::Job job_;
  const int32_t attempt_;
  const std::string checkpoint_;
  std::atomic<StopReason> reason_{StopReason::kNone};
  std::atomic<bool> ack_{false};       // the stop wants an ack
  std::atomic<bool> lost_{false};      // no report would be taken
  std::atomic<bool> reported_{false};  // the handler's outcome is (being) sent
  absl::Mutex mu_;
  v1::Progress progress_ ABSL_GUARDED_BY(mu_);  // the last reported
};

using Handler = std::function<absl::StatusOr<v1::JobResult>(Task&)>;

class Worker {
 public:
  struct Options {
    std::vector<std::string> queues = {"default"};
    // A queue's weight in the server's fair choice among `queues` (absent
    // or 0: the server's default).
    std::map<std::string, int32_t> queue_weights;
    int slots = 1;
    std::string worker_id;                     // default host:pid
    absl::Duration grace = absl::Seconds(30);  // Stop() waits this long
    // For a log of the connection's course (may be empty): the server
    // welcomed a session, and a session ended (`why`) with the pause before
    // the next attempt.
    std::function<void(const std::string& session_id)> on_connected;
    std::function<void(const absl::Status& why, absl::Duration pause)>
        on_disconnected;
  };

  // `client` must outlive the Worker.
  Worker(Client* client, Options options);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  void Handle(const std::string& kind, Handler handler);
  // Runs every kind that has no handler of its own; with it the worker
  // takes jobs of any kind.
  void HandleAny(Handler handler);

  // Serves until Stop(): connects, runs jobs, reconnects on breaks. Returns
  // OK after Stop() once every handler has returned, or the error for
  // which the server refused the worker (INVALID_ARGUMENT, UNAUTHENTICATED).
  absl::Status Run();
  // Takes no new jobs, gives running ones up to Options::grace, then closes
  // the stream once their reports are answered (handlers still running
  // then see stopping(), as kLost, and their reports are not sent). Ends a
  // pause between reconnects at once. Returns at once.
  void Stop();

 private:
  friend class Task;
  struct Session;

  // One session; `*welcomed` tells whether the server welcomed it.
  absl::Status ServeOnce(bool* welcomed);
  void Control(Session* session);
  void Start(const v1::Assign& assign);
  // Joins every handler thread.
  void JoinAll();
  void StopTask(const std::string& id, int32_t attempt, StopReason reason,
                bool ack, bool lost);
  void RunTask(std::shared_ptr<Task> task);
  // A `rejected` report: a stale attempt stops its task; a refused outcome
  // (INVALID_ARGUMENT, e.g. a result over 1 MiB) is answered with a
  // retryable `fail` carrying the refusal's message, so the job never stays
  // RUNNING on heartbeats (docs/worker-protocol.md).
  void OnRejected(const v1::Rejected& rejected);
  v1::ConnectRequest Outcome(Task& task);
  // Writes to the current stream; dropped when there is none.
  void Send(const v1::ConnectRequest& request);

  Client* const client_;
  const Options options_;
  std::map<std::string, Handler> handlers_;
  Handler any_;  // HandleAny

  absl::Mutex mu_;
  std::map<std::string, std::shared_ptr<Task>> active_ ABSL_GUARDED_BY(mu_);
  // Handler threads by a key of their own; `finished_` lists the keys of
  // those whose task is done, joined at the next Start (or JoinAll).
  std::map<uint64_t, std::thread> threads_ ABSL_GUARDED_BY(mu_);
  std::vector<uint64_t> finished_ ABSL_GUARDED_BY(mu_);
  uint64_t next_thread_ ABSL_GUARDED_BY(mu_) = 0;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;

  absl::Mutex write_mu_;  // one writer at a time on the stream
  // The stream Send() writes to; set and cleared by ServeOnce().
  Session* session_ ABSL_GUARDED_BY(write_mu_) = nullptr;
};

}  // namespace jobwire::sdk

#endif  // JOBWIRE_CLIENTS_CPP_WORKER_H_
