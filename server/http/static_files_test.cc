#include "server/http/static_files.h"

#include <string>

#include "absl/strings/match.h"
#include "gtest/gtest.h"

namespace jobwire::test {
namespace {

std::string Header(const StaticReply& r, const std::string& name) {
  for (const auto& [k, v] : r.headers) {
    if (k == name) return v;
  }
  return "";
}

TEST(StaticFilesTest, RootServesTheIndexPage) {
  const StaticFile* root = FindStaticFile("/");
  ASSERT_NE(root, nullptr);
  EXPECT_EQ(root, FindStaticFile("/ui/index.html"));
  EXPECT_EQ(root->content_type, "text/html; charset=utf-8");
  EXPECT_TRUE(absl::StrContains(root->body, "<!doctype html>"));
}

TEST(StaticFilesTest, EveryFileHasAPathTypeAndStrongEtag) {
  ASSERT_FALSE(EmbeddedFiles().empty());
  for (const StaticFile& f : EmbeddedFiles()) {
    EXPECT_TRUE(absl::StartsWith(f.path, "/ui/")) << f.path;
    EXPECT_FALSE(f.content_type.empty()) << f.path;
    EXPECT_EQ(f.etag.size(), 34u) << f.path;  // 32 hex digits in quotes
    EXPECT_TRUE(absl::StartsWith(f.etag, "\"")) << f.path;
    EXPECT_FALSE(f.body.empty()) << f.path;
  }
  EXPECT_EQ(FindStaticFile("/ui/app.js")->content_type,
            "text/javascript; charset=utf-8");
}

TEST(StaticFilesTest, UnknownPathsAreNotServed) {
  EXPECT_EQ(FindStaticFile("/ui/"), nullptr);
  EXPECT_EQ(FindStaticFile("/ui/../CMakeLists.txt"), nullptr);
  EXPECT_EQ(FindStaticFile("/v1/jobs"), nullptr);
  EXPECT_EQ(FindStaticFile("/index.html"), nullptr);
}

TEST(StaticFilesTest, AnswerCarriesSecurityHeadersAndBody) {
  const StaticFile& f = *FindStaticFile("/");
  StaticReply r = ServeStaticFile(f, "");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, f.body);
  EXPECT_EQ(Header(r, "Content-Security-Policy"), kDashboardCsp);
  EXPECT_EQ(Header(r, "X-Content-Type-Options"), "nosniff");
  EXPECT_EQ(Header(r, "Referrer-Policy"), "no-referrer");
  EXPECT_EQ(Header(r, "Cache-Control"), "no-cache");
  EXPECT_EQ(Header(r, "ETag"), f.etag);
  EXPECT_EQ(Header(r, "Content-Type"), f.content_type);
}

TEST(StaticFilesTest, MatchingIfNoneMatchGets304WithoutBody) {
  const StaticFile& f = *FindStaticFile("/ui/app.css");
  const std::string etag(f.etag);
  for (const std::string& header :
       {etag, "W/" + etag, "\"other\", " + etag, std::string("*")}) {
    StaticReply r = ServeStaticFile(f, header);
    EXPECT_EQ(r.status, 304) << header;
    EXPECT_TRUE(r.body.empty()) << header;
    EXPECT_EQ(Header(r, "ETag"), etag);
  }
  EXPECT_EQ(ServeStaticFile(f, "\"stale\"").status, 200);
}

}  // namespace
}  // namespace jobwire::test
