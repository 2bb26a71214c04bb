// HttpAuth: who may use the HTTP face when jobwired has an auth token.
//
// Three credentials, checked in this order:
//  - `Authorization: Bearer TOKEN`, the token itself (scripts, curl);
//  - the `jobwire_session` cookie, set by `POST /v1/auth:login` for a
//    browser that presented the token once: HttpOnly (page scripts cannot
//    read it), SameSite=Strict, so the token never sits in a URL, in
//    history or in a log. A request with a method other than GET or HEAD
//    that relies on the cookie must also carry an `X-Jobwire-Csrf` header,
//    which a page of another origin cannot add without a CORS preflight;
//  - a stream ticket, `?ticket=...` on GET routes only: short-lived (60 s
//    by default), from `POST /v1/auth:ticket`, for an EventSource on a page
//    served elsewhere (EventSource cannot send headers).
// Sessions and tickets are `KIND.EXPIRY.SIGNATURE`, the signature an
// HMAC-SHA256 (OpenSSL) under a key derived from the token: they survive a
// restart and die with a changed token. Nothing is stored server-side.
//
// With a token table (--auth-token-file, token_file.h) instead, any of its
// tokens is accepted and the request's caller has that token's name and
// scopes; sessions and tickets are `KIND.NAME.EXPIRY.SIGNATURE`, keyed by
// the named token's own, so they die when it is changed or removed. The
// caller's scopes are then checked per route (CheckScope) as over gRPC.
//
// Thread-safety: immutable after construction; all methods are const and
// thread-safe. The clock is not owned and must outlive this.
#ifndef JOBWIRE_SERVER_HTTP_HTTP_AUTH_H_
#define JOBWIRE_SERVER_HTTP_HTTP_AUTH_H_

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "server/common/clock.h"
#include "server/transport/token_file.h"

namespace jobwire {

class HttpAuth {
 public:
  struct Options {
    // Empty (and no table): auth is off, every request is allowed.
    std::string token;
    absl::Duration session_ttl = absl::Hours(12);
    absl::Duration ticket_ttl = absl::Seconds(60);
    // Named tokens with scopes, instead of `token`.
    std::shared_ptr<TokenTable> table;
  };

  // The credentials a request presented.
  struct Request {
    absl::string_view method;         // "GET", "POST", ...
    absl::string_view authorization;  // the Authorization header
    absl::string_view cookie;         // the Cookie header
    absl::string_view csrf;           // the X-Jobwire-Csrf header
    absl::string_view ticket;         // the ticket query parameter
  };

  static constexpr char kCookieName[] = "jobwire_session";

  // Who a request is: "token" with every scope for --auth-token, else the
  // table entry's name and scopes.
  struct Caller {
    std::string name;
    std::vector<std::string> scopes;
    bool all_scopes = false;
  };

  HttpAuth(Options options, Clock* clock);

  bool enabled() const {
    return !options_.token.empty() || options_.table != nullptr;
  }

  // OK when auth is off or the request carries a valid credential (see the
  // class comment); UNAUTHENTICATED naming what is missing or wrong.
  absl::Status Check(const Request& request) const {
    return Authenticate(request).status();
  }
  // The same, with the caller (every scope when auth is off).
  absl::StatusOr<Caller> Authenticate(const Request& request) const;

  // OK when `caller` holds `scope`, the one that `what` needs (for a route,
  // ScopeOf its gRPC method, "/jobwire.v1.JobService/SubmitJob"); else
  // PERMISSION_DENIED naming the token and the scope.
  static absl::Status CheckScope(const Caller& caller, absl::string_view scope,
                                 absl::string_view what);

  // The caller whose token is `token`; nullopt for none (constant time).
  std::optional<Caller> CallerOfToken(absl::string_view token) const;

  // Whether `token` is the server's token; constant time.
  bool TokenMatches(absl::string_view token) const;

  // A new session cookie value / stream ticket, and when it expires.
  std::string NewSession(absl::Time* expires) const;
  std::string NewTicket(absl::Time* expires) const;
  // The same for `caller` (needed with a table).
  std::string NewSession(const Caller& caller, absl::Time* expires) const;
  std::string NewTicket(const Caller& caller, absl::Time* expires) const;

  // The bearer token of an Authorization header; empty when there is none.
  static absl::string_view BearerOf(absl::string_view authorization);
  // The value of cookie `name` in a Cookie header; empty when absent.
  static absl::string_view CookieOf(absl::string_view header,
                                    absl::string_view name);

 private:
  std::string Sign(absl::string_view kind, const Caller& caller,
                   absl::Time expires) const;
  std::optional<Caller> Verify(absl::string_view kind,
                               absl::string_view value) const;

  const Options options_;
  Clock* const clock_;
  std::string key_;  // HMAC key, derived from the token
};

}  // namespace jobwire

#endif  // JOBWIRE_SERVER_HTTP_HTTP_AUTH_H_
