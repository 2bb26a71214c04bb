#include "clients/cpp/default_address.h"

#include <gtest/gtest.h>

#include <map>
#include <string>

namespace jobwire::sdk {
namespace {

EnvFn Env(std::map<std::string, std::string> vars) {
  return [vars](const std::string& name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

TEST(DefaultAddressTest, RuntimeDirFirst) {
  EXPECT_EQ(DefaultAddress(Env({{"XDG_RUNTIME_DIR", "/run/user/1000"}}), 1000),
            "unix:/run/user/1000/jobwire.sock");
  EXPECT_EQ(DefaultAddress(Env({{"XDG_RUNTIME_DIR", "/run/user/0/"}}), 0),
            "unix:/run/user/0/jobwire.sock");
}

TEST(DefaultAddressTest, RootWithoutRuntimeDirUsesRun) {
  EXPECT_EQ(DefaultAddress(Env({}), 0), "unix:/run/jobwire/jobwire.sock");
}

TEST(DefaultAddressTest, OthersUseTheirOwnTmpFolder) {
  EXPECT_EQ(DefaultAddress(Env({}), 1000),
            "unix:/tmp/jobwire-1000/jobwire.sock");
  // An empty or relative XDG_RUNTIME_DIR is ignored (the XDG spec says so).
  EXPECT_EQ(DefaultAddress(Env({{"XDG_RUNTIME_DIR", ""}}), 1000),
            "unix:/tmp/jobwire-1000/jobwire.sock");
  EXPECT_EQ(DefaultAddress(Env({{"XDG_RUNTIME_DIR", "run"}}), 7),
            "unix:/tmp/jobwire-7/jobwire.sock");
}

}  // namespace
}  // namespace jobwire::sdk
