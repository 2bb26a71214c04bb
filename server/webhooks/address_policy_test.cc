#include "server/webhooks/address_policy.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/common/errors.h"

// Pure checks: nothing here opens a socket, so a broken guard cannot send
// traffic anywhere.
namespace jobwire::test {
namespace {

using ::testing::HasSubstr;

AddressPolicy Policy(std::vector<std::string> allow = {}) {
  absl::StatusOr<AddressPolicy> p = AddressPolicy::Create(allow);
  EXPECT_TRUE(p.ok()) << p.status();
  return *std::move(p);
}

std::optional<std::string> RefusalOf(const AddressPolicy& p,
                                     absl::string_view ip) {
  std::optional<IpAddress> a = IpAddress::Parse(ip);
  EXPECT_TRUE(a.has_value()) << ip;
  return p.Refusal(*a);
}

TEST(AddressPolicyTest, RefusesEveryNonPublicRange) {
  const AddressPolicy p = Policy();
  for (absl::string_view ip : {
           "0.0.0.0",
           "0.1.2.3",
           "10.0.0.1",
           "10.255.255.255",
           "100.64.0.1",
           "100.127.255.254",
           "127.0.0.1",
           "127.255.0.9",
           "169.254.169.254",
           "172.16.0.1",
           "172.31.255.255",
           "192.0.0.8",
           "192.0.2.1",
           "192.168.1.1",
           "198.18.0.1",
           "198.51.100.7",
           "203.0.113.9",
           "224.0.0.251",
           "239.255.255.250",
           "240.0.0.1",
           "255.255.255.255",
           "::",
           "::1",
           "fe80::1",
           "febf:ffff::1",
           "fc00::1",
           "fd12:3456::1",
           "fec0::1",
           "ff02::1",
           "2001:db8::1",
           "100::1",
           "::ffff:127.0.0.1",
           "::ffff:10.1.2.3",
           "::ffff:169.254.169.254",
           "::127.0.0.1",
           "::192.168.0.1",
           "64:ff9b::10.0.0.1",
           "64:ff9b::127.0.0.1",
           "2002:7f00:1::",
           "2002:a9fe:a9fe::1",
       }) {
    EXPECT_TRUE(RefusalOf(p, ip).has_value()) << ip << " was let through";
  }
}

TEST(AddressPolicyTest, LetsPublicAddressesThrough) {
  const AddressPolicy p = Policy();
  for (absl::string_view ip :
       {"1.1.1.1", "8.8.8.8", "100.63.255.255", "100.128.0.1", "172.15.0.1",
        "172.32.0.1", "192.169.0.1", "2606:4700::1111", "::ffff:8.8.8.8",
        "64:ff9b::8.8.8.8", "2002:0808:0808::1"}) {
    EXPECT_FALSE(RefusalOf(p, ip).has_value()) << ip << " was refused";
  }
}

TEST(AddressPolicyTest, RefusalNamesAddressAndRange) {
  const AddressPolicy p = Policy();
  EXPECT_THAT(*RefusalOf(p, "127.0.0.1"), HasSubstr("127.0.0.1 is loopback"));
  EXPECT_THAT(*RefusalOf(p, "169.254.169.254"), HasSubstr("link-local"));
  EXPECT_THAT(*RefusalOf(p, "::ffff:192.168.0.1"),
              HasSubstr("private (embedded in IPv6)"));
}

TEST(AddressPolicyTest, AllowedCidrsPassAndNothingElse) {
  const AddressPolicy p = Policy({"127.0.0.1/32", "fd00::/8"});
  EXPECT_FALSE(RefusalOf(p, "127.0.0.1").has_value());
  EXPECT_FALSE(RefusalOf(p, "::ffff:127.0.0.1").has_value());
  EXPECT_FALSE(RefusalOf(p, "fd00::5").has_value());
  EXPECT_TRUE(RefusalOf(p, "127.0.0.2").has_value());
  EXPECT_TRUE(RefusalOf(p, "::1").has_value());
  EXPECT_TRUE(RefusalOf(p, "fc00::1").has_value());
  EXPECT_TRUE(RefusalOf(p, "10.0.0.1").has_value());
}

TEST(AddressPolicyTest, BadCidrsAreRefused) {
  for (const char* bad :
       {"127.0.0.1/33", "nope", "::1/129", "1.2.3.4/x", "1.2.3.4/8/9", ""}) {
    EXPECT_TRUE(absl::IsInvalidArgument(AddressPolicy::Create({bad}).status()))
        << bad;
  }
}

TEST(AddressPolicyTest, SockaddrsOfBothFamilies) {
  const AddressPolicy p = Policy();
  sockaddr_in in{};
  in.sin_family = AF_INET;
  inet_pton(AF_INET, "127.0.0.1", &in.sin_addr);
  auto a = IpAddress::FromSockaddr(reinterpret_cast<sockaddr*>(&in));
  ASSERT_TRUE(a.has_value());
  EXPECT_TRUE(p.Refusal(*a).has_value());
  sockaddr_in6 in6{};
  in6.sin6_family = AF_INET6;
  inet_pton(AF_INET6, "::ffff:10.0.0.1", &in6.sin6_addr);
  a = IpAddress::FromSockaddr(reinterpret_cast<sockaddr*>(&in6));
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(a->ToString(), "::ffff:10.0.0.1");
  EXPECT_TRUE(p.Refusal(*a).has_value());
}

TEST(AddressPolicyTest, CheckUrlRefusesWhatCanNeverBeDelivered) {
  const AddressPolicy p = Policy();
  EXPECT_TRUE(p.CheckUrl("https://hooks.example.com/x?y=1").ok());
  EXPECT_TRUE(p.CheckUrl("http://8.8.8.8:8080/").ok());
  // A name is checked at connect time, not here.
  EXPECT_TRUE(p.CheckUrl("http://localhost:9/").ok());
  for (const char* bad :
       {"", "ftp://example.com/", "file:///etc/passwd", "gopher://x/",
        "http://127.0.0.1:9/", "http://[::1]:9/", "http://[::ffff:127.0.0.1]/",
        "http://169.254.169.254/latest/meta-data", "http://10.0.0.1/",
        "not a url", "http://"}) {
    absl::Status s = p.CheckUrl(bad);
    EXPECT_TRUE(absl::IsInvalidArgument(s)) << bad << ": " << s;
    std::vector<FieldViolation> v = GetFieldViolations(s);
    ASSERT_EQ(v.size(), 1u) << bad;
    EXPECT_EQ(v[0].field, "job.webhook.url");
  }
  const AddressPolicy allow = Policy({"127.0.0.1/32"});
  EXPECT_TRUE(allow.CheckUrl("http://127.0.0.1:9/").ok());
  EXPECT_FALSE(allow.CheckUrl("http://[::1]:9/").ok());
}

}  // namespace
}  // namespace jobwire::test
