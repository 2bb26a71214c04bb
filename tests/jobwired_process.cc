#include "tests/jobwired_process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
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

ChildProcess::ChildProcess(std::string binary, std::vector<std::string> args,
                           std::string log_path, const std::string& dir)
    : log_path_(std::move(log_path)) {
  // Everything is allocated before fork: the child of a threaded process may
  // only make async-signal-safe calls before exec.
  std::vector<char*> argv;
  argv.push_back(binary.data());
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_ = ::fork();
  if (pid_ == 0) {
    int fd = ::open(log_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ::dup2(fd, STDERR_FILENO);
    ::dup2(fd, STDOUT_FILENO);
    if (!dir.empty() && ::chdir(dir.c_str()) != 0) ::_exit(127);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
}

ChildProcess::~ChildProcess() {
  if (pid_ > 0 && !exited_) {
    ::kill(pid_, SIGCONT);
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
}

void ChildProcess::Signal(int signo) {
  if (pid_ > 0 && !exited_) ::kill(pid_, signo);
}

bool ChildProcess::Exited(absl::Duration timeout) {
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

namespace {

// The binary JobwiredProcess runs: `binary`, else $JOBWIRED_BIN, else this
// build's jobwired.
std::string JobwiredBinary(const std::string& binary) {
  if (!binary.empty()) return binary;
  const char* env = ::getenv("JOBWIRED_BIN");
  if (env != nullptr && *env != '\0') return env;
  return JOBWIRED_PATH;
}

// `args` after a --db in `dir` (relative): a --db in `args` comes later
// and wins (jobwired takes the last).
std::vector<std::string> WithTestDatabase(std::vector<std::string> args) {
  args.insert(args.begin(), {"--db", "var/jobwire.db"});
  return args;
}

}  // namespace

JobwiredProcess::JobwiredProcess(const std::string& dir,
                                 std::vector<std::string> args,
                                 const std::string& binary)
    : ChildProcess(JobwiredBinary(binary), WithTestDatabase(std::move(args)),
                   dir + "/jobwired." + std::to_string(getpid()) + "." +
                       std::to_string(++counter_) + ".log",
                   dir) {}

std::vector<std::string> JobwiredProcess::WaitListening(
    size_t n, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    std::vector<std::string> found;
    for (absl::string_view line :
         absl::StrSplit(ReadWholeFile(log_path()), '\n')) {
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

void MakeTestCertificates(const std::string& dir, const std::string& prefix) {
  const std::string script = absl::StrCat(
      "set -e; cd '", dir, "'\n",
      "ca() { openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 "
      "-nodes -keyout $1.key -out $1.pem -days 2 -subj \"/CN=$1\"; }\n",
      "leaf() { openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 "
      "-nodes -keyout $1.key -out $1.csr -subj \"/CN=$1\"\n",
      "  printf 'subjectAltName=%s\\n' \"$4\" > $1.ext\n",
      "  openssl x509 -req -in $1.csr -CA $2.pem -CAkey $2.key "
      "-CAcreateserial -out $1.pem -days $3 -extfile $1.ext; }\n",
      "ca ", prefix, "ca; ca ", prefix, "ca2\n", "leaf ", prefix, "server ",
      prefix, "ca 2 DNS:localhost,IP:127.0.0.1\n", "leaf ", prefix, "client ",
      prefix, "ca 2 DNS:client\n", "leaf ", prefix, "client2 ", prefix,
      "ca2 2 DNS:client2\n", "leaf ", prefix, "expired ", prefix,
      "ca -1 DNS:expired\n");
  const int rc = std::system(
      absl::StrCat("bash -c '", absl::StrReplaceAll(script, {{"'", "'\\''"}}),
                   "' >/dev/null 2>&1")
          .c_str());
  if (rc != 0) {
    std::fprintf(stderr, "openssl failed making certificates in %s\n",
                 dir.c_str());
    std::abort();
  }
}

}  // namespace jobwire::test
