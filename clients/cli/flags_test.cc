#include "clients/cli/flags.h"

#include <gtest/gtest.h>

namespace jobwire::cli {
namespace {

TEST(FlagSetTest, ParsesBothValueFormsAndKeepsPositionals) {
  FlagSet flags;
  std::string addr;
  absl::Duration timeout;
  bool follow = false;
  flags.String("addr", &addr, "");
  flags.Duration("timeout", &timeout, "");
  flags.Bool("follow", &follow, "");
  auto rest =
      flags.Parse({"a", "--addr", "x:1", "--timeout=2s", "--follow", "b"});
  ASSERT_TRUE(rest.ok()) << rest.status();
  EXPECT_EQ(*rest, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(addr, "x:1");
  EXPECT_EQ(timeout, absl::Seconds(2));
  EXPECT_TRUE(follow);
}

TEST(FlagSetTest, StopAtPositionalLeavesTheRestUntouched) {
  FlagSet flags;
  std::string addr;
  flags.String("addr", &addr, "");
  auto rest = flags.Parse({"--addr", "x:1", "info", "--bogus"}, true);
  ASSERT_TRUE(rest.ok());
  EXPECT_EQ(*rest, (std::vector<std::string>{"info", "--bogus"}));
}

TEST(FlagSetTest, RepeatableFlagCollectsEveryValue) {
  FlagSet flags;
  std::vector<std::string> labels;
  flags.StringList("label", &labels, "");
  ASSERT_TRUE(flags.Parse({"--label", "a=1", "--label=b=2"}).ok());
  EXPECT_EQ(labels, (std::vector<std::string>{"a=1", "b=2"}));
}

TEST(FlagSetTest, ErrorsNameTheFlag) {
  FlagSet flags;
  absl::Duration timeout;
  int n = 0;
  flags.Duration("timeout", &timeout, "");
  flags.Int("count", &n, "");
  for (const auto& args : std::vector<std::vector<std::string>>{
           {"--timeout", "soon"}, {"--timeout"}, {"--count=x"}, {"--nope"}}) {
    auto rest = flags.Parse(args);
    ASSERT_EQ(rest.status().code(), absl::StatusCode::kInvalidArgument);
    std::string flag = args[0].substr(0, args[0].find('='));
    EXPECT_NE(rest.status().message().find(flag), absl::string_view::npos)
        << rest.status();
  }
}

TEST(FlagSetTest, HelpIsNotAnError) {
  FlagSet flags;
  ASSERT_TRUE(flags.Parse({"--help"}).ok());
  EXPECT_TRUE(flags.help_requested());
}

}  // namespace
}  // namespace jobwire::cli
