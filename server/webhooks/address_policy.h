// AddressPolicy: the SSRF guard of webhook deliveries.
//
// A webhook URL is chosen by whoever submits a job, so by default jobwired
// refuses to connect to anything but public unicast addresses: loopback,
// private (10/8, 172.16/12, 192.168/16), shared (100.64/10), link-local
// (169.254/16, fe80::/10), unique-local (fc00::/7), site-local, multicast,
// unspecified, broadcast, reserved and documentation ranges, and IPv6
// forms that embed a refused IPv4 address (IPv4-mapped, IPv4-compatible,
// NAT64 64:ff9b::/96, 6to4 2002::/16). Ranges given with allow CIDRs
// (--webhook-allow-cidr) are let through whatever they are in.
//
// The sender checks the address it is about to connect to (libcurl's
// open-socket callback, after DNS), so a name that resolves to a refused
// address, or that changes between checks (DNS rebinding), gets no
// connection. SubmitJob checks the URL itself with CheckUrl: what can never
// be delivered is refused up front.
//
// Immutable after construction; thread-safe.
#ifndef JOBWIRE_SERVER_WEBHOOKS_ADDRESS_POLICY_H_
#define JOBWIRE_SERVER_WEBHOOKS_ADDRESS_POLICY_H_

#include <sys/socket.h>

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace jobwire {

// An IPv4 or IPv6 address; IPv4 uses the first 4 bytes.
struct IpAddress {
  bool v4 = true;
  std::array<uint8_t, 16> bytes{};

  // Parses "1.2.3.4" or "::1" (no brackets, no zone). nullopt otherwise.
  static std::optional<IpAddress> Parse(absl::string_view text);
  // From a sockaddr_in / sockaddr_in6; nullopt for other families.
  static std::optional<IpAddress> FromSockaddr(const sockaddr* addr);
  std::string ToString() const;
};

// The name of the refused range `address` is in ("loopback", "private",
// "link-local", ...), or nullopt for a public unicast address. An IPv6
// address embedding an IPv4 one is judged by that IPv4 address.
std::optional<std::string> RefusedRange(const IpAddress& address);

class AddressPolicy {
 public:
  // `allow_cidrs`: "127.0.0.1/32", "10.0.0.0/8", "fd00::/8"; a bare address
  // is a /32 or /128. INVALID_ARGUMENT naming a bad one.
  static absl::StatusOr<AddressPolicy> Create(
      const std::vector<std::string>& allow_cidrs);

  // Why a connection to `address` is refused ("127.0.0.1 is loopback"), or
  // nullopt when it is allowed.
  std::optional<std::string> Refusal(const IpAddress& address) const;

  // Checks a webhook URL at submit time: an http or https URL with a host,
  // at most 2048 characters, whose host, when it is a literal address, is
  // allowed. INVALID_ARGUMENT with a field violation on `field` otherwise.
  // A host name is not resolved here (it is checked at each connect).
  absl::Status CheckUrl(absl::string_view url,
                        absl::string_view field = "job.webhook.url") const;

 private:
  struct Cidr {
    IpAddress base;
    int prefix = 0;
  };
  explicit AddressPolicy(std::vector<Cidr> allow) : allow_(std::move(allow)) {}
  bool Allowed(const IpAddress& address) const;

  std::vector<Cidr> allow_;
};

}  // namespace jobwire

#endif  // JOBWIRE_SERVER_WEBHOOKS_ADDRESS_POLICY_H_
