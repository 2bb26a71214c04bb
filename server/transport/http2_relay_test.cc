#include "server/transport/http2_relay.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <thread>

#include "absl/time/time.h"
#include "server/transport/http2_frame_scanner.h"

namespace jobwire::test {
namespace {

std::string Frame(uint8_t type, uint32_t stream, const std::string& payload) {
  std::string out;
  const uint32_t len = static_cast<uint32_t>(payload.size());
  for (int shift : {16, 8, 0}) out.push_back(static_cast<char>(len >> shift));
  out.push_back(static_cast<char>(type));
  out.push_back(0);
  for (int shift : {24, 16, 8, 0}) {
    out.push_back(static_cast<char>(stream >> shift));
  }
  return out + payload;
}

void SetBlocking(int fd) {
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  timeval tv = absl::ToTimeval(absl::Seconds(30));  // a hung test fails
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

bool WriteAll(int fd, const std::string& bytes) {
  size_t off = 0;
  while (off < bytes.size()) {
    const ssize_t n =
        ::send(fd, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
    if (n <= 0) return false;
    off += static_cast<size_t>(n);
  }
  return true;
}

// Everything until EOF or a reset.
std::string ReadToEnd(int fd) {
  std::string out;
  char buf[65536];
  while (true) {
    const ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) return out;
    out.append(buf, static_cast<size_t>(n));
  }
}

// A TCP connection on loopback, its server end adopted by a relay: the
// client's fd and the fd gRPC would serve.
class Http2RelayTest : public ::testing::Test {
 protected:
  void Connect(Http2ClientGuard::Limits limits) {
    if (relay_ == nullptr) {
      Http2Relay::Options options;
      options.limits = limits;
      auto relay = Http2Relay::Start(options);
      ASSERT_TRUE(relay.ok()) << relay.status();
      relay_ = *std::move(relay);
    }
    const int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(
        ::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    ASSERT_EQ(::listen(listener, 1), 0);
    socklen_t len = sizeof(addr);
    ::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len);
    client_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_EQ(
        ::connect(client_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)),
        0);
    const int accepted = ::accept4(listener, nullptr, nullptr, SOCK_NONBLOCK);
    ::close(listener);
    ASSERT_GE(accepted, 0);
    absl::StatusOr<int> served = relay_->Adopt(accepted);
    ASSERT_TRUE(served.ok()) << served.status();
    server_ = *served;
    SetBlocking(client_);
    SetBlocking(server_);
  }

  void TearDown() override {
    if (client_ >= 0) ::close(client_);
    if (server_ >= 0) ::close(server_);
    if (relay_ != nullptr) relay_->Stop();
  }

  std::unique_ptr<Http2Relay> relay_;
  int client_ = -1;
  int server_ = -1;
};

TEST_F(Http2RelayTest, BytesGoBothWaysUnchanged) {
  Connect({});
  std::string up(kHttp2ClientPreface);
  std::string down;
  for (uint32_t i = 0; i < 200; ++i) {
    up += Frame(kHttp2Headers, 2 * i + 1, "h") +
          Frame(0x0, 2 * i + 1, std::string(16000, static_cast<char>(i)));
    down += Frame(0x0, 2 * i + 1, std::string(16000, static_cast<char>(~i)));
  }
  std::thread client([&] {
    EXPECT_TRUE(WriteAll(client_, up));
    ::shutdown(client_, SHUT_WR);
  });
  std::string got_up;
  std::thread server([&] {
    got_up = ReadToEnd(server_);  // until the client's half-close
    EXPECT_TRUE(WriteAll(server_, down));
    ::close(server_);
    server_ = -1;
  });
  const std::string got_down = ReadToEnd(client_);
  client.join();
  server.join();
  EXPECT_TRUE(got_up == up) << got_up.size() << " of " << up.size();
  EXPECT_TRUE(got_down == down) << got_down.size() << " of " << down.size();
  EXPECT_EQ(relay_->closed_over_budget(), 0);
}

TEST_F(Http2RelayTest, ClientPastTheBudgetGetsGoAwayAndTheServerSideCloses) {
  Connect({/*max_resets=*/10, absl::Seconds(10)});
  const std::string settings = Frame(0x4, 0, "");
  ASSERT_TRUE(WriteAll(server_, settings));  // what gRPC says first
  std::string got(settings.size(), '\0');
  ASSERT_EQ(::recv(client_, got.data(), got.size(), MSG_WAITALL),
            static_cast<ssize_t>(got.size()));
  std::string allowed = std::string(kHttp2ClientPreface) + settings;
  for (uint32_t id = 1; id <= 19; id += 2) {
    allowed += Frame(kHttp2Headers, id, "h") +
               Frame(kHttp2RstStream, id, std::string("\0\0\0\x08", 4));
  }
  const std::string next_headers = Frame(kHttp2Headers, 21, "h");
  std::string over = next_headers;
  for (uint32_t id = 21; id < 2000; id += 2) {
    if (id > 21) over += Frame(kHttp2Headers, id, "h");
    over += Frame(kHttp2RstStream, id, std::string("\0\0\0\x08", 4));
  }
  std::thread attacker([&] { WriteAll(client_, allowed + over); });
  // gRPC's side gets the frames within the budget and then its end closes.
  EXPECT_EQ(ReadToEnd(server_), allowed + next_headers);
  got += ReadToEnd(client_);
  attacker.join();
  ASSERT_GE(got.size(), settings.size() + 9 + 8);
  EXPECT_EQ(got.substr(0, settings.size()), settings);
  EXPECT_EQ(got[settings.size() + 3], static_cast<char>(kHttp2GoAway));
  EXPECT_EQ(got.substr(settings.size() + 9, 8),
            std::string("\0\0\0\x15\0\0\0\x0b", 8));  // stream 21, CALM
  EXPECT_EQ(relay_->closed_over_budget(), 1);
}

std::string Resets(uint32_t first, int n) {
  std::string out;
  for (int i = 0; i < n; ++i) {
    out += Frame(kHttp2Headers, first + 2 * i, "h") +
           Frame(kHttp2RstStream, first + 2 * i, std::string("\0\0\0\x08", 4));
  }
  return out;
}

TEST_F(Http2RelayTest, AddressOverBudgetSharesASmallerBudgetForAWindow) {
  Connect({/*max_resets=*/20, absl::Seconds(10)});
  ASSERT_TRUE(
      WriteAll(client_, std::string(kHttp2ClientPreface) + Resets(1, 30)));
  ReadToEnd(server_);  // closed over budget
  ::close(client_);
  ::close(server_);
  // The same address again: 20 / 10 = 2 resets over all its connections.
  Connect({});
  const std::string two = std::string(kHttp2ClientPreface) + Resets(1, 2);
  ASSERT_TRUE(WriteAll(client_, two));
  std::string got(two.size(), '\0');
  ASSERT_EQ(::recv(server_, got.data(), got.size(), MSG_WAITALL),
            static_cast<ssize_t>(got.size()));
  EXPECT_EQ(got, two);
  ASSERT_TRUE(WriteAll(client_, Resets(5, 1)));
  EXPECT_EQ(ReadToEnd(server_), Frame(kHttp2Headers, 5, "h"));
  EXPECT_EQ(relay_->closed_over_budget(), 2);
}

TEST_F(Http2RelayTest, ServerCloseReachesTheClientAfterItsLastBytes) {
  Connect({});
  const std::string last = Frame(kHttp2GoAway, 0, std::string(8, '\0'));
  ASSERT_TRUE(WriteAll(server_, last));
  ::close(server_);
  server_ = -1;
  EXPECT_EQ(ReadToEnd(client_), last);
}

TEST_F(Http2RelayTest, ClientCloseReachesTheServer) {
  Connect({});
  ASSERT_TRUE(WriteAll(client_, std::string(kHttp2ClientPreface)));
  ::close(client_);
  client_ = -1;
  EXPECT_EQ(ReadToEnd(server_), kHttp2ClientPreface);
}

TEST_F(Http2RelayTest, StopClosesEveryConnection) {
  Connect({});
  relay_->Stop();
  EXPECT_EQ(ReadToEnd(server_), "");
  EXPECT_EQ(ReadToEnd(client_), "");
}

}  // namespace
}  // namespace jobwire::test
