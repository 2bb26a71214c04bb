#include "clients/cli/cli.h"

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <map>
#include <set>
#include <sstream>

#include "grpc/health/v1/health.grpc.pb.h"

namespace jobwire::cli {
namespace {

// Records what it was run with.
class EchoCommand final : public Command {
 public:
  std::string name() const override { return "echo"; }
  std::string args_usage() const override { return "WORDS..."; }
  std::string summary() const override { return "prints its arguments"; }
  void AddFlags(FlagSet* flags) override {
    flags->Bool("loud", &loud_, "shout");
  }
  absl::Status Run(const CliContext& context,
                   const std::vector<std::string>& args) override {
    if (args.empty()) return absl::NotFoundError("nothing to echo");
    for (const std::string& a : args)
      *context.out << (loud_ ? "!" : "") << a << "\n";
    *context.out << "token=" << context.token << "\n";
    return absl::OkStatus();
  }

 private:
  bool loud_ = false;
};

struct Result {
  int code;
  std::string out;
  std::string err;
};

Result RunJobwire(std::vector<std::string> args,
                  std::map<std::string, std::string> env = {}) {
  CommandList commands = AllCommands();
  commands.push_back(std::make_unique<EchoCommand>());
  std::ostringstream out, err;
  int code = RunCli(
      args, std::move(commands),
      [env](const std::string& name) -> std::optional<std::string> {
        auto it = env.find(name);
        if (it == env.end()) return std::nullopt;
        return it->second;
      },
      out, err);
  return {code, out.str(), err.str()};
}

TEST(CliTest, HelpListsCommandsAndGlobalFlags) {
  Result r = RunJobwire({"--help"});
  EXPECT_EQ(r.code, 0);
  EXPECT_NE(r.out.find("health"), std::string::npos);
  EXPECT_NE(r.out.find("info"), std::string::npos);
  EXPECT_NE(r.out.find("--addr"), std::string::npos);
  // Every summary starts in the same column, whatever the names' lengths.
  std::istringstream lines(r.out.substr(r.out.find("Commands:\n") + 10));
  std::set<size_t> columns;
  for (std::string line; std::getline(lines, line) && !line.empty();) {
    const size_t name_end = line.find("  ", 2);  // names may be two words
    columns.insert(line.find_first_not_of(' ', name_end));
  }
  EXPECT_EQ(columns.size(), 1u) << r.out;
}

TEST(CliTest, CommandHelpShowsItsFlags) {
  Result r = RunJobwire({"echo", "--help"});
  EXPECT_EQ(r.code, 0);
  EXPECT_NE(r.out.find("usage: jobwire echo WORDS..."), std::string::npos);
  EXPECT_NE(r.out.find("--loud"), std::string::npos);
  EXPECT_NE(r.out.find("--timeout"), std::string::npos);
}

TEST(CliTest, NoCommandIsAUsageError) { EXPECT_EQ(RunJobwire({}).code, 2); }

TEST(CliTest, CommandGetsFlagsArgumentsAndTokenFromEnvironment) {
  Result r =
      RunJobwire({"echo", "a", "--loud", "b"}, {{"JOBWIRE_TOKEN", "t1"}});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "!a\n!b\ntoken=t1\n");
}

TEST(CliTest, TokenFlagWinsOverEnvironment) {
  Result r =
      RunJobwire({"--token", "t2", "echo", "a"}, {{"JOBWIRE_TOKEN", "t1"}});
  EXPECT_EQ(r.out, "a\ntoken=t2\n");
}

TEST(CliTest, ErrorsAreOneLineNamingCommandAndCode) {
  Result r = RunJobwire({"echo"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err, "jobwire: echo: NOT_FOUND: nothing to echo\n");
}

TEST(CliTest, UnknownCommandAndBadFlagAreUsageErrors) {
  Result unknown = RunJobwire({"frobnicate"});
  EXPECT_EQ(unknown.code, 2);
  EXPECT_EQ(unknown.err.rfind("jobwire: frobnicate: INVALID_ARGUMENT: ", 0), 0u)
      << unknown.err;
  Result bad = RunJobwire({"info", "--timeout", "soon"});
  EXPECT_EQ(bad.code, 2);
  EXPECT_NE(bad.err.find("jobwire: info: INVALID_ARGUMENT: --timeout"),
            std::string::npos)
      << bad.err;
  Result addr = RunJobwire({"info", "--addr", "nonsense"});
  EXPECT_NE(addr.err.find("--addr"), std::string::npos) << addr.err;
}

TEST(CliTest, UnreachableServerIsUnavailable) {
  Result r = RunJobwire({"health", "--addr", "unix:/nonexistent/jobwire.sock",
                         "--timeout", "5s"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err.rfind("jobwire: health: UNAVAILABLE: ", 0), 0u) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1);
  // The line says where it looked and how to look elsewhere.
  EXPECT_NE(r.err.find("is jobwired serving unix:/nonexistent/jobwire.sock? "
                       "set --addr or JOBWIRE_ADDR"),
            std::string::npos)
      << r.err;
}

TEST(CliTest, TheDefaultAddressIsJobwiredsWhateverTheFolder) {
  // No server at the default address of this (made-up) runtime directory:
  // the message names the address the CLI tried.
  Result r = RunJobwire({"health", "--timeout", "1s"},
                        {{"XDG_RUNTIME_DIR", "/nonexistent-runtime"}});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("is jobwired serving "
                       "unix:/nonexistent-runtime/jobwire.sock? "
                       "set --addr or JOBWIRE_ADDR"),
            std::string::npos)
      << r.err;
}

// A real server on a temp Unix socket answering health.
class HealthyServer : public grpc::health::v1::Health::CallbackService {
 public:
  grpc::ServerUnaryReactor* Check(
      grpc::CallbackServerContext* context,
      const grpc::health::v1::HealthCheckRequest*,
      grpc::health::v1::HealthCheckResponse* response) override {
    response->set_status(grpc::health::v1::HealthCheckResponse::SERVING);
    auto* reactor = context->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }
};

TEST(CliTest, HealthPrintsServingOverAUnixSocket) {
  char tmpl[] = "/tmp/jobwire-cli-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  std::string socket = std::string(tmpl) + "/j.sock";
  HealthyServer service;
  grpc::ServerBuilder builder;
  builder.AddListeningPort("unix:" + socket, grpc::InsecureServerCredentials());
  builder.RegisterService(&service);
  auto server = builder.BuildAndStart();
  ASSERT_NE(server, nullptr);

  Result r = RunJobwire({"health", "--addr", "unix://" + socket});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "SERVING\n");

  server->Shutdown();
  std::system((std::string("rm -rf ") + tmpl).c_str());
}

}  // namespace
}  // namespace jobwire::cli
