#include "server/transport/http2_relay.h"

#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>
#include <unordered_map>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "server/common/logging.h"
#include "server/transport/peer_name.h"

namespace jobwire {
namespace {

// Bytes read at once from either side; also the most a connection keeps
// per direction while its peer does not take them.
constexpr size_t kReadSize = 64 * 1024;
// Reads per side and wake-up, so one busy connection cannot starve the rest.
constexpr int kReadsPerWake = 4;
// How long a connection whose server side is gone may take to read what is
// left (the server's last frames, a GOAWAY) before it is closed.
constexpr absl::Duration kDrainFor = absl::Seconds(5);
constexpr absl::Duration kDrainOverBudgetFor = absl::Seconds(1);
constexpr absl::Duration kWarnEvery = absl::Seconds(10);
// An address one of whose connections went over its budget shares, for a
// window after, one budget this many times smaller over all its connections
// (a client reconnecting to reset more streams gains nothing). Addresses
// remembered so at most:
constexpr int kPenaltyDivisor = 10;
constexpr size_t kMaxPenalized = 65536;

// The client's address without its port (the key of the penalties); empty
// when it cannot be read.
std::string AddressKey(int fd) {
  sockaddr_storage addr{};
  socklen_t len = sizeof(addr);
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    return "";
  }
  if (addr.ss_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(&addr);
    return std::string(reinterpret_cast<const char*>(&in->sin_addr),
                       sizeof(in->sin_addr));
  }
  if (addr.ss_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&addr);
    return std::string(reinterpret_cast<const char*>(&in6->sin6_addr),
                       sizeof(in6->sin6_addr));
  }
  return "";
}

// The low bit of an epoll event's data tells the two fds of a connection
// apart (a Conn is at least 8-byte aligned); 0 is the wake-up eventfd.
constexpr uint64_t kServerSide = 1;
constexpr uint32_t kIn = EPOLLIN;
constexpr uint32_t kOut = EPOLLOUT;

// Sends as much of `pending` to `fd` as it takes and erases that; false on
// an error other than a full socket.
bool Flush(int fd, std::string* pending) {
  while (!pending->empty()) {
    const ssize_t n =
        ::send(fd, pending->data(), pending->size(), MSG_NOSIGNAL);
    if (n > 0) {
      pending->erase(0, static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
  }
  return true;
}

// Sends `bytes` to `fd`, keeping in `pending` (empty before) what the socket
// did not take; false on an error other than a full socket.
bool SendOrKeep(int fd, absl::string_view bytes, std::string* pending) {
  while (!bytes.empty()) {
    const ssize_t n = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n > 0) {
      bytes.remove_prefix(static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    return false;
  }
  pending->assign(bytes.data(), bytes.size());
  return true;
}

}  // namespace

// One epoll thread and the connections it relays. Its connections are
// touched only by its thread; Add and Stop hand over under mu_.
class Http2Relay::Worker {
 public:
  Worker(Http2ClientGuard::Limits limits,
         std::shared_ptr<std::atomic<int64_t>> closed_over_budget)
      : limits_(limits), closed_over_budget_(std::move(closed_over_budget)) {}

  ~Worker() {
    Stop();
    if (epoll_ >= 0) ::close(epoll_);
    if (wake_ >= 0) ::close(wake_);
  }

  absl::Status Init() {
    epoll_ = ::epoll_create1(EPOLL_CLOEXEC);
    wake_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (epoll_ < 0 || wake_ < 0) {
      return absl::InternalError(absl::StrCat(
          "HTTP/2 relay: epoll or eventfd: ", std::strerror(errno)));
    }
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = 0;
    if (::epoll_ctl(epoll_, EPOLL_CTL_ADD, wake_, &ev) != 0) {
      return absl::InternalError(
          absl::StrCat("HTTP/2 relay: epoll_ctl: ", std::strerror(errno)));
    }
    thread_ = std::thread([this] { Loop(); });
    return absl::OkStatus();
  }

  void Add(int client, int server) {
    {
      absl::MutexLock lock(&mu_);
      if (!stopping_) {
        incoming_.emplace_back(client, server);
        client = server = -1;
      }
    }
    if (client >= 0) {
      ::close(client);
      ::close(server);
      return;
    }
    Wake();
  }

  void Stop() {
    {
      absl::MutexLock lock(&mu_);
      stopping_ = true;
    }
    if (thread_.joinable()) {
      Wake();
      thread_.join();
    }
  }

 private:
  struct Conn {
    Conn(Http2ClientGuard::Limits limits, absl::Time now)
        : guard(limits, now) {}
    int client = -1;
    int server = -1;      // our end of the socketpair; -1 once closed
    std::string address;  // AddressKey(client)
    Http2ClientGuard guard;
    Http2FrameScanner from_server{Http2FrameScanner::Start::kFrames};
    std::string to_server;  // read from the client, not yet taken by gRPC
    std::string to_client;  // read from gRPC, not yet taken by the client
    bool client_eof = false;
    bool server_write_shut = false;
    bool server_hup = false;   // gRPC closed its end: read it out unpolled
    bool server_gone = false;  // nothing more from gRPC: drain, then close
    absl::Time drain_until = absl::InfiniteFuture();
    uint32_t client_mask = 0;
    uint32_t server_mask = 0;
    bool dead = false;
    size_t index = 0;  // in conns_
  };

  void Wake() {
    const uint64_t one = 1;
    (void)!::write(wake_, &one, sizeof(one));
  }

  void Loop() {
    std::vector<epoll_event> events(64);
    std::vector<Conn*> dead;
    while (true) {
      const int timeout_ms = draining_.empty() ? -1 : 100;
      const int n = ::epoll_wait(epoll_, events.data(),
                                 static_cast<int>(events.size()), timeout_ms);
      if (n < 0 && errno != EINTR) {
        JW_LOG(ERROR) << "HTTP/2 relay: epoll_wait: " << std::strerror(errno);
        absl::SleepFor(absl::Milliseconds(10));
        continue;
      }
      for (int i = 0; i < n; ++i) {
        const uint64_t data = events[i].data.u64;
        if (data == 0) {
          if (!TakeIncoming()) {
            CloseAll();
            return;
          }
          continue;
        }
        Conn* c = reinterpret_cast<Conn*>(data & ~kServerSide);
        if (c->dead) continue;
        const uint32_t got = events[i].events;
        if ((got & (EPOLLERR | EPOLLHUP)) != 0) {
          if ((data & kServerSide) == 0) {
            Close(c);  // the client is gone: nothing can reach it
            continue;
          }
          // gRPC closed its end: what it wrote is still to be read.
          c->server_hup = true;
          ::epoll_ctl(epoll_, EPOLL_CTL_DEL, c->server, nullptr);
          c->server_mask = 0;
        }
        Pump(c);
      }
      if (!draining_.empty()) {
        const absl::Time now = absl::Now();
        for (size_t i = 0; i < draining_.size();) {
          Conn* c = draining_[i];
          if (!c->dead && now >= c->drain_until) {
            Close(c);  // removes it from draining_
          } else {
            ++i;
          }
        }
      }
      for (Conn* c : dead_) delete c;
      dead_.clear();
    }
  }

  // Registers the connections Add handed over; false once stopping.
  bool TakeIncoming() {
    uint64_t count;
    (void)!::read(wake_, &count, sizeof(count));
    std::vector<std::pair<int, int>> incoming;
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) {
        for (auto [client, server] : incoming_) {
          ::close(client);
          ::close(server);
        }
        incoming_.clear();
        return false;
      }
      incoming.swap(incoming_);
    }
    const absl::Time now = absl::Now();
    for (auto [client, server] : incoming) {
      auto* c = new Conn(limits_, now);
      c->client = client;
      c->server = server;
      c->address = AddressKey(client);
      c->index = conns_.size();
      conns_.push_back(c);
      epoll_event ev{};
      ev.events = EPOLLIN;
      ev.data.u64 = reinterpret_cast<uint64_t>(c);
      const bool ok = ::epoll_ctl(epoll_, EPOLL_CTL_ADD, client, &ev) == 0;
      ev.data.u64 = reinterpret_cast<uint64_t>(c) | kServerSide;
      if (!ok || ::epoll_ctl(epoll_, EPOLL_CTL_ADD, server, &ev) != 0) {
        JW_LOG(ERROR) << "HTTP/2 relay: epoll_ctl: " << std::strerror(errno);
        Close(c);
        continue;
      }
      c->client_mask = c->server_mask = EPOLLIN;
    }
    return true;
  }

  // Moves what it can both ways, then sets what to wait for.
  void Pump(Conn* c) {
    const absl::Time now = absl::Now();
    char* const buf = scratch_;
    // Client to gRPC, through the guard.
    for (int round = 0; round < kReadsPerWake && !c->server_gone; ++round) {
      if (!c->to_server.empty()) {
        if (!Flush(c->server, &c->to_server)) return Close(c);
        if (!c->to_server.empty()) break;
      }
      if (c->client_eof) break;
      const ssize_t n = ::recv(c->client, buf, kReadSize, 0);
      if (n == 0) {
        c->client_eof = true;
        break;
      }
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) break;
        return Close(c);
      }
      const absl::string_view read(buf, static_cast<size_t>(n));
      const size_t allowed = c->guard.Check(read, now, PenaltyOf(c, now));
      if (!SendOrKeep(c->server, read.substr(0, allowed), &c->to_server)) {
        return Close(c);
      }
      if (c->guard.over_budget()) {
        OverBudget(c, now);
        break;
      }
    }
    if (c->client_eof && c->to_server.empty() && !c->server_write_shut &&
        !c->server_gone) {
      ::shutdown(c->server, SHUT_WR);
      c->server_write_shut = true;
    }
    // gRPC to the client; the scanner keeps track of frame boundaries.
    for (int round = 0; round < kReadsPerWake; ++round) {
      if (!c->to_client.empty()) {
        if (!Flush(c->client, &c->to_client)) return Close(c);
        if (!c->to_client.empty()) break;
      }
      if (c->server_gone) break;
      const ssize_t n = ::recv(c->server, buf, kReadSize, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
      if (n <= 0) {
        ServerGone(c, now + kDrainFor);
        break;
      }
      const absl::string_view read(buf, static_cast<size_t>(n));
      c->from_server.Scan(read, [](const Http2FrameHeader&) { return true; });
      if (!SendOrKeep(c->client, read, &c->to_client)) return Close(c);
    }
    if (c->server_gone && c->to_client.empty()) return Close(c);
    Watch(c);
  }

  // The budget `c` shares with its address's other connections while the
  // address is penalized; null otherwise.
  ResetBudget* PenaltyOf(Conn* c, absl::Time now) {
    if (penalized_.empty()) return nullptr;
    auto it = penalized_.find(c->address);
    if (it == penalized_.end() || now >= it->second.until) return nullptr;
    return &it->second.budget;
  }

  void Penalize(const std::string& address, absl::Time now) {
    if (address.empty()) return;
    auto it = penalized_.find(address);
    if (it != penalized_.end()) {
      it->second.until = now + limits_.window;
      return;
    }
    if (penalized_.size() >= kMaxPenalized / 2) {
      for (auto i = penalized_.begin(); i != penalized_.end();) {
        i = now >= i->second.until ? penalized_.erase(i) : std::next(i);
      }
    }
    if (penalized_.size() >= kMaxPenalized) return;
    penalized_.emplace(
        address,
        Penalty{ResetBudget(std::max(1, limits_.max_resets / kPenaltyDivisor),
                            limits_.window, now),
                now + limits_.window});
  }

  void ServerGone(Conn* c, absl::Time drain_until) {
    if (c->server >= 0) ::close(c->server);  // also leaves the epoll set
    c->server = -1;
    c->server_mask = 0;
    c->server_gone = true;
    c->to_server.clear();
    c->drain_until = drain_until;
    draining_.push_back(c);
  }

  void OverBudget(Conn* c, absl::Time now) {
    const int64_t total = closed_over_budget_->fetch_add(1) + 1;
    if (now - last_warning_ >= kWarnEvery) {
      last_warning_ = now;
      JW_LOG(WARNING) << "closing the connection of " << PeerNameOf(c->client)
                      << ": it reset more than " << limits_.max_resets
                      << " streams in " << absl::FormatDuration(limits_.window)
                      << " (--max-stream-resets; HTTP/2 rapid reset, "
                         "CVE-2023-44487); "
                      << total << " closed so far";
    }
    // gRPC sees its side close and drops the connection's streams; the
    // frame over the budget never reached it.
    ServerGone(c, now + kDrainOverBudgetFor);
    Penalize(c->address, now);
    if (c->from_server.at_frame_boundary()) {
      c->to_client +=
          Http2GoAwayFrame(c->guard.last_stream_id(), kHttp2EnhanceYourCalm,
                           "too many stream resets");
    }
  }

  // Sets what each fd waits for: reads when nothing waits to go on from it,
  // writes when something waits to go to it.
  void Watch(Conn* c) {
    const bool read_client =
        !c->client_eof && !c->server_gone && c->to_server.empty();
    const uint32_t client_mask =
        (read_client ? kIn : 0u) | (c->to_client.empty() ? 0u : kOut);
    if (client_mask != c->client_mask) {
      epoll_event ev{};
      ev.events = client_mask;
      ev.data.u64 = reinterpret_cast<uint64_t>(c);
      ::epoll_ctl(epoll_, EPOLL_CTL_MOD, c->client, &ev);
      c->client_mask = client_mask;
    }
    if (c->server_gone || c->server_hup) return;
    const uint32_t server_mask =
        (c->to_client.empty() ? kIn : 0u) | (c->to_server.empty() ? 0u : kOut);
    if (server_mask != c->server_mask) {
      epoll_event ev{};
      ev.events = server_mask;
      ev.data.u64 = reinterpret_cast<uint64_t>(c) | kServerSide;
      ::epoll_ctl(epoll_, EPOLL_CTL_MOD, c->server, &ev);
      c->server_mask = server_mask;
    }
  }

  // Closes both sides; the Conn is deleted after this round of events.
  void Close(Conn* c) {
    if (c->dead) return;
    c->dead = true;
    ::close(c->client);
    if (c->server >= 0) ::close(c->server);
    if (c->server_gone) {
      draining_.erase(std::find(draining_.begin(), draining_.end(), c));
    }
    conns_[c->index] = conns_.back();
    conns_[c->index]->index = c->index;
    conns_.pop_back();
    dead_.push_back(c);
  }

  void CloseAll() {
    while (!conns_.empty()) Close(conns_.back());
    for (Conn* c : dead_) delete c;
    dead_.clear();
  }

  const Http2ClientGuard::Limits limits_;
  const std::shared_ptr<std::atomic<int64_t>> closed_over_budget_;
  int epoll_ = -1;
  int wake_ = -1;
  std::thread thread_;
  absl::Mutex mu_;
  std::vector<std::pair<int, int>> incoming_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  // The loop thread's own, unlocked.
  std::vector<Conn*> conns_;
  std::vector<Conn*> draining_;
  std::vector<Conn*> dead_;
  absl::Time last_warning_ = absl::InfinitePast();
  struct Penalty {
    ResetBudget budget;
    absl::Time until;
  };
  // Addresses of clients closed over budget, until their penalty ends.
  std::unordered_map<std::string, Penalty> penalized_;
  char scratch_[kReadSize];
};

Http2Relay::Http2Relay(Options options) : options_(options) {}

absl::StatusOr<std::unique_ptr<Http2Relay>> Http2Relay::Start(Options options) {
  std::unique_ptr<Http2Relay> relay(new Http2Relay(options));
  for (int i = 0; i < std::max(1, options.threads); ++i) {
    auto worker =
        std::make_unique<Worker>(options.limits, relay->closed_over_budget_);
    absl::Status status = worker->Init();
    if (!status.ok()) return status;
    relay->workers_.push_back(std::move(worker));
  }
  return relay;
}

Http2Relay::~Http2Relay() { Stop(); }

void Http2Relay::Stop() {
  for (auto& worker : workers_) worker->Stop();
}

absl::StatusOr<int> Http2Relay::Adopt(int client_fd) {
  int pair[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0,
                   pair) != 0) {
    const int err = errno;
    ::close(client_fd);
    const std::string message =
        absl::StrCat("HTTP/2 relay: socketpair: ", std::strerror(err));
    if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
      return absl::ResourceExhaustedError(message);
    }
    return absl::InternalError(message);
  }
  const uint32_t i = next_worker_.fetch_add(1) % workers_.size();
  workers_[i]->Add(client_fd, pair[0]);
  return pair[1];
}

}  // namespace jobwire
