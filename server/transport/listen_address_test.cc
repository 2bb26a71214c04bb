#include "server/transport/listen_address.h"

#include <gtest/gtest.h>

namespace jobwire::test {
namespace {

TEST(ListenAddressTest, ParsesRelativeUnixPath) {
  absl::StatusOr<ListenAddress> a = ParseListenAddress("unix:var/jobwire.sock");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->kind, ListenAddress::Kind::kUnixPath);
  EXPECT_EQ(a->path, "var/jobwire.sock");
  EXPECT_EQ(a->ToUri(), "unix:var/jobwire.sock");
}

TEST(ListenAddressTest, ParsesAbsoluteUnixPathInBothForms) {
  absl::StatusOr<ListenAddress> plain = ParseListenAddress("unix:/run/j.sock");
  absl::StatusOr<ListenAddress> uri = ParseListenAddress("unix:///run/j.sock");
  ASSERT_TRUE(plain.ok() && uri.ok());
  EXPECT_EQ(plain->path, "/run/j.sock");
  EXPECT_EQ(uri->path, "/run/j.sock");
  EXPECT_EQ(uri->ToUri(), "unix:/run/j.sock");
}

TEST(ListenAddressTest, RejectsUnixUriWithAHost) {
  absl::StatusOr<ListenAddress> a =
      ParseListenAddress("unix://host/run/j.sock");
  EXPECT_EQ(a.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ListenAddressTest, ParsesAbstractSocket) {
  absl::StatusOr<ListenAddress> a = ParseListenAddress("unix-abstract:jobwire");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->kind, ListenAddress::Kind::kUnixAbstract);
  EXPECT_EQ(a->path, "jobwire");
  EXPECT_EQ(a->ToUri(), "unix-abstract:jobwire");
  EXPECT_TRUE(a->IsLoopback());
}

TEST(ListenAddressTest, ParsesTcpHostsAndPorts) {
  absl::StatusOr<ListenAddress> v4 = ParseListenAddress("127.0.0.1:50051");
  ASSERT_TRUE(v4.ok());
  EXPECT_EQ(v4->host, "127.0.0.1");
  EXPECT_EQ(v4->port, 50051);
  absl::StatusOr<ListenAddress> v6 = ParseListenAddress("[::1]:0");
  ASSERT_TRUE(v6.ok());
  EXPECT_EQ(v6->host, "::1");
  EXPECT_EQ(v6->port, 0);
  EXPECT_EQ(v6->ToUri(), "[::1]:0");
}

TEST(ListenAddressTest, RejectsMalformedAddresses) {
  for (const char* bad : {"", "unix:", "unix-abstract:", "localhost", ":50051",
                          "host:", "host:port", "host:70000", "::1:50051",
                          "[::1]50051", "[::1"}) {
    EXPECT_EQ(ParseListenAddress(bad).status().code(),
              absl::StatusCode::kInvalidArgument)
        << bad;
  }
}

TEST(ListenAddressTest, ErrorNamesTheAddress) {
  absl::Status s = ParseListenAddress("host:70000").status();
  EXPECT_NE(s.message().find("host:70000"), absl::string_view::npos) << s;
}

TEST(ListenAddressTest, LoopbackIsUnixLocalhost127AndV6One) {
  for (const char* yes : {"unix:x.sock", "localhost:1", "127.0.0.1:1",
                          "127.9.9.9:1", "[::1]:1"}) {
    EXPECT_TRUE(ParseListenAddress(yes)->IsLoopback()) << yes;
  }
  for (const char* no :
       {"0.0.0.0:1", "10.0.0.1:1", "[::]:1", "example.com:1"}) {
    EXPECT_FALSE(ParseListenAddress(no)->IsLoopback()) << no;
  }
}

TEST(ListenAddressTest, MakeAbsoluteResolvesOnlyRelativeUnixPaths) {
  EXPECT_EQ(MakeAbsolute(*ParseListenAddress("unix:./var/j.sock"), "/srv").path,
            "/srv/var/j.sock");
  EXPECT_EQ(MakeAbsolute(*ParseListenAddress("unix:/abs.sock"), "/srv").path,
            "/abs.sock");
  EXPECT_EQ(MakeAbsolute(*ParseListenAddress("unix-abstract:n"), "/srv").path,
            "n");
  EXPECT_EQ(MakeAbsolute(*ParseListenAddress("127.0.0.1:5"), "/srv").ToUri(),
            "127.0.0.1:5");
}

}  // namespace
}  // namespace jobwire::test
