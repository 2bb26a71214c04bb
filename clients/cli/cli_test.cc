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
  for (const char* word :
       {"health", "info", "submit-batch", "webhooks", "help", "completion",
        "--addr", "--timeout", "--token", "--version"}) {
    EXPECT_NE(r.out.find(word), std::string::npos) << word << "\n" << r.out;
  }
}

TEST(CliTest, CommandHelpShowsItsFlags) {
  for (const auto& args : std::vector<std::vector<std::string>>{
           {"echo", "--help"}, {"--help", "echo"}, {"help", "echo"}}) {
    Result r = RunJobwire(args);
    EXPECT_EQ(r.code, 0) << r.err;
    EXPECT_NE(r.out.find("jobwire echo"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("WORDS"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("--loud"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("--timeout"), std::string::npos) << r.out;
  }
}

TEST(CliTest, HelpCommandKnowsEveryCommandAndGroup) {
  Result list = RunJobwire({"help", "list"});
  EXPECT_EQ(list.code, 0) << list.err;
  for (const char* flag : {"--order-by", "--page-token", "-o,--output"})
    EXPECT_NE(list.out.find(flag), std::string::npos) << flag << list.out;
  Result two_words = RunJobwire({"help", "webhooks", "list"});
  EXPECT_EQ(two_words.code, 0) << two_words.err;
  EXPECT_NE(two_words.out.find("--failed"), std::string::npos) << two_words.out;
  Result whole = RunJobwire({"help"});
  EXPECT_EQ(whole.code, 0);
  EXPECT_NE(whole.out.find("submit-batch"), std::string::npos) << whole.out;
  Result unknown = RunJobwire({"help", "frobnicate"});
  EXPECT_EQ(unknown.code, 2);
  EXPECT_EQ(unknown.err.rfind("jobwire: help: INVALID_ARGUMENT: ", 0), 0u)
      << unknown.err;
}

TEST(CliTest, VersionIsOneLineWithOnePrefix) {
  Result r = RunJobwire({"--version"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, std::string("jobwire ") + JOBWIRE_VERSION + "\n");
  EXPECT_EQ(r.err, "");
}

TEST(CliTest, CompletionScriptsNameTheCommandsAndTheirFlags) {
  Result bash = RunJobwire({"completion", "bash"});
  ASSERT_EQ(bash.code, 0) << bash.err;
  EXPECT_NE(bash.out.find("complete -o default -F _jobwire jobwire"),
            std::string::npos);
  EXPECT_NE(bash.out.find("\"submit\") words=\""), std::string::npos);
  EXPECT_NE(bash.out.find("--schedule-in"), std::string::npos);
  EXPECT_NE(bash.out.find("\"webhooks list\") words="), std::string::npos);
  Result zsh = RunJobwire({"completion", "zsh"});
  ASSERT_EQ(zsh.code, 0);
  EXPECT_EQ(zsh.out.rfind("#compdef jobwire\n", 0), 0u) << zsh.out;
  EXPECT_NE(zsh.out.find("\"submit\") cands=\""), std::string::npos);
  Result fish = RunJobwire({"completion", "fish"});
  ASSERT_EQ(fish.code, 0);
  EXPECT_NE(fish.out.find("__fish_seen_subcommand_from submit' -l kind -r"),
            std::string::npos)
      << fish.out;
  Result other = RunJobwire({"completion", "tcsh"});
  EXPECT_EQ(other.code, 2);
  EXPECT_NE(other.err.find("completion: INVALID_ARGUMENT"), std::string::npos)
      << other.err;
}

TEST(CliTest, NoCommandIsAUsageError) { EXPECT_EQ(RunJobwire({}).code, 2); }

TEST(CliTest, FlagsWorkBeforeAndAfterArguments) {
  Result r =
      RunJobwire({"echo", "a", "--token", "t2", "--loud", "b", "--timeout=3s"},
                 {{"JOBWIRE_TOKEN", "t1"}});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "!a\n!b\ntoken=t2\n");
  Result dashes = RunJobwire({"echo", "--", "--loud"});
  EXPECT_EQ(dashes.out, "--loud\ntoken=\n") << dashes.err;
}

TEST(CliTest, OutputIsCheckedBeforeAnyCallNamingTheFlag) {
  for (const auto& args : std::vector<std::vector<std::string>>{
           {"queues", "-o", "yaml"},
           {"list", "--output=xml"},
           {"explain", "-o", "csv", "ID"},
           {"watch", "ID", "-o", "yaml"},
           {"bulk", "-o", "yaml", "--filter", "", "--action", "cancel"}}) {
    Result r = RunJobwire(args);
    EXPECT_EQ(r.code, 2) << args[0];
    EXPECT_NE(r.err.find("INVALID_ARGUMENT: --output: want table or json"),
              std::string::npos)
        << r.err;
  }
  for (const char* command : {"get", "cancel", "retry", "update"}) {
    Result r = RunJobwire({command, "ID", "-o", "yaml"});
    EXPECT_EQ(r.code, 2) << command;
    EXPECT_NE(r.err.find("INVALID_ARGUMENT: --output: want json or table"),
              std::string::npos)
        << r.err;
  }
  // In any position, long or short: these get as far as calling a server
  // that is not there.
  for (const auto& args : std::vector<std::vector<std::string>>{
           {"explain", "-o", "json", "ID"},
           {"explain", "ID", "-o", "json"},
           {"queues", "-o", "json"},
           {"pause", "--queue", "q", "-o", "json"},
           {"set-queue", "q", "--weight", "2", "-o", "json"},
           {"list", "-o", "json", "--order-by", "create_time desc"}}) {
    std::vector<std::string> full = args;
    full.insert(full.end(), {"--addr", "unix:/nonexistent/j.sock"});
    Result r = RunJobwire(full);
    EXPECT_EQ(r.code, 1) << r.err;
    EXPECT_NE(r.err.find(": UNAVAILABLE: "), std::string::npos) << r.err;
  }
}

TEST(CliTest, StatesAreAcceptedInEverySpelling) {
  for (const char* state : {"queued", "QUEUED", "STATE_QUEUED", "Queued"}) {
    Result r = RunJobwire({"bulk", "--filter", "", "--action", "cancel",
                           "--expect-state", state, "--addr",
                           "unix:/nonexistent/j.sock"});
    EXPECT_NE(r.err.find(": UNAVAILABLE: "), std::string::npos) << r.err;
  }
  Result bad = RunJobwire({"bulk", "--filter", "", "--action", "cancel",
                           "--expect-state", "STATE_NAPPING"});
  EXPECT_EQ(bad.code, 2);
  EXPECT_NE(bad.err.find("INVALID_ARGUMENT: --expect-state: \"STATE_NAPPING\" "
                         "is not a job state (QUEUED,"),
            std::string::npos)
      << bad.err;
}

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
  Result flag = RunJobwire({"list", "--nope"});
  EXPECT_EQ(flag.code, 2);
  EXPECT_EQ(flag.err.rfind("jobwire: list: INVALID_ARGUMENT: ", 0), 0u)
      << flag.err;
  EXPECT_NE(flag.err.find("--nope"), std::string::npos) << flag.err;
  Result group = RunJobwire({"webhooks"});
  EXPECT_EQ(group.code, 2);
  EXPECT_NE(group.err.find("want one of: webhooks list, webhooks redeliver"),
            std::string::npos)
      << group.err;
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
