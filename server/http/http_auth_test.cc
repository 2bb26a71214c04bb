#include "server/http/http_auth.h"

#include <gtest/gtest.h>

#include <fstream>
#include <memory>
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
  // A session value is not a ticket. (Request holds views: keep the string.)
  const std::string session = auth.NewSession(&expires);
  r.ticket = session;
  EXPECT_FALSE(auth.Check(r).ok());
}

TEST(HttpAuthTest, TableTokensCarryTheirScopesIntoSessionsAndTickets) {
  FakeClock clock(absl::FromUnixSeconds(1'800'000'000));
  const std::string path = testing::TempDir() + "/http_auth_tokens";
  std::ofstream(path) << "reader r3ader-token read\n"
                      << "boss b0ss-token admin,read,submit\n";
  absl::StatusOr<std::shared_ptr<TokenTable>> table = TokenTable::Load(path);
  ASSERT_TRUE(table.ok()) << table.status();
  HttpAuth::Options options;
  options.table = *table;
  HttpAuth auth(options, &clock);
  EXPECT_TRUE(auth.enabled());
  HttpAuth::Request r = Get();
  r.authorization = "Bearer r3ader-token";
  absl::StatusOr<HttpAuth::Caller> caller = auth.Authenticate(r);
  ASSERT_TRUE(caller.ok()) << caller.status();
  EXPECT_EQ(caller->name, "reader");
  EXPECT_TRUE(HttpAuth::CheckScope(*caller, "read", "GET /v1/jobs").ok());
  const absl::Status denied =
      HttpAuth::CheckScope(*caller, "submit", "POST /v1/jobs");
  EXPECT_EQ(denied.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(denied.message(),
            "token reader lacks the scope 'submit' that POST /v1/jobs needs");
  r.authorization = "Bearer s3cret";
  EXPECT_EQ(auth.Check(r).code(), absl::StatusCode::kUnauthenticated);

  // A session keeps the caller; another token's name in it breaks the
  // signature.
  absl::Time expires;
  const std::string session = auth.NewSession(*caller, &expires);
  r = Get();
  const std::string cookie = "jobwire_session=" + session;
  r.cookie = cookie;
  caller = auth.Authenticate(r);
  ASSERT_TRUE(caller.ok()) << caller.status();
  EXPECT_EQ(caller->name, "reader");
  EXPECT_EQ(caller->scopes, std::vector<std::string>{"read"});
  std::string forged = session;
  forged.replace(forged.find(".reader."), 8, ".boss.");
  const std::string forged_cookie = "jobwire_session=" + forged;
  r.cookie = forged_cookie;
  EXPECT_EQ(auth.Check(r).code(), absl::StatusCode::kUnauthenticated);
  r.cookie = "";
  const std::string ticket = auth.NewTicket(*caller, &expires);
  r.ticket = ticket;
  EXPECT_TRUE(auth.Check(r).ok());
}

}  // namespace
}  // namespace jobwire::test
