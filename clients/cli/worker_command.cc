// `jobwire worker`: runs a shell command once per job it gets from the server,
// on the C++ SDK's worker runtime (sdk::Worker: the session, heartbeats,
// cancel and pause, drain, reconnects); this file holds only what is
// specific to --exec, the child process.
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
// and ends, with the duration and outcome. SIGTERM or SIGINT drains
// (sdk::Worker::Stop): no new jobs, running ones get up to --grace to
// finish; then they are stopped and the session closes. When the server
// goes away the runtime reconnects, with a pause that grows to 5 s, until
// a signal stops it. A cancel or pause from the server stops the command
// (SIGTERM to its process group, SIGKILL after 5s) and acknowledges.

#include <fcntl.h>
#include <google/protobuf/util/json_util.h>
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
#include "clients/cpp/worker.h"

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

// Runs `exec` for one attempt (`task`) and returns its outcome for the
// runtime to report: the result, a JobFailure with the exit status, or
// (once the task is stopping) anything, as the runtime then acknowledges
// the stop or reports nothing.
class ExecRun {
 public:
  ExecRun(sdk::Task* task, const std::string& exec)
      : task_(*task), exec_(exec) {}
  absl::StatusOr<v1::JobResult> Main();

 private:
  // Records `line` as a log event of the job, within kMaxLogBytes.
  void Log(std::string line);
  const std::string& job_id() const { return task_.job().id(); }

  sdk::Task& task_;
  const std::string& exec_;
  size_t logged_bytes_ = 0;  // of log lines sent
  bool log_full_ = false;
};

void ExecRun::Log(std::string line) {
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
  task_.Log(line);
}

// Why a task stopped, for the worker's line.
std::string StopText(sdk::StopReason reason) {
  switch (reason) {
    case sdk::StopReason::kCancelled:
      return "cancelled";
    case sdk::StopReason::kPaused:
      return "paused";
    default:
      return "lost";
  }
}

absl::StatusOr<v1::JobResult> ExecRun::Main() {
  const absl::Time started = absl::Now();
  const int32_t attempt = task_.attempt();
  Say(absl::StrCat("job ", job_id(), " (", task_.job().kind(), ") attempt ",
                   attempt, " started"));
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
  env_strings.push_back(absl::StrCat("JOBWIRE_JOB_ID=", job_id()));
  env_strings.push_back(absl::StrCat("JOBWIRE_ATTEMPT=", attempt));
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
  std::string cmd = exec_;
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
  if (task_.job().has_args()) {
    (void)google::protobuf::util::MessageToJsonString(task_.job().args(),
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
    std::optional<absl::Time> stop_at;  // when the command was told to stop
    bool killed = false;
    fcntl(in[1], F_SETFL, O_NONBLOCK);
    size_t written = 0;
    int in_fd = in[1];
    std::string out_buf;
    std::string err_buf;
    // A stdout line that may be the result (a JSON object): it is, if it
    // ends the output and the command succeeds; else it is logged once the
    // next line comes. Other lines are logged at once.
    std::optional<std::string> held;
    bool out_open = true;
    bool err_open = true;
    while (out_open || err_open) {
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
            task_.Progress(p.done(), p.total(), p.message());
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
      // A cancel, a pause or a lost lease stops the command: SIGTERM to its
      // process group, SIGKILL kKillGrace later.
      if (task_.stopping() && !stop_at.has_value()) {
        stop_at = absl::Now();
        kill(-pid, SIGTERM);
      }
      if (stop_at.has_value() && !killed &&
          absl::Now() - *stop_at > kKillGrace) {
        kill(-pid, SIGKILL);
        killed = true;
      }
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

  // How the command ended, for the job's error and the worker's line.
  const std::string exit_text =
      rc != 0 ? "not started"
      : WIFEXITED(status)
          ? absl::StrCat("exit status ", WEXITSTATUS(status))
          : absl::StrCat("killed by signal ", WTERMSIG(status), " (",
                         SignalName(WTERMSIG(status)), ")");
  const std::string took = absl::FormatDuration(
      absl::Trunc(absl::Now() - started, absl::Milliseconds(1)));
  const std::string ended =
      absl::StrCat("job ", job_id(), " attempt ", attempt, " ");
  if (task_.stopping()) {
    // The runtime acknowledges a cancel or pause; a lost attempt's report
    // would be refused, so none is sent.
    const sdk::StopReason reason = task_.stop_reason();
    Say(absl::StrCat(
        ended,
        reason == sdk::StopReason::kLost
            ? absl::StrCat("stopped after ", took, " (not reported)")
            : absl::StrCat("stopped (", StopText(reason), ") after ", took)));
    return absl::CancelledError("stopped");
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0 && rc == 0) {
    Say(absl::StrCat(ended, "succeeded in ", took));
    v1::JobResult result;
    absl::string_view last = absl::StripAsciiWhitespace(last_line);
    if (absl::StartsWith(last, "{")) {
      google::protobuf::Struct data;
      if (google::protobuf::util::JsonStringToMessage(std::string(last), &data)
              .ok()) {
        *result.mutable_data() = std::move(data);
      } else {
        Log(std::string(last));  // not a result after all
      }
    }
    return result;
  }
  // "exit status 3: <the tail of stderr>"; the details say it again for
  // programs: exit_status or signal, and stderr_tail.
  v1::JobError error;
  error.set_retryable(true);
  const std::string tail(absl::StripAsciiWhitespace(stderr_tail));
  error.set_message(tail.empty() ? exit_text
                                 : absl::StrCat(exit_text, ": ", tail));
  auto& details = *error.mutable_details()->mutable_fields();
  if (rc == 0 && WIFEXITED(status)) {
    details["exit_status"].set_number_value(WEXITSTATUS(status));
  } else if (rc == 0) {
    details["signal"].set_number_value(WTERMSIG(status));
    details["signal_name"].set_string_value(SignalName(WTERMSIG(status)));
  }
  if (!tail.empty()) details["stderr_tail"].set_string_value(tail);
  Say(absl::StrCat(ended, "failed in ", took, ": ", exit_text));
  return sdk::JobFailure(error);
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

    sdk::Worker::Options options;
    for (const auto& [queue, weight] : flags.queues) {
      options.queues.push_back(queue);
      if (weight > 0) options.queue_weights[queue] = weight;
    }
    if (options.queues.empty()) options.queues = {"default"};
    options.slots = flags.slots;
    options.grace = flags.grace;
    options.worker_id = flags.worker_id;
    options.on_connected = [&](const std::string& session) {
      Say(absl::StrCat("session ", session, " as ", flags.worker_id));
    };
    options.on_disconnected = [](const absl::Status& why,
                                 absl::Duration pause) {
      Say(absl::StrCat(why.ok() ? std::string("the server shut down")
                                : std::string(why.message()),
                       "; reconnecting within ", absl::FormatDuration(pause)));
    };
    sdk::Worker worker(context.client, options);
    sdk::Handler run = [&flags](sdk::Task& task) {
      return ExecRun(&task, flags.exec).Main();
    };
    if (flags.kinds.empty()) {
      worker.HandleAny(run);
    } else {
      for (const std::string& kind : flags.kinds) worker.Handle(kind, run);
    }
    // A signal drains: Stop() takes no new jobs and gives running ones
    // --grace. (A handler writes to the pipe; this thread reads it.)
    std::atomic<bool> done{false};
    std::thread signals([&] {
      while (!done.load()) {
        pollfd pfd{g_signal_pipe[0], POLLIN, 0};
        if (poll(&pfd, 1, 200) <= 0) continue;
        char byte;
        if (read(g_signal_pipe[0], &byte, 1) != 1) continue;
        Say(absl::StrCat(
            "draining until ",
            absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::Now() + flags.grace,
                             absl::UTCTimeZone())));
        worker.Stop();
      }
    });
    absl::Status ran = worker.Run();
    done = true;
    signals.join();
    return ran;
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
