#include "server/http/http_auth.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "server/transport/token_auth.h"

namespace jobwire {
namespace {

std::string HmacSha256(absl::string_view key, absl::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), out,
       &len);
  return std::string(reinterpret_cast<const char*>(out), len);
}

}  // namespace

HttpAuth::HttpAuth(Options options, Clock* clock)
    : options_(std::move(options)), clock_(clock) {
  if (enabled()) key_ = HmacSha256(options_.token, "jobwire http session v1");
}

absl::string_view HttpAuth::BearerOf(absl::string_view authorization) {
  return BearerCredentials(authorization);
}

absl::string_view HttpAuth::CookieOf(absl::string_view header,
                                     absl::string_view name) {
  for (absl::string_view part : absl::StrSplit(header, ';')) {
    part = absl::StripAsciiWhitespace(part);
    if (absl::ConsumePrefix(&part, name) && absl::ConsumePrefix(&part, "=")) {
      return part;
    }
  }
  return {};
}

bool HttpAuth::TokenMatches(absl::string_view token) const {
  // Compare MACs, so the time taken says nothing of the token's length.
  return enabled() && ConstantTimeEquals(HmacSha256(key_, token),
                                         HmacSha256(key_, options_.token));
}

std::string HttpAuth::Sign(absl::string_view kind, absl::Time expires) const {
  const std::string payload =
      absl::StrCat(kind, ".", absl::ToUnixSeconds(expires));
  return absl::StrCat(payload, ".",
                      absl::WebSafeBase64Escape(HmacSha256(key_, payload)));
}

bool HttpAuth::Verify(absl::string_view kind, absl::string_view value) const {
  std::vector<absl::string_view> parts = absl::StrSplit(value, '.');
  int64_t expires = 0;
  if (parts.size() != 3 || parts[0] != kind ||
      !absl::SimpleAtoi(parts[1], &expires)) {
    return false;
  }
  const std::string payload = absl::StrCat(parts[0], ".", parts[1]);
  const std::string want = absl::WebSafeBase64Escape(HmacSha256(key_, payload));
  return ConstantTimeEquals(want, parts[2]) &&
         absl::FromUnixSeconds(expires) > clock_->Now();
}

std::string HttpAuth::NewSession(absl::Time* expires) const {
  *expires = clock_->Now() + options_.session_ttl;
  return Sign("s", *expires);
}

std::string HttpAuth::NewTicket(absl::Time* expires) const {
  *expires = clock_->Now() + options_.ticket_ttl;
  return Sign("t", *expires);
}

absl::Status HttpAuth::Check(const Request& request) const {
  if (!enabled()) return absl::OkStatus();
  if (!request.authorization.empty()) {
    if (TokenMatches(BearerOf(request.authorization))) return absl::OkStatus();
    return absl::UnauthenticatedError("wrong bearer token");
  }
  const absl::string_view session = CookieOf(request.cookie, kCookieName);
  if (!session.empty()) {
    if (!Verify("s", session)) {
      return absl::UnauthenticatedError(
          "session expired or invalid; log in again (POST /v1/auth:login)");
    }
    const bool safe = request.method == "GET" || request.method == "HEAD";
    if (!safe && request.csrf.empty()) {
      return absl::UnauthenticatedError(
          "a request authenticated by the session cookie needs the "
          "X-Jobwire-Csrf header");
    }
    return absl::OkStatus();
  }
  if (!request.ticket.empty()) {
    if (request.method != "GET") {
      return absl::UnauthenticatedError("a ticket is accepted on GET only");
    }
    if (!Verify("t", request.ticket)) {
      return absl::UnauthenticatedError("ticket expired or invalid");
    }
    return absl::OkStatus();
  }
  return absl::UnauthenticatedError(
      "missing credentials: send 'Authorization: Bearer TOKEN', or log in "
      "(POST /v1/auth:login) for a session cookie");
}

}  // namespace jobwire
