#include "server/transport/token_file.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "absl/strings/match.h"

namespace jobwire {
namespace {

TEST(TokenFileTest, EveryMethodHasAScope) {
  EXPECT_EQ(ScopeOf("/jobwire.v1.JobService/SubmitJob"), "submit");
  EXPECT_EQ(ScopeOf("/jobwire.v1.JobService/SubmitJobs"), "submit");
  for (const char* m :
       {"GetJob", "ListJobs", "WatchJob", "WatchJobs", "ExplainJob"}) {
    EXPECT_EQ(ScopeOf(std::string("/jobwire.v1.JobService/") + m), "read") << m;
  }
  EXPECT_EQ(ScopeOf("/jobwire.v1.AdminService/GetServerInfo"), "read");
  EXPECT_EQ(ScopeOf("/jobwire.v1.WorkerService/Connect"), "work");
  for (const char* m :
       {"/jobwire.v1.JobService/CancelJob",
        "/jobwire.v1.JobService/BulkUpdateJobs",
        "/jobwire.v1.AdminService/Backup",
        "/jobwire.v1.AdminService/PauseDispatch", "/unknown.Service/Method"}) {
    EXPECT_EQ(ScopeOf(m), "admin") << m;
  }
}

TEST(TokenFileTest, ParsesNamesTokensAndScopes) {
  auto entries = TokenTable::Parse(
      "# comment\n\nci   s3cret-ci  submit,read\n"
      "worker\tw0rker-token work\n");
  ASSERT_TRUE(entries.ok()) << entries.status();
  ASSERT_EQ(entries->size(), 2u);
  EXPECT_EQ((*entries)[0].name, "ci");
  EXPECT_EQ((*entries)[0].token, "s3cret-ci");
  EXPECT_EQ((*entries)[0].scopes, (std::vector<std::string>{"submit", "read"}));
  EXPECT_EQ((*entries)[1].scopes, (std::vector<std::string>{"work"}));
}

TEST(TokenFileTest, BadLinesAreRefusedNamingTheLine) {
  struct Case {
    const char* text;
    const char* says;
  };
  for (const Case& c : std::vector<Case>{
           {"a s3cret-a", "line 1: want NAME TOKEN"},
           {"a s3cret-a read\nb x read", "line 2: token of b: too short"},
           {"a s3cret-a write", "unknown scope \"write\""},
           {"a s3cret-a read\na s3cret-b read", "name a given twice"},
           {"a s3cret-a read\nb s3cret-a read", "is also a's"},
           {"# nothing\n", "no token"},
       }) {
    auto entries = TokenTable::Parse(c.text);
    ASSERT_FALSE(entries.ok()) << c.text;
    EXPECT_TRUE(absl::StrContains(entries.status().message(), c.says))
        << entries.status();
  }
}

TEST(TokenFileTest, TokensCompareWholly) {
  EXPECT_TRUE(ConstantTimeEquals("s3cret", "s3cret"));
  EXPECT_FALSE(ConstantTimeEquals("s3cre", "s3cret"));
  EXPECT_FALSE(ConstantTimeEquals("s3cretX", "s3cret"));
  EXPECT_FALSE(ConstantTimeEquals("", "s3cret"));
}

}  // namespace
}  // namespace jobwire
