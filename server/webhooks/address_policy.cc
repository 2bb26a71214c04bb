#include "server/webhooks/address_policy.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>

#include <cstring>
#include <memory>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "server/common/errors.h"

namespace jobwire {
namespace {

struct Range {
  const char* base;
  int prefix;
  const char* name;
};

// IPv4 ranges that are never a webhook receiver's (RFC 6890 and friends).
constexpr Range kRefusedV4[] = {
    {"0.0.0.0", 8, "unspecified (this network)"},
    {"10.0.0.0", 8, "private"},
    {"100.64.0.0", 10, "shared address space (CGNAT)"},
    {"127.0.0.0", 8, "loopback"},
    {"169.254.0.0", 16, "link-local"},
    {"172.16.0.0", 12, "private"},
    {"192.0.0.0", 24, "IETF protocol assignments"},
    {"192.0.2.0", 24, "documentation"},
    {"192.88.99.0", 24, "6to4 relay anycast"},
    {"192.168.0.0", 16, "private"},
    {"198.18.0.0", 15, "benchmarking"},
    {"198.51.100.0", 24, "documentation"},
    {"203.0.113.0", 24, "documentation"},
    {"224.0.0.0", 4, "multicast"},
    {"240.0.0.0", 4, "reserved (and broadcast)"},
};

constexpr Range kRefusedV6[] = {
    {"::", 128, "unspecified"},    {"::1", 128, "loopback"},
    {"100::", 64, "discard-only"}, {"2001:db8::", 32, "documentation"},
    {"fc00::", 7, "unique-local"}, {"fe80::", 10, "link-local"},
    {"fec0::", 10, "site-local"},  {"ff00::", 8, "multicast"},
};

bool InPrefix(const IpAddress& a, const IpAddress& base, int prefix) {
  if (a.v4 != base.v4) return false;
  int bits = prefix;
  for (size_t i = 0; bits > 0; ++i, bits -= 8) {
    const uint8_t mask =
        bits >= 8 ? 0xff : static_cast<uint8_t>(0xff << (8 - bits));
    if ((a.bytes[i] & mask) != (base.bytes[i] & mask)) return false;
  }
  return true;
}

IpAddress V4(const uint8_t* b) {
  IpAddress a;
  a.v4 = true;
  std::memcpy(a.bytes.data(), b, 4);
  return a;
}

// The IPv4 address an IPv6 one embeds, when it is one of the forms that
// carry one to an IPv4 host: mapped ::ffff:a.b.c.d, compatible ::a.b.c.d
// (deprecated; not :: or ::1), NAT64 64:ff9b::a.b.c.d, 6to4 2002:AABB:CCDD::.
std::optional<IpAddress> EmbeddedV4(const IpAddress& a) {
  if (a.v4) return std::nullopt;
  const uint8_t* b = a.bytes.data();
  static const uint8_t kZero[10] = {};
  if (std::memcmp(b, kZero, 10) == 0) {
    if (b[10] == 0xff && b[11] == 0xff) return V4(b + 12);  // mapped
    if (b[10] == 0 && b[11] == 0) {
      const bool small = b[12] == 0 && b[13] == 0 && b[14] == 0 && b[15] <= 1;
      if (!small) return V4(b + 12);  // compatible
    }
  }
  static const uint8_t kNat64[12] = {0, 0x64, 0xff, 0x9b, 0, 0,
                                     0, 0,    0,    0,    0, 0};
  if (std::memcmp(b, kNat64, 12) == 0) return V4(b + 12);
  if (b[0] == 0x20 && b[1] == 0x02) return V4(b + 2);  // 6to4
  return std::nullopt;
}

template <size_t N>
std::optional<std::string> FindRange(const IpAddress& a,
                                     const Range (&ranges)[N]) {
  for (const Range& r : ranges) {
    std::optional<IpAddress> base = IpAddress::Parse(r.base);
    if (base.has_value() && InPrefix(a, *base, r.prefix)) return r.name;
  }
  return std::nullopt;
}

}  // namespace

std::optional<IpAddress> IpAddress::Parse(absl::string_view text) {
  const std::string s(text);
  IpAddress a;
  if (inet_pton(AF_INET, s.c_str(), a.bytes.data()) == 1) {
    a.v4 = true;
    return a;
  }
  if (inet_pton(AF_INET6, s.c_str(), a.bytes.data()) == 1) {
    a.v4 = false;
    return a;
  }
  return std::nullopt;
}

std::optional<IpAddress> IpAddress::FromSockaddr(const sockaddr* addr) {
  if (addr == nullptr) return std::nullopt;
  IpAddress a;
  if (addr->sa_family == AF_INET) {
    sockaddr_in in;
    std::memcpy(&in, addr, sizeof(in));
    a.v4 = true;
    std::memcpy(a.bytes.data(), &in.sin_addr, 4);
    return a;
  }
  if (addr->sa_family == AF_INET6) {
    sockaddr_in6 in6;
    std::memcpy(&in6, addr, sizeof(in6));
    a.v4 = false;
    std::memcpy(a.bytes.data(), &in6.sin6_addr, 16);
    return a;
  }
  return std::nullopt;
}

std::string IpAddress::ToString() const {
  char buf[INET6_ADDRSTRLEN] = {};
  inet_ntop(v4 ? AF_INET : AF_INET6, bytes.data(), buf, sizeof(buf));
  return buf;
}

std::optional<std::string> RefusedRange(const IpAddress& address) {
  if (!address.v4) {
    if (std::optional<IpAddress> v4 = EmbeddedV4(address); v4.has_value()) {
      std::optional<std::string> inner = RefusedRange(*v4);
      if (inner.has_value()) return absl::StrCat(*inner, " (embedded in IPv6)");
      return std::nullopt;
    }
    return FindRange(address, kRefusedV6);
  }
  return FindRange(address, kRefusedV4);
}

absl::StatusOr<AddressPolicy> AddressPolicy::Create(
    const std::vector<std::string>& allow_cidrs) {
  std::vector<Cidr> allow;
  for (const std::string& text : allow_cidrs) {
    std::vector<absl::string_view> parts = absl::StrSplit(text, '/');
    std::optional<IpAddress> base =
        parts.empty() ? std::nullopt : IpAddress::Parse(parts[0]);
    int prefix = base.has_value() && base->v4 ? 32 : 128;
    bool ok = base.has_value() && parts.size() <= 2;
    if (ok && parts.size() == 2) {
      ok = absl::SimpleAtoi(parts[1], &prefix) && prefix >= 0 &&
           prefix <= (base->v4 ? 32 : 128);
    }
    if (!ok) {
      return absl::InvalidArgumentError(absl::StrCat(
          "bad CIDR \"", text, "\" (e.g. 127.0.0.1/32, fd00::/8)"));
    }
    allow.push_back(Cidr{*base, prefix});
  }
  return AddressPolicy(std::move(allow));
}

bool AddressPolicy::Allowed(const IpAddress& address) const {
  for (const Cidr& c : allow_) {
    if (InPrefix(address, c.base, c.prefix)) return true;
  }
  return false;
}

std::optional<std::string> AddressPolicy::Refusal(
    const IpAddress& address) const {
  // An IPv4-mapped address is the IPv4 host it names: an allowed IPv4 range
  // covers its mapped form too.
  if (Allowed(address)) return std::nullopt;
  std::optional<IpAddress> v4 = EmbeddedV4(address);
  if (v4.has_value() && Allowed(*v4)) return std::nullopt;
  std::optional<std::string> range = RefusedRange(address);
  if (!range.has_value()) return std::nullopt;
  return absl::StrCat(address.ToString(), " is ", *range,
                      " (refused; see --webhook-allow-cidr)");
}

absl::Status AddressPolicy::CheckUrl(absl::string_view url,
                                     absl::string_view field) const {
  if (url.empty()) return InvalidArgumentError(field, "is required");
  if (url.size() > 2048)
    return InvalidArgumentError(field, "longer than 2048 characters");
  std::unique_ptr<CURLU, void (*)(CURLU*)> h(curl_url(), curl_url_cleanup);
  if (h == nullptr) return absl::ResourceExhaustedError("curl_url");
  const std::string text(url);
  if (curl_url_set(h.get(), CURLUPART_URL, text.c_str(), 0) != CURLUE_OK) {
    return InvalidArgumentError(field, "is not a URL");
  }
  auto part = [&h](CURLUPart which) -> std::string {
    char* value = nullptr;
    if (curl_url_get(h.get(), which, &value, 0) != CURLUE_OK ||
        value == nullptr) {
      return "";
    }
    std::string out(value);
    curl_free(value);
    return out;
  };
  const std::string scheme = absl::AsciiStrToLower(part(CURLUPART_SCHEME));
  if (scheme != "http" && scheme != "https") {
    return InvalidArgumentError(
        field, absl::StrCat("scheme \"", scheme, "\" is not http or https"));
  }
  std::string host = part(CURLUPART_HOST);
  if (host.empty()) return InvalidArgumentError(field, "has no host");
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  if (size_t zone = host.find('%'); zone != std::string::npos) {
    host.resize(zone);
  }
  if (std::optional<IpAddress> literal = IpAddress::Parse(host)) {
    if (std::optional<std::string> why = Refusal(*literal)) {
      return InvalidArgumentError(field, *why);
    }
  }
  return absl::OkStatus();
}

}  // namespace jobwire
