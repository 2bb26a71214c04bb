// `jobwire worker`: runs a shell command once per job it gets from the server.
//
//   jobwire worker --queue Q [--queue Q2:weight] [--kind K] [--slots N]
//                  [--grace 30s] [--worker-id ID] --exec 'COMMAND'
//
// COMMAND runs through /bin/sh -c with the job's args as JSON on stdin and
// JOBWIRE_JOB_ID / JOBWIRE_ATTEMPT in its environment. Stdout lines
// `progress DONE/TOTAL [message]` become progress reports; exit 0 completes
// the job (a last stdout line that is a JSON object becomes the result);
// any other exit fails the attempt (retryable) with the exit status or
// signal and the tail of stderr as the message (and in its details). Every
// other stdout line, and every stderr line (as "stderr: LINE"), becomes one
// of the job's `log` events: up to kMaxLogBytes an attempt, each line cut at
// kMaxLogLine. The worker prints a line to its stderr as each job starts
// and ends, with the duration and outcome. SIGTERM or SIGINT drains: no new
// jobs, running ones get up to
// --grace to finish, then they are stopped and failed as retryable.
// When the server goes away (its `drain`, or a broken stream) the worker
// finishes what it can by the server's deadline, then reconnects, with a
// pause that grows to kMaxReconnectPause, until a signal stops it.
// A cancel from the server stops the command (SIGTERM to its process group,
// SIGKILL after 5s) and acknowledges.

#include <fcntl.h>
#include <google/protobuf/util/json_util.h>
#include <grpcpp/grpcpp.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "clients/cli/cli.h"
#include "jobwire/v1/worker_service.grpc.pb.h"

extern char** environ;

namespace jobwire::cli {
namespace {

namespace v1 = ::jobwire::v1;

constexpr size_t kStderrTail = 2048;
// The command's output recorded as log events, per attempt, and per line.
constexpr size_t kMaxLogBytes = 64 * 1024;
constexpr size_t kMaxLogLine = 1024;

// One line on the worker's stderr; whole lines from concurrent jobs.
void Say(const std::string& line) {
  static absl::Mutex* mu = new absl::Mutex;
  absl::MutexLock lock(mu);
  std::cerr << "jobwire worker: " << line << std::endl;
}

// SIGTERM / SIGINT write a byte here; the main loop polls it. (A handler
// rather than sigwait: gRPC's threads exist before the command runs and do
// not block the signals.)
int g_signal_pipe[2] = {-1, -1};

extern "C" void OnDrainSignal(int) {
  const char byte = 1;
  ssize_t ignored = write(g_signal_pipe[1], &byte, 1);
  (void)ignored;
}
constexpr absl::Duration kKillGrace = absl::Seconds(5);
constexpr absl::Duration kFirstReconnectPause = absl::Milliseconds(250);
constexpr absl::Duration kMaxReconnectPause = absl::Seconds(5);

// Waits `pause`, or less once a server is back: while `channel` is not
// connected, the wait ends as soon as it is (waiting on the channel is what
// drives its connection attempts). A channel that is still connected leads
// to the server that just ended the session, so that wait is whole. False
// when a stop signal came meanwhile (it is consumed).
bool PauseBeforeReconnect(grpc::Channel* channel, absl::Duration pause) {
  const absl::Time end = absl::Now() + pause;
  const bool connected =
      channel->GetState(/*try_to_connect=*/false) == GRPC_CHANNEL_READY;
  for (;;) {
    const absl::Time now = absl::Now();
    const absl::Duration step = std::min(
        absl::Milliseconds(100), std::max(end - now, absl::ZeroDuration()));
    pollfd pfd{g_signal_pipe[0], POLLIN, 0};
    if (poll(&pfd, 1,
             connected ? static_cast<int>(absl::ToInt64Milliseconds(step))
                       : 0) > 0) {
      char byte;
      if (read(g_signal_pipe[0], &byte, 1) == 1) return false;
    }
    if (absl::Now() >= end) return true;
    if (!connected &&
        channel->WaitForConnected(absl::ToChronoTime(absl::Now() + step))) {
      return true;
    }
  }
}

struct Flags {
  std::vector<std::pair<std::string, int>> queues;
  std::vector<std::string> kinds;
  int slots = 1;
  absl::Duration grace = absl::Seconds(30);
  std::string exec;
  std::string worker_id;
};

// Checks the raw flag values and fills `f`. INVALID_ARGUMENT naming the flag.
absl::Status BuildFlags(const std::vector<std::string>& queues,
                        const std::vector<std::string>& kinds, int slots,
                        absl::Duration grace, const std::string& exec,
                        const std::string& worker_id, Flags* f) {
  for (const std::string& q : queues) {
    std::pair<std::string, std::string> parts =
        absl::StrSplit(q, absl::MaxSplits(':', 1));
    int weight = 0;
    if (!parts.second.empty() &&
        (!absl::SimpleAtoi(parts.second, &weight) || weight < 1)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--queue: bad weight in \"", q, "\" (want NAME:N, N >= 1)"));
    }
    f->queues.push_back({parts.first, weight});
  }
  f->kinds = kinds;
  if (slots < 1) return absl::InvalidArgumentError("--slots: must be >= 1");
  f->slots = slots;
  f->grace = grace;
  if (exec.empty()) return absl::InvalidArgumentError("--exec is required");
  f->exec = exec;
  f->worker_id = worker_id;
  if (f->worker_id.empty()) {
    char host[256] = {};
    gethostname(host, sizeof(host) - 1);
    f->worker_id = absl::StrCat(host, ":", getpid());
  }
  return absl::OkStatus();
}

// "SIGKILL" for 9: what people look up.
std::string SignalName(int signal) {
  const char* abbrev = sigabbrev_np(signal);
  return abbrev == nullptr ? absl::StrCat(signal) : absl::StrCat("SIG", abbrev);
}

// Parses "progress DONE/TOTAL [message]".
bool ParseProgressLine(absl::string_view line, v1::Progress* p) {
  if (!absl::ConsumePrefix(&line, "progress ")) return false;
  std::pair<absl::string_view, absl::string_view> parts =
      absl::StrSplit(line, absl::MaxSplits(' ', 1));
  std::pair<absl::string_view, absl::string_view> frac =
      absl::StrSplit(parts.first, absl::MaxSplits('/', 1));
  int64_t done = 0;
  int64_t total = 0;
  if (!absl::SimpleAtoi(frac.first, &done)) return false;
  if (!frac.second.empty() && !absl::SimpleAtoi(frac.second, &total)) {
    return false;
  }
  p->set_done(done);
  p->set_total(total);
  p->set_message(std::string(parts.second));
  return true;
}

class Worker;

// One job's child process.
class Run {
 public:
  Run(Worker* worker, v1::Assign assign)
      : worker_(worker), assign_(std::move(assign)) {}
  void Start() {
    thread_ = std::thread([this] { Main(); });
  }
  void Join() {
    if (thread_.joinable()) thread_.join();
  }
  // Stops the child (SIGTERM to its group, SIGKILL after kKillGrace).
  // `report`: how the attempt ends: "ack" (a cancel), "fail" or "none".
  void Stop(const std::string& report, const std::string& why) {
    absl::MutexLock lock(&mu_);
    if (!stop_report_.empty()) return;
    stop_report_ = report;
    stop_why_ = why;
    stop_at_ = absl::Now();
    if (pid_ > 0) kill(-pid_, SIGTERM);
  }
  bool finished() {
    absl::MutexLock lock(&mu_);
    return finished_;
  }
  const std::string& job_id() const { return assign_.job().id(); }
  int32_t attempt() const { return assign_.attempt(); }

 private:
  void Main();
  // Records `line` as a log event of the job, within kMaxLogBytes.
  void Log(std::string line);

  Worker* const worker_;
  v1::Progress progress_;    // the last reported: a log line repeats it
  size_t logged_bytes_ = 0;  // of log lines sent
  bool log_full_ = false;
  const v1::Assign assign_;
  std::thread thread_;
  absl::Mutex mu_;
  pid_t pid_ ABSL_GUARDED_BY(mu_) = 0;
  std::string stop_report_ ABSL_GUARDED_BY(mu_);
  std::string stop_why_ ABSL_GUARDED_BY(mu_);
  absl::Time stop_at_ ABSL_GUARDED_BY(mu_);
  bool killed_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
};

class Worker {
 public:
  Worker(Flags flags, std::shared_ptr<grpc::Channel> channel,
         std::unique_ptr<grpc::ClientContext> context)
      : flags_(std::move(flags)),
        channel_(std::move(channel)),
        context_(std::move(context)) {}

  // Runs the session until a drain ends it (OK) or the stream breaks.
  absl::Status Main();
  // After Main: whether a stop signal (rather than the server) ended the
  // session, and whether the server welcomed it at all.
  bool signalled() const { return signalled_; }
  bool welcomed() const { return welcomed_; }
  void Send(const v1::ConnectRequest& msg) {
    absl::MutexLock lock(&write_mu_);
    if (!writes_done_) stream_->Write(msg);
  }
  const std::string& exec() const { return flags_.exec; }

 private:
  void Reader();
  void Heartbeats(absl::Duration interval);
  void Drain(absl::Time deadline);
  void ReapFinishedLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const Flags flags_;
  const std::shared_ptr<grpc::Channel> channel_;
  const std::unique_ptr<grpc::ClientContext> context_;
  std::unique_ptr<
      grpc::ClientReaderWriter<v1::ConnectRequest, v1::ConnectResponse>>
      stream_;
  absl::Mutex write_mu_;
  bool writes_done_ ABSL_GUARDED_BY(write_mu_) = false;

  absl::Mutex mu_;
  std::map<std::pair<std::string, int32_t>, std::unique_ptr<Run>> runs_
      ABSL_GUARDED_BY(mu_);
  bool stream_ended_ ABSL_GUARDED_BY(mu_) = false;
  bool draining_ ABSL_GUARDED_BY(mu_) = false;
  absl::Time drain_deadline_ ABSL_GUARDED_BY(mu_) = absl::InfiniteFuture();
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  grpc::Status final_status_;
  bool signalled_ = false;  // only Main's thread
  bool welcomed_ = false;   // only Main's thread
};

void Run::Log(std::string line) {
  if (log_full_) return;
  if (line.size() > kMaxLogLine) {
    line.resize(kMaxLogLine);
    line += "...";
  }
  if (logged_bytes_ + line.size() > kMaxLogBytes) {
    log_full_ = true;
    line = absl::StrCat("(log limit of ", kMaxLogBytes / 1024,
                        " KiB reached: later output is not recorded)");
  }
  logged_bytes_ += line.size();
  v1::ConnectRequest msg;
  msg.mutable_progress()->set_job_id(job_id());
  msg.mutable_progress()->set_attempt(attempt());
  *msg.mutable_progress()->mutable_progress() = progress_;
  msg.mutable_progress()->set_log(std::move(line));
  worker_->Send(msg);
}

void Run::Main() {
  const absl::Time started = absl::Now();
  Say(absl::StrCat("job ", job_id(), " (", assign_.job().kind(), ") attempt ",
                   attempt(), " started"));
  int in[2], out[2], err[2];
  if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0 ||
      pipe2(err, O_CLOEXEC) != 0) {
    std::perror("jobwire worker: pipe");
    std::abort();  // out of file descriptors: nothing sensible is left
  }
  // Environment: ours plus the job's id and attempt, built before spawning.
  std::vector<std::string> env_strings;
  for (char** e = environ; *e != nullptr; ++e) {
    if (absl::StartsWith(*e, "JOBWIRE_JOB_ID=") ||
        absl::StartsWith(*e, "JOBWIRE_ATTEMPT=")) {
      continue;
    }
    env_strings.emplace_back(*e);
  }
  env_strings.push_back(absl::StrCat("JOBWIRE_JOB_ID=", assign_.job().id()));
  env_strings.push_back(absl::StrCat("JOBWIRE_ATTEMPT=", assign_.attempt()));
  std::vector<char*> envp;
  for (std::string& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, in[0], 0);
  posix_spawn_file_actions_adddup2(&actions, out[1], 1);
  posix_spawn_file_actions_adddup2(&actions, err[1], 2);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP |
                                      POSIX_SPAWN_SETSIGMASK |
                                      POSIX_SPAWN_SETSIGDEF);
  posix_spawnattr_setpgroup(&attr, 0);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);
  sigset_t defaults;  // the worker ignores SIGPIPE; the command must not
  sigemptyset(&defaults);
  sigaddset(&defaults, SIGPIPE);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  std::string cmd = worker_->exec();
  char sh[] = "/bin/sh";
  char dash_c[] = "-c";
  char* args[] = {sh, dash_c, cmd.data(), nullptr};
  pid_t pid = 0;
  int rc = posix_spawn(&pid, "/bin/sh", &actions, &attr, args, envp.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  close(in[0]);
  close(out[1]);
  close(err[1]);

  std::string args_json;
  if (assign_.job().has_args()) {
    (void)google::protobuf::util::MessageToJsonString(assign_.job().args(),
                                                      &args_json);
  } else {
    args_json = "{}";
  }
  args_json += "\n";

  std::string stderr_tail;
  std::string last_line;
  int status = 0;
  if (rc != 0) {
    stderr_tail = absl::StrCat("cannot run /bin/sh: ", std::strerror(rc));
    status = 127 << 8;
    close(in[1]);
    close(out[0]);
    close(err[0]);
  } else {
    {
      absl::MutexLock lock(&mu_);
      pid_ = pid;
      if (!stop_report_.empty()) kill(-pid_, SIGTERM);
    }
    fcntl(in[1], F_SETFL, O_NONBLOCK);
    size_t written = 0;
    int in_fd = in[1];
    std::string out_buf;
    std::string err_buf;
    // A stdout line that may be the result (a JSON object): it is, if it
    // ends the output and the command succeeds; else it is logged once the
    // next line comes. Other lines are logged at once.
    std::optional<std::string> held;
    int open_fds = 2;
    bool out_open = true;
    bool err_open = true;
    while (open_fds > 0) {
      pollfd fds[3];
      int n = 0;
      if (out_open) fds[n++] = {out[0], POLLIN, 0};
      if (err_open) fds[n++] = {err[0], POLLIN, 0};
      if (in_fd >= 0) fds[n++] = {in_fd, POLLOUT, 0};
      poll(fds, n, 200);
      for (int i = 0; i < n; ++i) {
        if (fds[i].revents == 0) continue;
        if (fds[i].fd == in_fd) {
          ssize_t w = write(in_fd, args_json.data() + written,
                            args_json.size() - written);
          if (w > 0) written += static_cast<size_t>(w);
          if (w < 0 && errno != EAGAIN) written = args_json.size();
          if (written >= args_json.size()) {
            close(in_fd);
            in_fd = -1;
          }
          continue;
        }
        char buf[4096];
        ssize_t r = read(fds[i].fd, buf, sizeof(buf));
        if (r <= 0) {
          if (r < 0 && errno == EINTR) continue;
          if (fds[i].fd == out[0]) out_open = false;
          if (fds[i].fd == err[0]) err_open = false;
          --open_fds;
          continue;
        }
        if (fds[i].fd == err[0]) {
          stderr_tail.append(buf, static_cast<size_t>(r));
          if (stderr_tail.size() > kStderrTail) {
            stderr_tail.erase(0, stderr_tail.size() - kStderrTail);
          }
          err_buf.append(buf, static_cast<size_t>(r));
          size_t nl;
          while ((nl = err_buf.find('\n')) != std::string::npos) {
            Log(absl::StrCat("stderr: ", err_buf.substr(0, nl)));
            err_buf.erase(0, nl + 1);
          }
          continue;
        }
        out_buf.append(buf, static_cast<size_t>(r));
        size_t nl;
        while ((nl = out_buf.find('\n')) != std::string::npos) {
          std::string line = out_buf.substr(0, nl);
          out_buf.erase(0, nl + 1);
          v1::Progress p;
          if (ParseProgressLine(line, &p)) {
            progress_ = p;
            v1::ConnectRequest msg;
            msg.mutable_progress()->set_job_id(job_id());
            msg.mutable_progress()->set_attempt(attempt());
            *msg.mutable_progress()->mutable_progress() = p;
            worker_->Send(msg);
          } else if (!absl::StripAsciiWhitespace(line).empty()) {
            if (held.has_value()) Log(std::move(*held));
            held.reset();
            if (absl::StartsWith(absl::StripAsciiWhitespace(line), "{")) {
              held = std::move(line);
            } else {
              Log(std::move(line));
            }
          }
        }
      }
      absl::MutexLock lock(&mu_);
      if (!stop_report_.empty() && !killed_ &&
          absl::Now() - stop_at_ > kKillGrace) {
        kill(-pid_, SIGKILL);
        killed_ = true;
      }
      if (!out_open && !err_open) break;
      (void)out_buf;
    }
    if (!absl::StripAsciiWhitespace(out_buf).empty()) {  // no newline
      if (held.has_value()) Log(std::move(*held));
      held = out_buf;
    }
    if (!err_buf.empty()) Log(absl::StrCat("stderr: ", err_buf));
    if (in_fd >= 0) close(in_fd);
    close(out[0]);
    close(err[0]);
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    // The held line is the result only when the command succeeded and it
    // is a JSON object; anything else is output like the rest.
    if (held.has_value()) {
      const bool result =
          WIFEXITED(status) && WEXITSTATUS(status) == 0 &&
          absl::StartsWith(absl::StripAsciiWhitespace(*held), "{");
      if (result) {
        last_line = std::move(*held);
      } else {
        Log(std::move(*held));
      }
    }
  }

  std::string report;
  std::string why;
  {
    absl::MutexLock lock(&mu_);
    report = stop_report_;
    why = stop_why_;
  }
  // How the command ended, for the job's error and the worker's line.
  const std::string exit_text =
      rc != 0 ? "not started"
      : WIFEXITED(status)
          ? absl::StrCat("exit status ", WEXITSTATUS(status))
          : absl::StrCat("killed by signal ", WTERMSIG(status), " (",
                         SignalName(WTERMSIG(status)), ")");
  const std::string took = absl::FormatDuration(
      absl::Trunc(absl::Now() - started, absl::Milliseconds(1)));
  std::string outcome = absl::StrCat("stopped after ", took, " (not reported)");
  v1::ConnectRequest msg;
  if (report == "ack") {
    outcome = absl::StrCat("stopped (", why, ") after ", took);
    msg.mutable_ack()->set_job_id(job_id());
    msg.mutable_ack()->set_attempt(attempt());
    msg.mutable_ack()->set_stopped(true);
  } else if (report == "fail") {
    v1::Fail* f = msg.mutable_fail();
    f->set_job_id(job_id());
    f->set_attempt(attempt());
    f->set_retryable(true);
    f->mutable_error()->set_code(14);
    f->mutable_error()->set_message(why);
    outcome = absl::StrCat("stopped after ", took, ": ", why);
  } else if (report.empty() && WIFEXITED(status) && WEXITSTATUS(status) == 0) {
    outcome = absl::StrCat("succeeded in ", took);
    v1::Complete* c = msg.mutable_complete();
    c->set_job_id(job_id());
    c->set_attempt(attempt());
    absl::string_view last = absl::StripAsciiWhitespace(last_line);
    if (absl::StartsWith(last, "{")) {
      google::protobuf::Struct data;
      if (google::protobuf::util::JsonStringToMessage(std::string(last), &data)
              .ok()) {
        *c->mutable_result()->mutable_data() = std::move(data);
      } else {
        Log(std::string(last));  // not a result after all
      }
    }
  } else if (report.empty()) {
    v1::Fail* f = msg.mutable_fail();
    f->set_job_id(job_id());
    f->set_attempt(attempt());
    f->set_retryable(true);
    // "exit status 3: <the tail of stderr>"; the details say it again for
    // programs: exit_status or signal, and stderr_tail.
    const std::string tail(absl::StripAsciiWhitespace(stderr_tail));
    f->mutable_error()->set_message(
        tail.empty() ? exit_text : absl::StrCat(exit_text, ": ", tail));
    auto& details = *f->mutable_error()->mutable_details()->mutable_fields();
    if (rc == 0 && WIFEXITED(status)) {
      details["exit_status"].set_number_value(WEXITSTATUS(status));
    } else if (rc == 0) {
      details["signal"].set_number_value(WTERMSIG(status));
      details["signal_name"].set_string_value(SignalName(WTERMSIG(status)));
    }
    if (!tail.empty()) details["stderr_tail"].set_string_value(tail);
    outcome = absl::StrCat("failed in ", took, ": ", exit_text);
  }
  Say(absl::StrCat("job ", job_id(), " attempt ", attempt(), " ", outcome));
  if (msg.kind_case() != v1::ConnectRequest::KIND_NOT_SET) worker_->Send(msg);
  absl::MutexLock lock(&mu_);
  finished_ = true;
}

void Worker::ReapFinishedLocked() {
  for (auto it = runs_.begin(); it != runs_.end();) {
    if (it->second->finished()) {
      it->second->Join();
      it = runs_.erase(it);
    } else {
      ++it;
    }
  }
}

void Worker::Reader() {
  v1::ConnectResponse msg;
  while (stream_->Read(&msg)) {
    absl::MutexLock lock(&mu_);
    ReapFinishedLocked();
    switch (msg.kind_case()) {
      case v1::ConnectResponse::kAssign: {
        auto key =
            std::make_pair(msg.assign().job().id(), msg.assign().attempt());
        auto run = std::make_unique<Run>(this, msg.assign());
        run->Start();
        runs_[key] = std::move(run);
        break;
      }
      case v1::ConnectResponse::kCancel: {
        auto it = runs_.find({msg.cancel().job_id(), msg.cancel().attempt()});
        // A cancel for an expired lease needs no answer; a user's cancel does.
        const std::string& reason = msg.cancel().reason();
        const bool ack =
            reason != "lease expired" && reason != "attempt timeout";
        if (it != runs_.end()) it->second->Stop(ack ? "ack" : "none", reason);
        break;
      }
      case v1::ConnectResponse::kPause: {
        auto it = runs_.find({msg.pause().job_id(), msg.pause().attempt()});
        if (it != runs_.end()) it->second->Stop("ack", "paused");
        break;
      }
      case v1::ConnectResponse::kDrain: {
        draining_ = true;
        absl::Time deadline =
            absl::FromUnixSeconds(msg.drain().deadline().seconds());
        drain_deadline_ = std::min(drain_deadline_, deadline);
        break;
      }
      case v1::ConnectResponse::kRejected: {
        // That attempt is no longer ours: stop it quietly.
        auto it =
            runs_.find({msg.rejected().job_id(), msg.rejected().attempt()});
        if (it != runs_.end()) it->second->Stop("none", "rejected");
        break;
      }
      default:
        break;
    }
  }
  final_status_ = stream_->Finish();
  absl::MutexLock lock(&mu_);
  stream_ended_ = true;
}

void Worker::Heartbeats(absl::Duration interval) {
  v1::ConnectRequest hb;
  hb.mutable_heartbeat();
  absl::MutexLock lock(&mu_);
  auto done = [this] {
    mu_.AssertReaderHeld();
    return stop_ || stream_ended_;
  };
  while (!mu_.AwaitWithTimeout(absl::Condition(&done), interval)) {
    mu_.Unlock();
    Send(hb);
    mu_.Lock();
  }
}

absl::Status Worker::Main() {
  auto stub = v1::WorkerService::NewStub(channel_);
  stream_ = stub->Connect(context_.get());
  v1::ConnectRequest hello;
  v1::Hello* h = hello.mutable_hello();
  h->set_worker_id(flags_.worker_id);
  for (const auto& [name, weight] : flags_.queues) {
    v1::WorkerQueue* q = h->add_queues();
    q->set_name(name);
    q->set_weight(weight);
  }
  for (const std::string& k : flags_.kinds) h->add_kinds(k);
  h->set_slots(flags_.slots);
  v1::ConnectResponse welcome;
  if (!stream_->Write(hello) || !stream_->Read(&welcome) ||
      !welcome.has_welcome()) {
    return FromGrpcStatus(stream_->Finish());
  }
  welcomed_ = true;
  absl::Duration interval =
      absl::Seconds(welcome.welcome().heartbeat_interval().seconds()) +
      absl::Nanoseconds(welcome.welcome().heartbeat_interval().nanos());
  if (interval <= absl::ZeroDuration()) interval = absl::Seconds(10);
  std::cerr << "jobwire worker: session " << welcome.welcome().session_id()
            << " as " << flags_.worker_id << "\n";

  std::thread reader([this] { Reader(); });
  std::thread heartbeats([this, interval] { Heartbeats(interval); });

  // Wait for a signal or the end of the stream, checking twice a second.
  for (;;) {
    pollfd pfd{g_signal_pipe[0], POLLIN, 0};
    if (poll(&pfd, 1, 500) > 0) {
      char byte;
      if (read(g_signal_pipe[0], &byte, 1) == 1) signalled_ = true;
    }
    absl::MutexLock lock(&mu_);
    if (signalled_ && !draining_) {
      draining_ = true;
      drain_deadline_ = std::min(drain_deadline_, absl::Now() + flags_.grace);
    }
    if (stream_ended_ || draining_) break;
  }
  bool broken = false;
  {
    absl::MutexLock lock(&mu_);
    broken = stream_ended_ && !signalled_ && !draining_;
  }
  if (!broken) {
    absl::Time deadline;
    {
      absl::MutexLock lock(&mu_);
      deadline = drain_deadline_;
    }
    Drain(deadline);
  }
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
    for (auto& [key, run] : runs_) run->Stop("none", "stream ended");
  }
  heartbeats.join();
  {
    absl::MutexLock lock(&write_mu_);
    if (!writes_done_) stream_->WritesDone();
    writes_done_ = true;
  }
  reader.join();
  absl::MutexLock lock(&mu_);
  for (auto& [key, run] : runs_) run->Join();
  if (broken) {
    absl::Status s = FromGrpcStatus(final_status_);
    return s.ok() ? absl::UnavailableError("the server ended the session") : s;
  }
  return absl::OkStatus();
}

void Worker::Drain(absl::Time deadline) {
  std::cerr << "jobwire worker: draining until "
            << absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", deadline,
                                absl::UTCTimeZone())
            << "\n";
  v1::ConnectRequest stop;
  stop.mutable_ready()->set_slots(-flags_.slots);
  Send(stop);
  absl::MutexLock lock(&mu_);
  auto idle = [this] {
    mu_.AssertReaderHeld();
    for (auto& [key, run] : runs_) {
      if (!run->finished()) return false;
    }
    return true;
  };
  // Runs finish on their own threads; poll them, bounded by the deadline.
  while (!idle() && absl::Now() < deadline && !stream_ended_) {
    mu_.AwaitWithTimeout(
        absl::Condition(&stream_ended_),
        std::min(absl::Milliseconds(100), deadline - absl::Now()));
  }
  for (auto& [key, run] : runs_) {
    if (!run->finished()) run->Stop("fail", "worker shutting down");
  }
  while (!idle()) {
    mu_.AwaitWithTimeout(absl::Condition(&stream_ended_),
                         absl::Milliseconds(100));
    if (stream_ended_) break;
  }
}

class WorkerCommand final : public Command {
 public:
  std::string name() const override { return "worker"; }
  std::string summary() const override {
    return "run a shell command (--exec) once per job of the given queues; "
           "SIGTERM drains";
  }
  void AddFlags(FlagSet* flags) override {
    flags->StringList("queue", &queues_,
                      "queue to serve, repeatable; NAME or NAME:WEIGHT "
                      "(default: default)",
                      "QUEUE");
    flags->StringList("kind", &kinds_,
                      "job kind to run, repeatable (default: every kind)",
                      "KIND");
    flags->Int("slots", &slots_, "jobs run at once (default 1)");
    flags->Duration(
        "grace", &grace_,
        "on SIGTERM, how long running jobs may finish (default 30s)");
    flags->String("exec", &exec_,
                  "shell command run per job: args JSON on stdin, "
                  "JOBWIRE_JOB_ID and JOBWIRE_ATTEMPT in the environment",
                  "COMMAND");
    flags->String("worker-id", &worker_id_,
                  "name shown to operators (default host:pid)", "ID");
  }
  absl::Status Run(const CliContext& context,
                   const std::vector<std::string>& args) override {
    if (!args.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("worker takes no arguments, got \"", args[0], "\""));
    }
    Flags flags;
    absl::Status s =
        BuildFlags(queues_, kinds_, slots_, grace_, exec_, worker_id_, &flags);
    if (!s.ok()) return s;
    if (g_signal_pipe[0] < 0 && pipe2(g_signal_pipe, O_CLOEXEC) != 0) {
      return absl::InternalError(absl::StrCat("pipe: ", std::strerror(errno)));
    }
    struct sigaction sa = {};
    sa.sa_handler = OnDrainSignal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, nullptr);
    sigaction(SIGINT, &sa, nullptr);
    signal(SIGPIPE, SIG_IGN);
    absl::Duration pause = kFirstReconnectPause;
    for (;;) {
      Worker worker(flags, context.channel,
                    context.NewCallContext(/*with_deadline=*/false));
      absl::Status ended = worker.Main();
      if (worker.signalled()) return ended;
      // Only a server that went away is waited for: a drain, a broken or
      // refused stream (UNAVAILABLE), or a call that a stopping server
      // cancelled. Any other error is the worker's to fix.
      if (!ended.ok() && ended.code() != absl::StatusCode::kUnavailable &&
          ended.code() != absl::StatusCode::kCancelled) {
        return ended;
      }
      if (worker.welcomed()) pause = kFirstReconnectPause;
      std::cerr << "jobwire worker: "
                << (ended.ok() ? "the server shut down"
                               : std::string(ended.message()))
                << "; reconnecting within " << absl::FormatDuration(pause)
                << "\n";
      if (!PauseBeforeReconnect(context.channel.get(), pause)) {
        return absl::OkStatus();
      }
      pause = std::min(2 * pause, kMaxReconnectPause);
    }
  }

 private:
  std::vector<std::string> queues_;
  std::vector<std::string> kinds_;
  int slots_ = 1;
  absl::Duration grace_ = absl::Seconds(30);
  std::string exec_;
  std::string worker_id_;
};

}  // namespace

void AddWorkerCommand(CommandList* commands) {
  commands->push_back(std::make_unique<WorkerCommand>());
}

}  // namespace jobwire::cli
