#include "clients/cli/flags.h"

#include <gtest/gtest.h>

#include <CLI/CLI.hpp>

namespace jobwire::cli {
namespace {

TEST(FlagSetTest, ParsesBothValueFormsInAnyPositionAndKeepsPositionals) {
  CLI::App app;
  FlagSet flags(&app);
  std::string addr;
  absl::Duration timeout;
  bool follow = false;
  flags.String("addr", &addr, "");
  flags.Duration("timeout", &timeout, "");
  flags.Bool("follow", &follow, "");
  bool help = false;
  auto rest = ParseFlags(
      &app, {"a", "--addr", "x:1", "--timeout=2s", "--follow", "b"}, &help);
  ASSERT_TRUE(rest.ok()) << rest.status();
  EXPECT_EQ(*rest, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(addr, "x:1");
  EXPECT_EQ(timeout, absl::Seconds(2));
  EXPECT_TRUE(follow);
  EXPECT_FALSE(help);
}

TEST(FlagSetTest, RepeatableFlagCollectsEveryValueAndTakesOneEachTime) {
  CLI::App app;
  FlagSet flags(&app);
  std::vector<std::string> labels;
  flags.StringList("label", &labels, "");
  bool help = false;
  auto rest = ParseFlags(&app, {"--label", "a=1", "ID", "--label=b=2"}, &help);
  ASSERT_TRUE(rest.ok()) << rest.status();
  EXPECT_EQ(labels, (std::vector<std::string>{"a=1", "b=2"}));
  EXPECT_EQ(*rest, (std::vector<std::string>{"ID"}));
}

TEST(FlagSetTest, OutputTakesTheShortFormAndRefusesOtherFormats) {
  for (const auto& args : std::vector<std::vector<std::string>>{
           {"-o", "json"}, {"--output", "json"}, {"--output=json"}}) {
    CLI::App app;
    FlagSet flags(&app);
    std::string format = "table";
    flags.Output(&format, {"table", "json"});
    bool help = false;
    ASSERT_TRUE(ParseFlags(&app, args, &help).ok());
    EXPECT_EQ(format, "json");
  }
  CLI::App app;
  FlagSet flags(&app);
  std::string format = "table";
  flags.Output(&format, {"table", "json"});
  bool help = false;
  auto bad = ParseFlags(&app, {"-o", "yaml"}, &help);
  ASSERT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("--output"), absl::string_view::npos)
      << bad.status();
  EXPECT_NE(bad.status().message().find("want table or json"),
            absl::string_view::npos)
      << bad.status();
}

TEST(FlagSetTest, ErrorsNameTheFlag) {
  for (const auto& args : std::vector<std::vector<std::string>>{
           {"--timeout", "soon"}, {"--timeout"}, {"--count=x"}, {"--nope"}}) {
    CLI::App app;
    FlagSet flags(&app);
    absl::Duration timeout;
    int n = 0;
    flags.Duration("timeout", &timeout, "");
    flags.Int("count", &n, "");
    bool help = false;
    auto rest = ParseFlags(&app, args, &help);
    ASSERT_EQ(rest.status().code(), absl::StatusCode::kInvalidArgument);
    std::string flag = args[0].substr(0, args[0].find('='));
    EXPECT_NE(rest.status().message().find(flag), absl::string_view::npos)
        << rest.status();
  }
}

TEST(FlagSetTest, HelpIsNotAnError) {
  CLI::App app;
  bool help = false;
  ASSERT_TRUE(ParseFlags(&app, {"--help"}, &help).ok());
  EXPECT_TRUE(help);
}

}  // namespace
}  // namespace jobwire::cli
