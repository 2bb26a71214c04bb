#include "server/app/server_options.h"

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "absl/strings/match.h"

namespace jobwire::test {
namespace {

GetEnvFn Env(std::map<std::string, std::string> vars) {
  return [vars](const std::string& name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

TEST(ServerOptionsTest, DefaultsServeUnixSocketAndLoopbackTcp) {
  auto cl = ParseServerCommandLine({}, Env({{"XDG_RUNTIME_DIR", "/run/user/7"},
                                            {"XDG_DATA_HOME", "/home/u/.d"}}));
  ASSERT_TRUE(cl.ok()) << cl.status();
  // The clients' default (clients/cpp/default_address.h), not the folder's.
  EXPECT_EQ(cl->options.listen,
            (std::vector<std::string>{"unix:/run/user/7/jobwire.sock",
                                      "127.0.0.1:50051"}));
  // The user's data folder (DefaultDatabasePath), not the current folder.
  EXPECT_EQ(cl->options.db_path, "/home/u/.d/jobwire/jobwire.db");
  EXPECT_EQ(cl->options.shutdown_grace, absl::Seconds(10));
  EXPECT_EQ(cl->options.socket_mode, 0600u);
  EXPECT_TRUE(cl->options.auth_token.empty());
  EXPECT_EQ(cl->options.lease_ttl, absl::Seconds(30));
}

TEST(ServerOptionsTest, DefaultDatabaseDependsOnTheUserNotTheFolder) {
  // XDG_DATA_HOME first (an absolute path; a relative one is ignored).
  EXPECT_EQ(
      DefaultDatabasePath(
          Env({{"XDG_DATA_HOME", "/x/data/"}, {"HOME", "/home/u"}}), 1000),
      "/x/data/jobwire/jobwire.db");
  EXPECT_EQ(DefaultDatabasePath(Env({{"XDG_DATA_HOME", "rel"}}), 0),
            "/var/lib/jobwire/jobwire.db");
  // Root: /var/lib/jobwire, even with a HOME.
  EXPECT_EQ(DefaultDatabasePath(Env({{"HOME", "/root"}}), 0),
            "/var/lib/jobwire/jobwire.db");
  // Anyone else: ~/.local/share/jobwire.
  EXPECT_EQ(DefaultDatabasePath(Env({{"HOME", "/home/u"}}), 1000),
            "/home/u/.local/share/jobwire/jobwire.db");
  // Without HOME, the passwd entry's home (root's is /root on Debian).
  EXPECT_TRUE(
      absl::EndsWith(DefaultDatabasePath(Env({}), 0), "/jobwire/jobwire.db"));
}

TEST(ServerOptionsTest, DbFlagAndVariableReplaceTheDefault) {
  auto env = ParseServerCommandLine(
      {}, Env({{"JOBWIRE_DB", "env.db"}, {"XDG_DATA_HOME", "/d"}}));
  ASSERT_TRUE(env.ok()) << env.status();
  EXPECT_EQ(env->options.db_path, "env.db");
  auto flag = ParseServerCommandLine({"--db", "var/jobwire.db"},
                                     Env({{"XDG_DATA_HOME", "/d"}}));
  ASSERT_TRUE(flag.ok()) << flag.status();
  EXPECT_EQ(flag->options.db_path, "var/jobwire.db");  // relative: the folder's
}

TEST(ServerOptionsTest, MigrateSubcommandTakesFlagsBeforeOrAfterIt) {
  for (const std::vector<std::string>& args :
       std::vector<std::vector<std::string>>{
           {"--db", "postgres:", "migrate"},
           {"migrate", "--db", "postgres:"}}) {
    auto cl = ParseServerCommandLine(args, Env({{"XDG_DATA_HOME", "/d"}}));
    ASSERT_TRUE(cl.ok()) << cl.status();
    EXPECT_TRUE(cl->migrate);
    EXPECT_EQ(cl->options.db_path, "postgres:");
  }
  auto serve = ParseServerCommandLine({}, Env({{"XDG_DATA_HOME", "/d"}}));
  ASSERT_TRUE(serve.ok()) << serve.status();
  EXPECT_FALSE(serve->migrate);
  auto other =
      ParseServerCommandLine({"migrat"}, Env({{"XDG_DATA_HOME", "/d"}}));
  EXPECT_EQ(other.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(ServerUsage(), "migrate"));
}

TEST(ServerOptionsTest, LeaseTtlFromFlagOrEnvironment) {
  auto cl = ParseServerCommandLine({"--lease-ttl", "2s"}, Env({}));
  ASSERT_TRUE(cl.ok()) << cl.status();
  EXPECT_EQ(cl->options.lease_ttl, absl::Seconds(2));
  cl = ParseServerCommandLine({}, Env({{"JOBWIRE_LEASE_TTL", "1m"}}));
  ASSERT_TRUE(cl.ok()) << cl.status();
  EXPECT_EQ(cl->options.lease_ttl, absl::Minutes(1));
}

TEST(ServerOptionsTest, BulkChunkJobsFromFlagOrEnvironment) {
  auto cl = ParseServerCommandLine({}, Env({}));
  ASSERT_TRUE(cl.ok()) << cl.status();
  EXPECT_EQ(cl->options.bulk_chunk_jobs, 500);
  cl = ParseServerCommandLine({"--bulk-chunk-jobs", "100"}, Env({}));
  ASSERT_TRUE(cl.ok()) << cl.status();
  EXPECT_EQ(cl->options.bulk_chunk_jobs, 100);
  cl = ParseServerCommandLine({}, Env({{"JOBWIRE_BULK_CHUNK_JOBS", "1000"}}));
  ASSERT_TRUE(cl.ok()) << cl.status();
  EXPECT_EQ(cl->options.bulk_chunk_jobs, 1000);
}

TEST(ServerOptionsTest, WebhookFlagsAndTheirVariables) {
  auto cl = ParseServerCommandLine(
      {"--webhook-secret-file", "/s", "--webhook-allow-cidr", "127.0.0.1/32",
       "--webhook-allow-cidr=::1/128", "--webhook-max-attempts=3",
       "--webhook-timeout", "2s", "--webhook-initial-backoff", "100ms",
       "--webhook-max-in-flight", "16"},
      Env({{"JOBWIRE_WEBHOOK_CONNECT_TIMEOUT", "250ms"}}));
  ASSERT_TRUE(cl.ok()) << cl.status();
  const ServerOptions& o = cl->options;
  EXPECT_EQ(o.webhook_secret_file, "/s");
  EXPECT_EQ(o.webhook_allow_cidrs,
            (std::vector<std::string>{"127.0.0.1/32", "::1/128"}));
  EXPECT_EQ(o.webhook_max_attempts, 3);
  EXPECT_EQ(o.webhook_timeout, absl::Seconds(2));
  EXPECT_EQ(o.webhook_connect_timeout, absl::Milliseconds(250));
  EXPECT_EQ(o.webhook_initial_backoff, absl::Milliseconds(100));
  EXPECT_EQ(o.webhook_max_in_flight, 16);
  cl = ParseServerCommandLine(
      {}, Env({{"JOBWIRE_WEBHOOK_ALLOW_CIDR", "10.0.0.0/8, fd00::/8"}}));
  ASSERT_TRUE(cl.ok()) << cl.status();
  EXPECT_EQ(cl->options.webhook_allow_cidrs,
            (std::vector<std::string>{"10.0.0.0/8", "fd00::/8"}));
  EXPECT_FALSE(
      ParseServerCommandLine({"--webhook-max-attempts", "0"}, Env({})).ok());
  EXPECT_FALSE(
      ParseServerCommandLine({"--webhook-timeout", "0s"}, Env({})).ok());
}

TEST(ServerOptionsTest, RepeatedListenReplacesDefaults) {
  auto cl = ParseServerCommandLine(
      {"--listen", "unix:/tmp/a.sock", "--listen=127.0.0.1:0"}, Env({}));
  ASSERT_TRUE(cl.ok());
  EXPECT_EQ(cl->options.listen,
            (std::vector<std::string>{"unix:/tmp/a.sock", "127.0.0.1:0"}));
}

TEST(ServerOptionsTest, EnvironmentGivesValuesAndFlagsWin) {
  auto cl = ParseServerCommandLine(
      {"--db", "flag.db"}, Env({{"JOBWIRE_DB", "env.db"},
                                {"JOBWIRE_LISTEN", "unix:a.sock, 127.0.0.1:1"},
                                {"JOBWIRE_SHUTDOWN_GRACE", "3s"},
                                {"JOBWIRE_SOCKET_MODE", "0660"},
                                {"JOBWIRE_AUTH_TOKEN", "t0ken-x"},
                                {"JOBWIRE_LOG_FORMAT", "json"}}));
  ASSERT_TRUE(cl.ok()) << cl.status();
  EXPECT_EQ(cl->options.db_path, "flag.db");
  EXPECT_EQ(cl->options.listen,
            (std::vector<std::string>{"unix:a.sock", "127.0.0.1:1"}));
  EXPECT_EQ(cl->options.shutdown_grace, absl::Seconds(3));
  EXPECT_EQ(cl->options.socket_mode, 0660u);
  EXPECT_EQ(cl->options.auth_token, "t0ken-x");
  EXPECT_EQ(cl->options.log_format, LogFormat::kJson);
}

TEST(ServerOptionsTest, ListenFlagReplacesListenFromEnvironment) {
  auto cl = ParseServerCommandLine({"--listen", "127.0.0.1:2"},
                                   Env({{"JOBWIRE_LISTEN", "127.0.0.1:1"}}));
  ASSERT_TRUE(cl.ok());
  EXPECT_EQ(cl->options.listen, (std::vector<std::string>{"127.0.0.1:2"}));
}

TEST(ServerOptionsTest, BadValuesNameTheFlag) {
  struct Case {
    std::vector<std::string> args;
    const char* flag;
  };
  for (const Case& c :
       std::vector<Case>{{{"--shutdown-grace", "soon"}, "--shutdown-grace"},
                         {{"--socket-mode", "0999"}, "--socket-mode"},
                         {{"--log-level", "loud"}, "--log-level"},
                         {{"--lease-ttl", "10ms"}, "--lease-ttl"},
                         {{"--bulk-chunk-jobs", "0"}, "--bulk-chunk-jobs"},
                         {{"--bulk-chunk-jobs", "1001"}, "--bulk-chunk-jobs"},
                         {{"--log-format", "xml"}, "--log-format"},
                         {{"--db"}, "--db"},
                         {{"--bogus", "1"}, "--bogus"}}) {
    auto cl = ParseServerCommandLine(c.args, Env({}));
    ASSERT_EQ(cl.status().code(), absl::StatusCode::kInvalidArgument) << c.flag;
    EXPECT_NE(cl.status().message().find(c.flag), absl::string_view::npos)
        << cl.status();
  }
}

TEST(ServerOptionsTest, BadEnvironmentValueNamesTheVariable) {
  auto cl = ParseServerCommandLine({}, Env({{"JOBWIRE_SHUTDOWN_GRACE", "x"}}));
  ASSERT_FALSE(cl.ok());
  EXPECT_NE(cl.status().message().find("JOBWIRE_SHUTDOWN_GRACE"),
            absl::string_view::npos);
}

TEST(ServerOptionsTest, HelpAndVersion) {
  auto cl = ParseServerCommandLine({"--help", "--version"}, Env({}));
  ASSERT_TRUE(cl.ok());
  EXPECT_TRUE(cl->help);
  EXPECT_TRUE(cl->version);
  EXPECT_NE(ServerUsage().find("--shutdown-grace"), std::string::npos);
  EXPECT_NE(ServerUsage().find("JOBWIRE_AUTH_TOKEN"), std::string::npos);
}

// Issue #27: a token a client cannot send as it is, or one guessed at once,
// is refused at start, naming the flag.
TEST(ServerOptionsTest, ShortOrBlankTokensAreRefused) {
  for (const char* token : {"x", "     ", " s3cret", "s3 cret", "abcde"}) {
    auto cl = ParseServerCommandLine({"--auth-token", token}, Env({}));
    ASSERT_FALSE(cl.ok()) << token;
    EXPECT_EQ(cl.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_TRUE(absl::StartsWith(cl.status().message(), "--auth-token: "))
        << cl.status();
  }
  auto env = ParseServerCommandLine({}, Env({{"JOBWIRE_AUTH_TOKEN", "t"}}));
  EXPECT_FALSE(env.ok());
  auto ok = ParseServerCommandLine({"--auth-token", "s3cret"}, Env({}));
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(ok->options.auth_token, "s3cret");
  auto none = ParseServerCommandLine({"--auth-token", ""}, Env({}));
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_EQ(none->options.auth_token, "");
}

TEST(ServerOptionsTest, SocketPeersAreUsersAndGroupsByNameOrNumber) {
  auto cl = ParseServerCommandLine(
      {"--socket-allow-uid", "root", "--socket-allow-uid", "1234",
       "--socket-allow-gid", "0"},
      Env({{"JOBWIRE_SOCKET_ALLOW_GID", "7,8"}}));
  ASSERT_TRUE(cl.ok()) << cl.status();
  EXPECT_EQ(cl->options.socket_allow_uids, (std::vector<uid_t>{0, 1234}));
  // The flag replaces the variable's list.
  EXPECT_EQ(cl->options.socket_allow_gids, (std::vector<gid_t>{0}));
  auto bad = ParseServerCommandLine({"--socket-allow-uid", "no-such-user-here"},
                                    Env({}));
  ASSERT_FALSE(bad.ok());
  EXPECT_TRUE(absl::StartsWith(bad.status().message(), "--socket-allow-uid: "))
      << bad.status();
}

TEST(ServerOptionsTest, InsecureAllowPlaintextIsASwitch) {
  auto on = ParseServerCommandLine({"--insecure-allow-plaintext", "--db", "x"},
                                   Env({}));
  ASSERT_TRUE(on.ok()) << on.status();
  EXPECT_TRUE(on->options.insecure_allow_plaintext);
  EXPECT_EQ(on->options.db_path, "x");
  auto off = ParseServerCommandLine(
      {"--insecure-allow-plaintext=false"},
      Env({{"JOBWIRE_INSECURE_ALLOW_PLAINTEXT", "true"}}));
  ASSERT_TRUE(off.ok()) << off.status();
  EXPECT_FALSE(off->options.insecure_allow_plaintext);
  EXPECT_FALSE(
      ParseServerCommandLine({"--insecure-allow-plaintext=maybe"}, Env({}))
          .ok());
}

}  // namespace
}  // namespace jobwire::test
