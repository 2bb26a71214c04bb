#include "server/http/http_auth.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
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
  if (!options_.token.empty()) {
    key_ = HmacSha256(options_.token, "jobwire http session v1");
  }
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
  return CallerOfToken(token).has_value();
}

std::optional<HttpAuth::Caller> HttpAuth::CallerOfToken(
    absl::string_view token) const {
  if (options_.table != nullptr) {
    std::optional<TokenTable::Entry> entry = options_.table->Find(token);
    if (!entry.has_value() || token.empty()) return std::nullopt;
    return Caller{entry->name, entry->scopes, false};
  }
  // Compare MACs, so the time taken says nothing of the token's length.
  if (!enabled() || !ConstantTimeEquals(HmacSha256(key_, token),
                                        HmacSha256(key_, options_.token))) {
    return std::nullopt;
  }
  return Caller{"token", {}, true};
}

absl::Status HttpAuth::CheckScope(const Caller& caller, absl::string_view scope,
                                  absl::string_view what) {
  if (caller.all_scopes) return absl::OkStatus();
  for (const std::string& s : caller.scopes) {
    if (s == scope) return absl::OkStatus();
  }
  return absl::PermissionDeniedError(absl::StrCat("token ", caller.name,
                                                  " lacks the scope '", scope,
                                                  "' that ", what, " needs"));
}

namespace {
constexpr char kKeyLabel[] = "jobwire http session v1";
}  // namespace

std::string HttpAuth::Sign(absl::string_view kind, const Caller& caller,
                           absl::Time expires) const {
  if (options_.table == nullptr) {
    const std::string payload =
        absl::StrCat(kind, ".", absl::ToUnixSeconds(expires));
    return absl::StrCat(payload, ".",
                        absl::WebSafeBase64Escape(HmacSha256(key_, payload)));
  }
  std::optional<TokenTable::Entry> entry =
      options_.table->FindByName(caller.name);
  const std::string key =
      HmacSha256(entry.has_value() ? entry->token : "", kKeyLabel);
  const std::string payload =
      absl::StrCat(kind, ".", caller.name, ".", absl::ToUnixSeconds(expires));
  return absl::StrCat(payload, ".",
                      absl::WebSafeBase64Escape(HmacSha256(key, payload)));
}

std::optional<HttpAuth::Caller> HttpAuth::Verify(
    absl::string_view kind, absl::string_view value) const {
  std::vector<absl::string_view> parts = absl::StrSplit(value, '.');
  const bool named = options_.table != nullptr;
  int64_t expires = 0;
  if (parts.size() != (named ? 4u : 3u) || parts[0] != kind ||
      !absl::SimpleAtoi(parts[named ? 2 : 1], &expires)) {
    return std::nullopt;
  }
  Caller caller{"token", {}, true};
  std::string key = key_;
  if (named) {
    std::optional<TokenTable::Entry> entry =
        options_.table->FindByName(parts[1]);
    if (!entry.has_value()) return std::nullopt;
    caller = Caller{entry->name, entry->scopes, false};
    key = HmacSha256(entry->token, kKeyLabel);
  }
  const std::string payload = absl::StrJoin(
      std::vector<absl::string_view>(parts.begin(), parts.end() - 1), ".");
  const std::string want = absl::WebSafeBase64Escape(HmacSha256(key, payload));
  if (!ConstantTimeEquals(want, parts.back()) ||
      absl::FromUnixSeconds(expires) <= clock_->Now()) {
    return std::nullopt;
  }
  return caller;
}

std::string HttpAuth::NewSession(absl::Time* expires) const {
  return NewSession(Caller{"token", {}, true}, expires);
}

std::string HttpAuth::NewTicket(absl::Time* expires) const {
  return NewTicket(Caller{"token", {}, true}, expires);
}

std::string HttpAuth::NewSession(const Caller& caller,
                                 absl::Time* expires) const {
  *expires = clock_->Now() + options_.session_ttl;
  return Sign("s", caller, *expires);
}

std::string HttpAuth::NewTicket(const Caller& caller,
                                absl::Time* expires) const {
  *expires = clock_->Now() + options_.ticket_ttl;
  return Sign("t", caller, *expires);
}

absl::StatusOr<HttpAuth::Caller> HttpAuth::Authenticate(
    const Request& request) const {
  if (!enabled()) return Caller{"anonymous", {}, true};
  if (!request.authorization.empty()) {
    std::optional<Caller> caller =
        CallerOfToken(BearerOf(request.authorization));
    if (caller.has_value()) return *std::move(caller);
    return absl::UnauthenticatedError("wrong bearer token");
  }
  const absl::string_view session = CookieOf(request.cookie, kCookieName);
  if (!session.empty()) {
    std::optional<Caller> caller = Verify("s", session);
    if (!caller.has_value()) {
      return absl::UnauthenticatedError(
          "session expired or invalid; log in again (POST /v1/auth:login)");
    }
    const bool safe = request.method == "GET" || request.method == "HEAD";
    if (!safe && request.csrf.empty()) {
      return absl::UnauthenticatedError(
          "a request authenticated by the session cookie needs the "
          "X-Jobwire-Csrf header");
    }
    return *std::move(caller);
  }
  if (!request.ticket.empty()) {
    if (request.method != "GET") {
      return absl::UnauthenticatedError("a ticket is accepted on GET only");
    }
    std::optional<Caller> caller = Verify("t", request.ticket);
    if (!caller.has_value()) {
      return absl::UnauthenticatedError("ticket expired or invalid");
    }
    return *std::move(caller);
  }
  return absl::UnauthenticatedError(
      "missing credentials: send 'Authorization: Bearer TOKEN', or log in "
      "(POST /v1/auth:login) for a session cookie");
}

}  // namespace jobwire
