#include "clients/cli/cli.h"

#include <google/protobuf/util/json_util.h>
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <ostream>
#include <sstream>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "server/transport/listen_address.h"

namespace jobwire::cli {
namespace {

constexpr int kExitError = 1;
constexpr int kExitUsage = 2;

// A command's calls fail fast while the server is away, and `watch` keeps
// retrying them. gRPC's default reconnect backoff grows to 120 s, so after an
// outage of a few seconds a watch would still wait seconds (later, minutes)
// to reconnect once the server is back. Capped at 1 s, it resumes within
// about a second of a restart.
constexpr int kInitialReconnectBackoffMs = 250;
constexpr int kMaxReconnectBackoffMs = 1000;

std::shared_ptr<grpc::Channel> NewChannel(
    const std::string& target,
    std::shared_ptr<grpc::ChannelCredentials> credentials) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS,
              kInitialReconnectBackoffMs);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, kInitialReconnectBackoffMs);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, kMaxReconnectBackoffMs);
  return grpc::CreateCustomChannel(target, std::move(credentials), args);
}

// jobwired's default addresses (and tools/run's): the Unix socket is
// relative to the folder jobwired runs in, so from any other folder the CLI
// falls back to the loopback TCP one.
constexpr char kDefaultUnixAddr[] = "unix:var/jobwire.sock";
constexpr char kDefaultUnixPath[] = "var/jobwire.sock";
constexpr char kDefaultTcpAddr[] = "127.0.0.1:50051";

struct GlobalFlags {
  std::string addr;  // empty: DefaultAddr()
  absl::Duration timeout = absl::Seconds(10);
  std::string token;
  // TLS to a TCP address: the CA to trust, and a client certificate and key
  // for servers that ask for one (mTLS).
  std::string tls_ca;
  std::string tls_cert;
  std::string tls_key;
};

// The whole file at `path`, or INVALID_ARGUMENT naming `flag`.
absl::StatusOr<std::string> ReadPem(const std::string& path,
                                    absl::string_view flag) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  if (in) text << in.rdbuf();
  if (!in || text.str().empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", flag, ": cannot read ", path));
  }
  return text.str();
}

// Plaintext credentials, or TLS ones when --tls-ca is given.
absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> ChannelCredentials(
    const GlobalFlags& g, const ListenAddress& address) {
  if (g.tls_ca.empty()) {
    if (!g.tls_cert.empty() || !g.tls_key.empty()) {
      return absl::InvalidArgumentError(
          "--tls-cert: needs --tls-ca (the CA of the server's certificate)");
    }
    return grpc::InsecureChannelCredentials();
  }
  if (address.kind != ListenAddress::Kind::kTcp) {
    return absl::InvalidArgumentError(
        "--tls-ca: TLS is served on TCP addresses only (Unix sockets are "
        "plaintext)");
  }
  if (g.tls_cert.empty() != g.tls_key.empty()) {
    return absl::InvalidArgumentError(g.tls_cert.empty()
                                          ? "--tls-key: needs --tls-cert"
                                          : "--tls-cert: needs --tls-key");
  }
  grpc::SslCredentialsOptions tls;
  absl::StatusOr<std::string> ca = ReadPem(g.tls_ca, "tls-ca");
  if (!ca.ok()) return ca.status();
  tls.pem_root_certs = *std::move(ca);
  if (!g.tls_cert.empty()) {
    absl::StatusOr<std::string> cert = ReadPem(g.tls_cert, "tls-cert");
    if (!cert.ok()) return cert.status();
    absl::StatusOr<std::string> key = ReadPem(g.tls_key, "tls-key");
    if (!key.ok()) return key.status();
    tls.pem_cert_chain = *std::move(cert);
    tls.pem_private_key = *std::move(key);
  }
  return grpc::SslCredentials(tls);
}

void AddGlobalFlags(FlagSet* flags, GlobalFlags* g) {
  flags->String("addr", &g->addr,
                "server address: unix:PATH, unix:///ABS, unix-abstract:NAME or "
                "HOST:PORT (default unix:var/jobwire.sock when that socket "
                "is in this folder, else 127.0.0.1:50051) [JOBWIRE_ADDR]",
                "ADDR");
  flags->Duration("timeout", &g->timeout,
                  "deadline of each call (default 10s)");
  flags->String("token", &g->token,
                "bearer token for the server [JOBWIRE_TOKEN]", "TOKEN");
  flags->String("tls-ca", &g->tls_ca,
                "connect over TLS, trusting this PEM CA file [JOBWIRE_TLS_CA]",
                "FILE");
  flags->String("tls-cert", &g->tls_cert,
                "client certificate (PEM) for a server that asks for one "
                "(mTLS) [JOBWIRE_TLS_CERT]",
                "FILE");
  flags->String("tls-key", &g->tls_key,
                "the PEM key of --tls-cert [JOBWIRE_TLS_KEY]", "FILE");
}

std::string MainUsage(const CommandList& commands) {
  FlagSet flags;
  GlobalFlags g;
  AddGlobalFlags(&flags, &g);
  std::string out =
      "usage: jobwire [FLAGS] COMMAND [ARGS]\n\n"
      "The command-line client of jobwired. `jobwire COMMAND --help` tells "
      "more.\n\n"
      "Commands:\n";
  size_t width = 0;  // of the longest name: the summaries line up
  for (const auto& c : commands) width = std::max(width, c->name().size());
  for (const auto& c : commands) {
    std::string head = absl::StrCat("  ", c->name());
    head.resize(2 + width, ' ');
    absl::StrAppend(&out, head, "  ", c->summary(), "\n");
  }
  absl::StrAppend(&out, "\nFlags (every command):\n", flags.Usage());
  return out;
}

std::string DefaultAddr() {
  struct stat st;
  if (::stat(kDefaultUnixPath, &st) == 0 && S_ISSOCK(st.st_mode)) {
    return kDefaultUnixAddr;
  }
  return kDefaultTcpAddr;
}

int Fail(std::ostream& err, absl::string_view command,
         const absl::Status& status, absl::string_view addr = "") {
  err << "jobwire: " << command << ": "
      << absl::StatusCodeToString(status.code()) << ": " << status.message();
  if (status.code() == absl::StatusCode::kUnavailable && !addr.empty()) {
    err << " (is jobwired serving " << addr << "? set --addr or JOBWIRE_ADDR)";
  }
  err << "\n";
  return status.code() == absl::StatusCode::kInvalidArgument ? kExitUsage
                                                             : kExitError;
}

}  // namespace

std::unique_ptr<grpc::ClientContext> CliContext::NewCallContext(
    bool with_deadline) const {
  auto context = std::make_unique<grpc::ClientContext>();
  if (with_deadline)
    context->set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  if (!token.empty()) context->AddMetadata("authorization", "Bearer " + token);
  return context;
}

void CliContext::PrintJson(const google::protobuf::Message& message) const {
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  options.preserve_proto_field_names = true;
  std::string json;
  (void)google::protobuf::util::MessageToJsonString(message, &json, options);
  *out << json;
  if (json.empty() || json.back() != '\n') *out << "\n";
}

absl::Status AddLabel(const std::string& flag_value,
                      google::protobuf::Map<std::string, std::string>* labels) {
  std::vector<std::string> kv =
      absl::StrSplit(flag_value, absl::MaxSplits('=', 1));
  if (kv.size() != 2 || kv[0].empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--label: want key=value, got \"", flag_value, "\""));
  }
  (*labels)[kv[0]] = kv[1];
  return absl::OkStatus();
}

absl::Status FromGrpcStatus(const grpc::Status& status) {
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                      status.error_message());
}

int RunCli(const std::vector<std::string>& args, CommandList commands,
           const GetEnvFn& getenv, std::ostream& out, std::ostream& err,
           std::istream* in) {
  GlobalFlags g;
  if (auto v = getenv("JOBWIRE_ADDR"); v.has_value() && !v->empty())
    g.addr = *v;
  if (auto v = getenv("JOBWIRE_TOKEN"); v.has_value()) g.token = *v;
  if (auto v = getenv("JOBWIRE_TLS_CA"); v.has_value()) g.tls_ca = *v;
  if (auto v = getenv("JOBWIRE_TLS_CERT"); v.has_value()) g.tls_cert = *v;
  if (auto v = getenv("JOBWIRE_TLS_KEY"); v.has_value()) g.tls_key = *v;

  FlagSet global;
  AddGlobalFlags(&global, &g);
  absl::StatusOr<std::vector<std::string>> rest = global.Parse(args, true);
  if (!rest.ok()) return Fail(err, "jobwire", rest.status());
  if (rest->empty()) {
    if (global.help_requested()) {
      out << MainUsage(commands);
      return 0;
    }
    err << MainUsage(commands);
    return kExitUsage;
  }
  // A command is one word, or a group and a subcommand ("webhook verify").
  std::string name = rest->front();
  const std::string two_words =
      rest->size() > 1 ? absl::StrCat(name, " ", (*rest)[1]) : "";
  Command* command = nullptr;
  std::vector<std::string> group;  // the subcommands when `name` is a group
  for (const auto& c : commands) {
    if (c->name() == name || c->name() == two_words) command = c.get();
    if (absl::StartsWith(c->name(), name + " ")) group.push_back(c->name());
  }
  if (command == nullptr) {
    return Fail(err, name,
                absl::InvalidArgumentError(
                    group.empty() ? absl::StrCat("unknown command \"", name,
                                                 "\"; see jobwire --help")
                                  : absl::StrCat("want one of: ",
                                                 absl::StrJoin(group, ", "))));
  }
  if (command->name() == two_words) name = two_words;
  const size_t words = name == two_words ? 2 : 1;

  FlagSet flags;
  AddGlobalFlags(&flags, &g);
  command->AddFlags(&flags);
  absl::StatusOr<std::vector<std::string>> positional =
      flags.Parse(std::vector<std::string>(rest->begin() + words, rest->end()));
  if (!positional.ok()) return Fail(err, name, positional.status());
  if (flags.help_requested() || global.help_requested()) {
    out << "usage: jobwire " << name
        << (command->args_usage().empty() ? "" : " " + command->args_usage())
        << " [FLAGS]\n\n"
        << command->summary() << "\n\nFlags:\n"
        << flags.Usage();
    return 0;
  }

  if (g.addr.empty()) g.addr = DefaultAddr();
  absl::StatusOr<ListenAddress> address = ParseListenAddress(g.addr);
  if (!address.ok()) {
    return Fail(err, name,
                absl::InvalidArgumentError(
                    absl::StrCat("--addr: ", address.status().message())));
  }
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> credentials =
      ChannelCredentials(g, *address);
  if (!credentials.ok()) return Fail(err, name, credentials.status());
  CliContext context;
  context.channel = NewChannel(address->ToUri(), *std::move(credentials));
  context.timeout = g.timeout;
  context.token = g.token;
  context.out = &out;
  context.err = &err;
  context.in = in;
  absl::Status status = command->Run(context, *positional);
  if (!status.ok()) return Fail(err, name, status, g.addr);
  return 0;
}

absl::Status CheckListFlags(absl::string_view command,
                            const std::vector<std::string>& args,
                            std::string* output, int limit) {
  std::vector<std::string> rest = args;
  if (rest.size() >= 2 && rest[0] == "-o") {
    *output = rest[1];
    rest.erase(rest.begin(), rest.begin() + 2);
  }
  if (!rest.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(command, " takes no arguments, got \"", rest[0], "\""));
  }
  const std::string& format = *output;
  if (format != "table" && format != "json") {
    return absl::InvalidArgumentError(
        absl::StrCat("--output: want table or json, got \"", format, "\""));
  }
  if (limit < 1)
    return absl::InvalidArgumentError("--limit: must be at least 1");
  return absl::OkStatus();
}

}  // namespace jobwire::cli
