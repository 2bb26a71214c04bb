#include "server/transport/served_connections.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>

namespace jobwire::test {
namespace {

// Owns a descriptor.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

sockaddr_un UnixAddress(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  return addr;
}

// Whether the socket's peer has shut it down (a read sees end of file).
bool PeerShutDown(int fd) {
  char c;
  const ssize_t n = ::recv(fd, &c, 1, MSG_DONTWAIT);
  return n == 0;
}

class ServedConnectionsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/jobwire-served-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::system(("rm -rf " + dir_).c_str()); }

  // A listening Unix socket at `path`.
  static int ListenUnix(const std::string& path) {
    const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un addr = UnixAddress(path);
    if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
        ::listen(fd, 8) != 0) {
      ::close(fd);
      return -1;
    }
    return fd;
  }
  static int ConnectUnix(const std::string& path) {
    const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un addr = UnixAddress(path);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
      ::close(fd);
      return -1;
    }
    return fd;
  }

  std::string dir_;
};

TEST_F(ServedConnectionsTest,
       ShutsDownOnlyConnectionsAcceptedOnBoundAddresses) {
  const std::string served_path = dir_ + "/served.sock";
  const std::string other_path = dir_ + "/other.sock";
  Fd served_listener(ListenUnix(served_path));
  Fd other_listener(ListenUnix(other_path));
  ASSERT_GE(served_listener.get(), 0);
  ASSERT_GE(other_listener.get(), 0);
  Fd client(ConnectUnix(served_path));
  Fd other_client(ConnectUnix(other_path));
  ASSERT_GE(client.get(), 0);
  ASSERT_GE(other_client.get(), 0);
  Fd accepted(::accept(served_listener.get(), nullptr, nullptr));
  Fd other_accepted(::accept(other_listener.get(), nullptr, nullptr));
  ASSERT_GE(accepted.get(), 0);

  // TCP on loopback, port from the kernel.
  Fd tcp_listener(::socket(AF_INET, SOCK_STREAM, 0));
  sockaddr_in in{};
  in.sin_family = AF_INET;
  in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(
      ::bind(tcp_listener.get(), reinterpret_cast<sockaddr*>(&in), sizeof(in)),
      0);
  ASSERT_EQ(::listen(tcp_listener.get(), 8), 0);
  socklen_t len = sizeof(in);
  ASSERT_EQ(
      ::getsockname(tcp_listener.get(), reinterpret_cast<sockaddr*>(&in), &len),
      0);
  Fd tcp_client(::socket(AF_INET, SOCK_STREAM, 0));
  ASSERT_EQ(
      ::connect(tcp_client.get(), reinterpret_cast<sockaddr*>(&in), sizeof(in)),
      0);
  Fd tcp_accepted(::accept(tcp_listener.get(), nullptr, nullptr));
  ASSERT_GE(tcp_accepted.get(), 0);

  ListenAddress unix_address;
  unix_address.kind = ListenAddress::Kind::kUnixPath;
  unix_address.path = served_path;
  ListenAddress tcp_address;
  tcp_address.kind = ListenAddress::Kind::kTcp;
  tcp_address.host = "127.0.0.1";
  tcp_address.port = ntohs(in.sin_port);

  EXPECT_EQ(CountServedConnections({unix_address, tcp_address}), 2);
  EXPECT_EQ(CountServedConnections({tcp_address}), 1);
  EXPECT_EQ(ShutdownServedConnections({unix_address, tcp_address}), 2);

  // The two accepted connections are shut down: their clients read EOF.
  EXPECT_TRUE(PeerShutDown(client.get()));
  EXPECT_TRUE(PeerShutDown(tcp_client.get()));
  // Exactly two, so neither client end was touched (a client's local
  // address is not a bound one). Also untouched: the other server's
  // connection, both ends, and the listeners.
  EXPECT_FALSE(PeerShutDown(other_client.get()));
  EXPECT_FALSE(PeerShutDown(other_accepted.get()));
  Fd late(ConnectUnix(served_path));
  EXPECT_GE(late.get(), 0) << "the listener still accepts: " << errno;
}

TEST_F(ServedConnectionsTest, AbstractUnixNamesMatchByName) {
  const std::string name = "jobwire-served-test-" + std::to_string(::getpid());
  Fd listener(::socket(AF_UNIX, SOCK_STREAM, 0));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path + 1, name.data(), name.size());
  const socklen_t addr_len =
      static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name.size());
  ASSERT_EQ(
      ::bind(listener.get(), reinterpret_cast<sockaddr*>(&addr), addr_len), 0);
  ASSERT_EQ(::listen(listener.get(), 8), 0);
  Fd client(::socket(AF_UNIX, SOCK_STREAM, 0));
  ASSERT_EQ(
      ::connect(client.get(), reinterpret_cast<sockaddr*>(&addr), addr_len), 0);
  Fd accepted(::accept(listener.get(), nullptr, nullptr));
  ASSERT_GE(accepted.get(), 0);

  ListenAddress other;
  other.kind = ListenAddress::Kind::kUnixAbstract;
  other.path = name + "-not";
  EXPECT_EQ(ShutdownServedConnections({other}), 0);
  ListenAddress mine = other;
  mine.path = name;
  EXPECT_EQ(ShutdownServedConnections({mine}), 1);
  EXPECT_TRUE(PeerShutDown(client.get()));
}

}  // namespace
}  // namespace jobwire::test
