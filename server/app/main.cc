// jobwired: the jobwire server. See ServerUsage() or `jobwired --help`.
#include <google/protobuf/stubs/logging.h>
#include <grpc/support/log.h>
#include <sys/stat.h>

#include <csignal>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "server/app/app.h"
#include "server/app/server_options.h"
#include "server/app/signal_watcher.h"
#include "server/common/logging.h"

namespace {

// gRPC's own log lines go through our logger, so every line on stderr has
// the same shape (and is JSON with --log-format json).
void GrpcLog(gpr_log_func_args* args) {
  jobwire::LogLevel level = jobwire::LogLevel::kError;
  if (args->severity == GPR_LOG_SEVERITY_DEBUG)
    level = jobwire::LogLevel::kDebug;
  if (args->severity == GPR_LOG_SEVERITY_INFO) level = jobwire::LogLevel::kInfo;
  if (!jobwire::LogLevelEnabled(level)) return;
  jobwire::internal::LogMessage(level, args->file, args->line).stream()
      << "grpc: " << args->message;
}

// protobuf's own log lines (one per malformed request, e.g. "String field
// ... contains invalid UTF-8 data") go to our logger at debug: a client
// sending garbage must not be able to flood the log (issue #27). Only a
// fatal one (protobuf aborts after it) stays at error.
void ProtobufLog(google::protobuf::LogLevel level, const char* file, int line,
                 const std::string& message) {
  const jobwire::LogLevel ours = level == google::protobuf::LOGLEVEL_FATAL
                                     ? jobwire::LogLevel::kError
                                     : jobwire::LogLevel::kDebug;
  if (!jobwire::LogLevelEnabled(ours)) return;
  jobwire::internal::LogMessage(ours, file, line).stream()
      << "protobuf: " << message;
}

}  // namespace

int main(int argc, char** argv) {
  // Debian builds Abseil without NDEBUG, which leaves absl::Mutex deadlock
  // detection on: a process-wide lock graph updated on every Lock (~3% of
  // jobwired's CPU under SubmitJob load). The server runs as an NDEBUG
  // Abseil would; tests keep the detection.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  // Before any thread exists: every thread inherits the blocked stop signals,
  // and only the SignalWatcher thread receives them.
  jobwire::SignalWatcher::BlockStopSignals();

  // Every file jobwired creates (database, -wal, -shm, locks, backups,
  // directories) is its user's alone: job args are not other users' to read.
  ::umask(0077);

  std::vector<std::string> args(argv + 1, argv + argc);
  absl::StatusOr<jobwire::ServerCommandLine> cl =
      jobwire::ParseServerCommandLine(args, jobwire::ProcessEnv);
  if (!cl.ok()) {
    std::fprintf(stderr, "jobwired: %s\n",
                 std::string(cl.status().message()).c_str());
    return 2;
  }
  if (cl->help) {
    std::fputs(jobwire::ServerUsage().c_str(), stdout);
    return 0;
  }
  if (cl->version) {
    std::printf("jobwired %s\n", jobwire::JobwireVersion());
    return 0;
  }
  jobwire::SetLogLevel(cl->options.log_level);
  jobwire::SetLogFormat(cl->options.log_format);
  gpr_set_log_function(&GrpcLog);
  google::protobuf::SetLogHandler(&ProtobufLog);

  if (cl->migrate) {
    absl::StatusOr<jobwire::DatabaseMigration> m =
        jobwire::MigrateDatabase(cl->options);
    if (!m.ok()) {
      JW_LOG(ERROR) << "cannot migrate: " << m.status().ToString();
      return 1;
    }
    for (int version : m->applied) {
      std::printf("applied migration %d\n", version);
    }
    std::printf("%s: schema version %d (was %d; this jobwire writes %d)\n",
                m->database.c_str(), m->to_version, m->from_version,
                m->latest_version);
    return 0;
  }
  JW_LOG(INFO) << "jobwired " << jobwire::JobwireVersion() << " starting";
  absl::StatusOr<std::unique_ptr<jobwire::App>> app =
      jobwire::App::Start(cl->options);
  if (!app.ok()) {
    JW_LOG(ERROR) << "cannot start: " << app.status().ToString();
    return 1;
  }

  absl::Notification stop;
  jobwire::App* const server = app->get();
  const absl::Duration grace = cl->options.shutdown_grace;
  auto watcher = jobwire::SignalWatcher::Start(
      [&stop, server, grace](int signo, int count) {
        if (count == 1) {
          JW_LOG(INFO) << "received SIG" << sigabbrev_np(signo)
                       << ": stopping (grace " << absl::FormatDuration(grace)
                       << "; signal again to skip it)";
          stop.Notify();
        } else {
          JW_LOG(WARNING) << "received SIG" << sigabbrev_np(signo)
                          << " again: skipping the grace period";
          server->SkipGrace();
        }
      });
  if (!watcher.ok()) {
    JW_LOG(ERROR) << "cannot watch signals: " << watcher.status().ToString();
    return 1;
  }
  stop.WaitForNotification();
  (*app)->Stop();
  watcher->reset();  // the watcher's callback points at the app
  app->reset();
  JW_LOG(INFO) << "stopped";
  return 0;
}
