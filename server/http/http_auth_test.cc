#include "server/http/http_auth.h"

#include <gtest/gtest.h>

#include <string>

#include "server/common/clock.h"

namespace jobwire::test {
namespace {

HttpAuth::Request Get() {
  HttpAuth::Request r;
  r.method = "GET";
  return r;
}

TEST(HttpAuthTest, OffAllowsEverything) {
  FakeClock clock(absl::FromUnixSeconds(1'800'000'000));
  HttpAuth auth({}, &clock);
  EXPECT_FALSE(auth.enabled());
  EXPECT_TRUE(auth.Check(Get()).ok());
  EXPECT_FALSE(auth.TokenMatches(""));
}

TEST(HttpAuthTest, BearerTokenMustMatch) {
  FakeClock clock(absl::FromUnixSeconds(1'800'000'000));
  HttpAuth auth({"s3cret"}, &clock);
  HttpAuth::Request r = Get();
  EXPECT_EQ(auth.Check(r).code(), absl::StatusCode::kUnauthenticated);
  r.authorization = "Bearer s3cret";
  EXPECT_TRUE(auth.Check(r).ok());
  r.authorization = "bearer  s3cret ";
  EXPECT_TRUE(auth.Check(r).ok());
  r.authorization = "Bearer s3cre";
  EXPECT_EQ(auth.Check(r).code(), absl::StatusCode::kUnauthenticated);
}

TEST(HttpAuthTest, SessionCookieExpiresAndNeedsCsrfHeaderToWrite) {
  FakeClock clock(absl::FromUnixSeconds(1'800'000'000));
  HttpAuth auth({"s3cret", absl::Hours(1), absl::Seconds(60)}, &clock);
  absl::Time expires;
  const std::string cookie = std::string("a=b; ") + HttpAuth::kCookieName +
                             "=" + auth.NewSession(&expires);
  EXPECT_EQ(expires, clock.Now() + absl::Hours(1));
  HttpAuth::Request r = Get();
  r.cookie = cookie;
  EXPECT_TRUE(auth.Check(r).ok());
  r.method = "POST";
  EXPECT_EQ(auth.Check(r).code(), absl::StatusCode::kUnauthenticated);
  r.csrf = "1";
  EXPECT_TRUE(auth.Check(r).ok());
  clock.Advance(absl::Hours(1));
  EXPECT_EQ(auth.Check(r).code(), absl::StatusCode::kUnauthenticated);
}

TEST(HttpAuthTest, ForgedOrOtherTokensSessionsAreRefused) {
  FakeClock clock(absl::FromUnixSeconds(1'800'000'000));
  HttpAuth auth({"s3cret"}, &clock);
  HttpAuth other({"other"}, &clock);
  absl::Time expires;
  HttpAuth::Request r = Get();
  const std::string theirs =
      std::string(HttpAuth::kCookieName) + "=" + other.NewSession(&expires);
  r.cookie = theirs;
  EXPECT_FALSE(auth.Check(r).ok());
  // A later expiry with the old signature.
  std::string mine = auth.NewSession(&expires);
  mine[3] = mine[3] == '9' ? '8' : '9';
  const std::string forged = std::string(HttpAuth::kCookieName) + "=" + mine;
  r.cookie = forged;
  EXPECT_FALSE(auth.Check(r).ok());
}

TEST(HttpAuthTest, TicketIsShortLivedAndForGetOnly) {
  FakeClock clock(absl::FromUnixSeconds(1'800'000'000));
  HttpAuth auth({"s3cret"}, &clock);
  absl::Time expires;
  const std::string ticket = auth.NewTicket(&expires);
  HttpAuth::Request r = Get();
  r.ticket = ticket;
  EXPECT_TRUE(auth.Check(r).ok());
  r.method = "POST";
  EXPECT_FALSE(auth.Check(r).ok());
  r.method = "GET";
  clock.Advance(absl::Seconds(61));
  EXPECT_FALSE(auth.Check(r).ok());
  // A session value is not a ticket.
  r.ticket = auth.NewSession(&expires);
  EXPECT_FALSE(auth.Check(r).ok());
}

}  // namespace
}  // namespace jobwire::test
