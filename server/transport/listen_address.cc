#include "server/transport/listen_address.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <string>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace jobwire {
namespace {

absl::Status Invalid(absl::string_view text, absl::string_view why) {
  return absl::InvalidArgumentError(
      absl::StrCat("bad address \"", text, "\": ", why));
}

absl::StatusOr<ListenAddress> ParseTcp(absl::string_view text) {
  ListenAddress address;
  address.kind = ListenAddress::Kind::kTcp;
  absl::string_view port_text;
  if (absl::StartsWith(text, "[")) {
    size_t close = text.find(']');
    if (close == absl::string_view::npos) {
      return Invalid(text, "missing ']' after an IPv6 address");
    }
    address.host = std::string(text.substr(1, close - 1));
    absl::string_view rest = text.substr(close + 1);
    if (!absl::StartsWith(rest, ":")) {
      return Invalid(text,
                     "expected HOST:PORT, unix:PATH or unix-abstract:NAME");
    }
    port_text = rest.substr(1);
  } else {
    size_t colon = text.rfind(':');
    if (colon == absl::string_view::npos) {
      return Invalid(text,
                     "expected HOST:PORT, unix:PATH or unix-abstract:NAME");
    }
    address.host = std::string(text.substr(0, colon));
    if (address.host.find(':') != std::string::npos) {
      return Invalid(text, "write an IPv6 host in brackets, e.g. [::1]:50051");
    }
    port_text = text.substr(colon + 1);
  }
  if (address.host.empty()) return Invalid(text, "the host is empty");
  int port = 0;
  if (port_text.empty() || !absl::SimpleAtoi(port_text, &port) || port < 0 ||
      port > 65535) {
    return Invalid(text, "the port must be a number from 0 to 65535");
  }
  address.port = port;
  return address;
}

}  // namespace

std::string ListenAddress::ToUri() const {
  switch (kind) {
    case Kind::kUnixPath:
      return absl::StrCat("unix:", path);
    case Kind::kUnixAbstract:
      return absl::StrCat("unix-abstract:", path);
    case Kind::kTcp:
      if (host.find(':') != std::string::npos) {
        return absl::StrCat("[", host, "]:", port);
      }
      return absl::StrCat(host, ":", port);
  }
  return "";
}

bool ListenAddress::IsLoopback() const {
  if (is_unix()) return true;
  if (absl::AsciiStrToLower(host) == "localhost") return true;
  in_addr v4;
  if (inet_pton(AF_INET, host.c_str(), &v4) == 1) {
    return (ntohl(v4.s_addr) >> 24) == 127;
  }
  in6_addr v6;
  if (inet_pton(AF_INET6, host.c_str(), &v6) == 1) {
    return IN6_IS_ADDR_LOOPBACK(&v6);
  }
  return false;
}

absl::StatusOr<ListenAddress> ParseListenAddress(absl::string_view text) {
  if (text.empty()) return Invalid(text, "the address is empty");
  ListenAddress address;
  if (absl::ConsumePrefix(&text, "unix-abstract:")) {
    if (text.empty()) return Invalid(text, "the abstract socket name is empty");
    address.kind = ListenAddress::Kind::kUnixAbstract;
    address.path = std::string(text);
    return address;
  }
  if (absl::StartsWith(text, "unix:")) {
    absl::string_view path = text.substr(5);
    if (absl::ConsumePrefix(&path, "//")) {
      // unix:///abs is the URI form; unix://host/... names a host, which a
      // Unix socket cannot have.
      if (!absl::StartsWith(path, "/")) {
        return Invalid(text, "use unix:///ABSOLUTE/PATH or unix:PATH");
      }
    }
    if (path.empty()) return Invalid(text, "the socket path is empty");
    address.kind = ListenAddress::Kind::kUnixPath;
    address.path = std::string(path);
    return address;
  }
  return ParseTcp(text);
}

ListenAddress MakeAbsolute(ListenAddress address, absl::string_view cwd) {
  if (address.kind == ListenAddress::Kind::kUnixPath &&
      !absl::StartsWith(address.path, "/")) {
    absl::string_view rel = address.path;
    while (absl::ConsumePrefix(&rel, "./")) {
    }
    address.path = absl::StrCat(cwd, absl::EndsWith(cwd, "/") ? "" : "/", rel);
  }
  return address;
}

}  // namespace jobwire
