#include "tests/jobwired_process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <utility>

#include "absl/strings/str_split.h"
#include "absl/time/clock.h"

namespace jobwire::test {

std::string ReadWholeFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string MakeTempDir(const std::string& prefix) {
  std::string tmpl = "/tmp/" + prefix + "-XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr) std::abort();
  return tmpl;
}

void RemoveDir(const std::string& dir) {
  if (dir.empty()) return;
  std::string command = "rm -rf '" + dir + "'";
  if (std::system(command.c_str()) != 0) {
    // Left behind in /tmp; nothing else to do.
  }
}

std::shared_ptr<grpc::Channel> ReconnectingChannel(const std::string& target) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 500);
  return grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(),
                                   args);
}

JobwiredProcess::JobwiredProcess(const std::string& dir,
                                 std::vector<std::string> args,
                                 const std::string& binary)
    : log_path_(dir + "/jobwired." + std::to_string(getpid()) + "." +
                std::to_string(++counter_) + ".log") {
  const char* override_bin = ::getenv("JOBWIRED_BIN");
  std::string bin = !binary.empty() ? binary
                    : override_bin != nullptr && *override_bin != '\0'
                        ? std::string(override_bin)
                        : std::string(JOBWIRED_PATH);
  pid_ = ::fork();
  if (pid_ == 0) {
    int fd = ::open(log_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ::dup2(fd, STDERR_FILENO);
    ::dup2(fd, STDOUT_FILENO);
    if (::chdir(dir.c_str()) != 0) ::_exit(127);
    std::vector<char*> argv;
    argv.push_back(bin.data());
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execv(bin.c_str(), argv.data());
    ::_exit(127);
  }
}

JobwiredProcess::~JobwiredProcess() {
  if (pid_ > 0 && !exited_) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
}

std::vector<std::string> JobwiredProcess::WaitListening(
    size_t n, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    std::vector<std::string> found;
    for (absl::string_view line :
         absl::StrSplit(ReadWholeFile(log_path_), '\n')) {
      size_t at = line.find("listening on ");
      if (at != absl::string_view::npos) {
        found.emplace_back(line.substr(at + std::strlen("listening on ")));
      }
    }
    if (found.size() >= n) return found;
    if (Exited(absl::ZeroDuration())) return {};
    absl::SleepFor(absl::Milliseconds(20));
  }
  return {};
}

void JobwiredProcess::Signal(int signo) {
  if (pid_ > 0 && !exited_) ::kill(pid_, signo);
}

bool JobwiredProcess::Exited(absl::Duration timeout) {
  if (exited_) return true;
  const absl::Time deadline = absl::Now() + timeout;
  do {
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      exited_ = true;
      exit_code_ =
          WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      return true;
    }
    absl::SleepFor(absl::Milliseconds(10));
  } while (absl::Now() < deadline);
  return false;
}

}  // namespace jobwire::test
