#include "server/app/signal_watcher.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace jobwire {
namespace {

sigset_t StopSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGHUP);
  sigaddset(&set, SIGQUIT);
  return set;
}

}  // namespace

void SignalWatcher::BlockStopSignals() {
  sigset_t set = StopSignals();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

absl::StatusOr<std::unique_ptr<SignalWatcher>> SignalWatcher::Start(
    Callback callback) {
  sigset_t set = StopSignals();
  int signal_fd = ::signalfd(-1, &set, SFD_CLOEXEC);
  if (signal_fd < 0) {
    return absl::InternalError(
        absl::StrCat("signalfd: ", std::strerror(errno)));
  }
  int stop_fd = ::eventfd(0, EFD_CLOEXEC);
  if (stop_fd < 0) {
    int err = errno;
    ::close(signal_fd);
    return absl::InternalError(absl::StrCat("eventfd: ", std::strerror(err)));
  }
  return std::unique_ptr<SignalWatcher>(
      new SignalWatcher(signal_fd, stop_fd, std::move(callback)));
}

SignalWatcher::SignalWatcher(int signal_fd, int stop_fd, Callback callback)
    : signal_fd_(signal_fd), stop_fd_(stop_fd), callback_(std::move(callback)) {
  thread_ = std::thread([this] { Loop(); });
}

SignalWatcher::~SignalWatcher() {
  uint64_t one = 1;
  while (::write(stop_fd_, &one, sizeof(one)) < 0 && errno == EINTR) {
  }
  thread_.join();
  ::close(signal_fd_);
  ::close(stop_fd_);
}

void SignalWatcher::Loop() {
  int count = 0;
  for (;;) {
    pollfd fds[2] = {{signal_fd_, POLLIN, 0}, {stop_fd_, POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (fds[1].revents != 0) return;
    if (fds[0].revents == 0) continue;
    signalfd_siginfo info;
    ssize_t n = ::read(signal_fd_, &info, sizeof(info));
    if (n != static_cast<ssize_t>(sizeof(info))) continue;
    callback_(static_cast<int>(info.ssi_signo), ++count);
  }
}

}  // namespace jobwire
