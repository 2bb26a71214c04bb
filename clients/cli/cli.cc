#include "clients/cli/cli.h"

#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/time_util.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstring>
#include <fstream>
#include <map>
#include <ostream>
#include <sstream>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "clients/cli/completion.h"
#include "clients/cpp/default_address.h"
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

struct GlobalFlags {
  std::string addr;  // empty: sdk::DefaultAddress()
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
                "HOST:PORT (default: jobwired's, "
                "unix:$XDG_RUNTIME_DIR/jobwire.sock, else as root "
                "unix:/run/jobwire/jobwire.sock, else "
                "unix:/tmp/jobwire-$UID/jobwire.sock) [JOBWIRE_ADDR]",
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

// "jobwire webhooks" for the App of `jobwire webhooks list`: the prefix
// of its usage line.
std::string ParentPath(const CLI::App& app) {
  std::vector<std::string> names;
  for (const CLI::App* at = app.get_parent(); at != nullptr;
       at = at->get_parent()) {
    names.insert(names.begin(), at->get_name());
  }
  return absl::StrJoin(names, " ");
}

int Fail(std::ostream& err, absl::string_view command,
         const absl::Status& status, absl::string_view addr = "") {
  err << "jobwire: " << command << (command.empty() ? "" : ": ")
      << absl::StatusCodeToString(status.code()) << ": " << status.message();
  if (status.code() == absl::StatusCode::kUnavailable && !addr.empty()) {
    err << " (is jobwired serving " << addr << "? set --addr or JOBWIRE_ADDR)";
  }
  err << "\n";
  return status.code() == absl::StatusCode::kInvalidArgument ? kExitUsage
                                                             : kExitError;
}

}  // namespace

void CliContext::PrintJson(const google::protobuf::Message& message,
                           bool every_field, bool one_line) const {
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = !one_line;
  options.always_print_primitive_fields = every_field;
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

std::string StateName(jobwire::v1::Job::State state) {
  absl::string_view name = jobwire::v1::Job::State_Name(state);
  absl::ConsumePrefix(&name, "STATE_");
  return std::string(name);
}

void PrintJobTable(
    const CliContext& context,
    const google::protobuf::RepeatedPtrField<jobwire::v1::Job>& jobs) {
  constexpr char kRow[] = "%-26s  %-9s  %-16s  %-20s  %s\n";
  *context.out << absl::StrFormat(kRow, "ID", "STATE", "QUEUE", "KIND",
                                  "CREATED");
  for (const jobwire::v1::Job& job : jobs) {
    *context.out << absl::StrFormat(
        kRow, job.id(), StateName(job.state()), job.queue(), job.kind(),
        google::protobuf::util::TimeUtil::ToString(job.create_time()));
  }
}

void PrintJob(const CliContext& context, const jobwire::v1::Job& job,
              const std::string& format) {
  if (IsJson(format)) {
    context.PrintJson(job);
    return;
  }
  google::protobuf::RepeatedPtrField<jobwire::v1::Job> one;
  *one.Add() = job;
  PrintJobTable(context, one);
}

absl::StatusOr<jobwire::v1::Job::State> ParseState(absl::string_view flag,
                                                   absl::string_view text) {
  std::string name = absl::AsciiStrToUpper(text);
  if (!absl::StartsWith(name, "STATE_")) name = absl::StrCat("STATE_", name);
  jobwire::v1::Job::State state;
  if (!jobwire::v1::Job::State_Parse(name, &state) ||
      state == jobwire::v1::Job::STATE_UNSPECIFIED) {
    return absl::InvalidArgumentError(absl::StrCat(
        flag, ": \"", text,
        "\" is not a job state (QUEUED, SCHEDULED, RUNNING, PAUSED, "
        "SUCCEEDED, FAILED or CANCELLED)"));
  }
  return state;
}

absl::Status NameFlags(const absl::Status& s, const FieldFlags& flags) {
  if (s.code() != absl::StatusCode::kInvalidArgument) return s;
  std::vector<std::string> violations = absl::StrSplit(s.message(), "; ");
  for (std::string& v : violations) {
    for (const auto& [field, flag] : flags) {
      if (absl::StartsWith(v, field)) {
        v = absl::StrCat(flag, v.substr(field.size()));
        break;
      }
    }
  }
  return absl::InvalidArgumentError(absl::StrJoin(violations, "; "));
}

namespace {

// The one-line error of a parse failure of `app`, e.g. "--timeout: bad
// duration ...", "unknown flag --nope".
std::string ParseMessage(const CLI::App& app, const CLI::ParseError& e) {
  if (dynamic_cast<const CLI::ExtrasError*>(&e) == nullptr) return e.what();
  // Name the first unknown flag, else the first extra argument.
  std::vector<std::string> extras = app.remaining(/*recurse=*/true);
  for (const std::string& extra : extras) {
    if (absl::StartsWith(extra, "-"))
      return absl::StrCat("unknown flag ", extra);
  }
  return absl::StrCat("unexpected argument \"",
                      extras.empty() ? "" : extras.front(), "\"");
}

// The command words the parse reached: "", "list", "webhooks list".
std::string ParsedName(const CLI::App& app) {
  std::string name;
  for (const CLI::App* at = &app; !at->get_subcommands().empty();) {
    at = at->get_subcommands().front();
    absl::StrAppend(&name, name.empty() ? "" : " ", at->get_name());
  }
  return name;
}

// The first word of `args` that is not a global flag or its value: what the
// user meant as the command.
std::string FirstWord(const std::vector<std::string>& args) {
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--addr" || a == "--timeout" || a == "--token") {
      ++i;
      continue;
    }
    if (!absl::StartsWith(a, "-")) return a;
  }
  return "";
}

}  // namespace

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

  CLI::App app(
      "The command-line client of jobwired. `jobwire help COMMAND` "
      "tells more.",
      "jobwire");
  // Global flags go before or after the command; one command per run.
  app.fallthrough();
  app.require_subcommand(0, 1);
  bool version = false;
  app.add_flag("--version", version, "print the version and exit");
  FlagSet root_flags(&app);
  AddGlobalFlags(&root_flags, &g);

  // Each command's positional arguments, and which App is which command.
  std::map<const CLI::App*, Command*> leaves;
  std::map<const Command*, std::vector<std::string>> positional;
  std::map<std::string, CLI::App*> groups;
  for (const auto& c : commands) {
    std::vector<std::string> words = absl::StrSplit(c->name(), ' ');
    CLI::App* parent = &app;
    if (words.size() == 2) {
      CLI::App*& group = groups[words[0]];
      if (group == nullptr) {
        group = app.add_subcommand(words[0], "");
        group->require_subcommand(0, 1);
      }
      group->description(
          absl::StrCat(group->get_description(),
                       group->get_description().empty() ? "" : "; ", words[1],
                       ": ", c->summary()));
      parent = group;
    }
    CLI::App* sub = parent->add_subcommand(words.back(), c->summary());
    FlagSet flags(sub);
    AddGlobalFlags(&flags, &g);
    c->AddFlags(&flags);
    if (!c->args_usage().empty()) {
      std::string usage = c->args_usage();
      if (absl::EndsWith(usage, "...")) {  // CLI11 adds "..." to a list
        usage.resize(usage.size() - 3);
      }
      sub->add_option(usage, positional[c.get()], "");
    }
    leaves[sub] = c.get();
  }
  std::vector<std::string> help_topic;
  CLI::App* help = app.add_subcommand("help", "tell more about a command");
  help->fallthrough(false);
  help->add_option("command", help_topic, "the command (one or two words)")
      ->type_name("COMMAND");
  std::string shell;
  CLI::App* completion = app.add_subcommand(
      "completion", "print a completion script: bash, zsh or fish");
  completion
      ->add_option("shell", shell,
                   "source <(jobwire completion bash), or zsh; fish: "
                   "jobwire completion fish | source")
      ->type_name("SHELL")
      ->required()
      ->check(CLI::IsMember({"bash", "zsh", "fish"}));

  // CLI11 parses a reversed argument vector.
  std::vector<std::string> reversed(args.rbegin(), args.rend());
  try {
    app.parse(reversed);
  } catch (const CLI::CallForHelp&) {
    out << app.help();
    return 0;
  } catch (const CLI::ParseError& e) {
    std::string name = ParsedName(app);
    if (name.empty()) {
      name = FirstWord(args);
      if (!name.empty() && dynamic_cast<const CLI::ExtrasError*>(&e)) {
        return Fail(err, name,
                    absl::InvalidArgumentError(absl::StrCat(
                        "unknown command \"", name, "\"; see jobwire --help")));
      }
    }
    return Fail(err, name, absl::InvalidArgumentError(ParseMessage(app, e)));
  }
  if (version) {
    out << "jobwire " << JOBWIRE_VERSION << "\n";
    return 0;
  }
  const CLI::App* chosen = &app;
  while (!chosen->get_subcommands().empty())
    chosen = chosen->get_subcommands().front();
  if (chosen == &app) {
    err << app.help();
    return kExitUsage;
  }
  if (chosen == help) {
    const CLI::App* topic = &app;
    for (const std::string& word : help_topic) {
      const CLI::App* next = nullptr;
      for (const CLI::App* sub : topic->get_subcommands({})) {
        if (sub->get_name() == word) next = sub;
      }
      if (next == nullptr) {
        return Fail(err, "help",
                    absl::InvalidArgumentError(absl::StrCat(
                        "unknown command \"", absl::StrJoin(help_topic, " "),
                        "\"; see jobwire --help")));
      }
      topic = next;
    }
    // Not topic->help(): that would describe the parsed `help` command.
    const std::string path = ParentPath(*topic);
    out << topic->get_formatter()->make_help(
        topic,
        topic == &app ? topic->get_name()
                      : absl::StrCat(path, " ", topic->get_name()),
        CLI::AppFormatMode::Normal);
    return 0;
  }
  if (chosen == completion) {
    out << CompletionScript(app, shell);
    return 0;
  }
  const std::string name = ParsedName(app);
  auto leaf = leaves.find(chosen);
  if (leaf == leaves.end()) {  // a group without its subcommand
    std::vector<std::string> names;
    for (const CLI::App* sub : chosen->get_subcommands({}))
      names.push_back(absl::StrCat(name, " ", sub->get_name()));
    return Fail(err, name,
                absl::InvalidArgumentError(
                    absl::StrCat("want one of: ", absl::StrJoin(names, ", "))));
  }
  Command* command = leaf->second;

  if (g.addr.empty()) g.addr = sdk::DefaultAddress(getenv, ::geteuid());
  absl::StatusOr<ListenAddress> address = ParseListenAddress(g.addr);
  if (!address.ok()) {
    return Fail(err, name,
                absl::InvalidArgumentError(
                    absl::StrCat("--addr: ", address.status().message())));
  }
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> credentials =
      ChannelCredentials(g, *address);
  if (!credentials.ok()) return Fail(err, name, credentials.status());
  // The SDK's client over the CLI's channel; its calls fail at once when
  // the server is away (the message then names --addr, below).
  sdk::Client::Options client_options;
  client_options.token = g.token;
  client_options.timeout = g.timeout;
  client_options.wait_for_ready = false;
  std::shared_ptr<grpc::Channel> channel =
      NewChannel(address->ToUri(), *std::move(credentials));
  sdk::Client client(channel, client_options);
  CliContext context;
  context.client = &client;
  context.timeout = g.timeout;
  context.token = g.token;
  context.out = &out;
  context.err = &err;
  context.in = in;
  absl::Status status = command->Run(context, positional[command]);
  if (!status.ok()) return Fail(err, name, status, g.addr);
  return 0;
}

absl::Status NoArguments(absl::string_view command,
                         const std::vector<std::string>& args) {
  if (args.empty()) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat(command, " takes no arguments, got \"", args[0], "\""));
}

}  // namespace jobwire::cli
