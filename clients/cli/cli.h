// The `jobwire` command-line client: its command table and runner.
//
// Each command is a small Command subclass in a file of its own
// (server_commands.cc: health, info; later jobs_commands.cc,
// worker_command.cc ...), registered with ONE line in commands.cc
// (AllCommands). There is no static registration: commands.cc is the list.
// A command's name may be two words ("webhook verify"): a group and its
// subcommand.
//
// Flags are parsed by CLI11 (see flags.h), in any position. Every command
// gets the global flags (--addr, --timeout, --token) and its own;
// `jobwire --help`, `jobwire COMMAND --help` and `jobwire help COMMAND` print
// what CLI11 generates from them, `jobwire completion bash|zsh|fish` a
// completion script (completion.h), `jobwire --version` the version. On success
// it prints its result to stdout and `jobwire` exits 0; on failure `jobwire`
// prints exactly one line to stderr,
//   jobwire: <command>: <CODE>: <message>
// and exits 2 for a usage error (INVALID_ARGUMENT from flag parsing) or 1
// otherwise.
#ifndef JOBWIRE_CLIENTS_CLI_CLI_H_
#define JOBWIRE_CLIENTS_CLI_CLI_H_

#include <grpcpp/grpcpp.h>

#include <functional>
#include <iosfwd>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "clients/cli/flags.h"
#include "clients/cpp/client.h"
#include "google/protobuf/map.h"
#include "google/protobuf/message.h"
#include "jobwire/v1/job.pb.h"

namespace jobwire::cli {

// What a command's Run gets: the server (the C++ SDK's client, through which
// every command makes its calls) and where to print.
struct CliContext {
  // Over the --addr channel, with the --token and --timeout (per unary
  // call; streams that run long have none). Its calls fail at once while
  // the server is away (no wait for ready). Not owned.
  sdk::Client* client = nullptr;
  // What --timeout and --token (JOBWIRE_TOKEN) said; `client` carries them.
  absl::Duration timeout = absl::Seconds(10);
  std::string token;
  std::ostream* out = nullptr;
  // Standard input, for the commands that read it; may be null.
  std::istream* in = nullptr;
  // For notes beside the result (progress, summaries); not for errors,
  // which the command returns.
  std::ostream* err = nullptr;

  // Prints `message` as JSON (proto field names, enums by name) and a
  // newline. With `every_field`, fields at their defaults are printed too
  // (an empty list is `"jobs": []`, not left out). With `one_line`, compact
  // on one line (JSON lines, for streams).
  void PrintJson(const google::protobuf::Message& message,
                 bool every_field = false, bool one_line = false) const;
};

class Command {
 public:
  virtual ~Command() = default;
  // The word after `jobwire`, e.g. "info", or two ("webhook verify").
  virtual std::string name() const = 0;
  // Positional arguments for the usage line, e.g. "ID"; empty for none.
  virtual std::string args_usage() const { return ""; }
  // One line for `jobwire --help`.
  virtual std::string summary() const = 0;
  // Adds this command's own flags, bound to its members.
  virtual void AddFlags(FlagSet* /*flags*/) {}
  // Runs the command. Returns INVALID_ARGUMENT for bad arguments, else the
  // server's status (as the SDK returns it).
  virtual absl::Status Run(const CliContext& context,
                           const std::vector<std::string>& args) = 0;
};

using CommandList = std::vector<std::unique_ptr<Command>>;

// commands.cc: every command, in help order.
CommandList AllCommands();
// server_commands.cc: health, info, backup.
void AddServerCommands(CommandList* commands);
// jobs_commands.cc: submit, submit-batch, get, list, watch, cancel, retry,
// explain.
void AddJobCommands(CommandList* commands);
// worker_command.cc: worker.
void AddWorkerCommand(CommandList* commands);
// queue_commands.cc: pause, resume (dispatch, a queue or a job), queues,
// set-queue, update (of a job), bulk (of many).
void AddQueueCommands(CommandList* commands);
// webhook_command.cc: webhook verify, whose clock is `now` (tests inject
// one).
void AddWebhookCommands(CommandList* commands,
                        std::function<absl::Time()> now = absl::Now);
// webhook_delivery_commands.cc: webhooks (list, redeliver), over
// AdminService.ListWebhookDeliveries and RedeliverWebhook.
void AddWebhookDeliveryCommands(CommandList* commands);

// INVALID_ARGUMENT "COMMAND takes no arguments, got ..." unless `args` is
// empty.
absl::Status NoArguments(absl::string_view command,
                         const std::vector<std::string>& args);
// A job state as people read it: "QUEUED" (JSON output keeps the enum name,
// STATE_QUEUED).
std::string StateName(jobwire::v1::Job::State state);
// The state `text` names: QUEUED, queued or STATE_QUEUED. INVALID_ARGUMENT
// naming `flag` for anything else.
absl::StatusOr<jobwire::v1::Job::State> ParseState(absl::string_view flag,
                                                   absl::string_view text);
// `format` is "json" or "table", from -o/--output (FlagSet::Output).
inline bool IsJson(const std::string& format) { return format == "json"; }
// Jobs as a table: a header line, then one line each (ID, STATE, QUEUE,
// KIND, CREATED).
void PrintJobTable(
    const CliContext& context,
    const google::protobuf::RepeatedPtrField<jobwire::v1::Job>& jobs);
// `job` as JSON when `format` is "json", else as a one-row PrintJobTable.
void PrintJob(const CliContext& context, const jobwire::v1::Job& job,
              const std::string& format);

// The server names request fields ("name: must match ..."); the user typed
// flags, so an INVALID_ARGUMENT names those: each violation (they are joined
// by "; ") that starts with a field of `flags` starts with its flag instead.
// Other statuses pass through.
using FieldFlags = std::vector<std::pair<std::string, std::string>>;
absl::Status NameFlags(const absl::Status& status, const FieldFlags& flags);

// Adds a --label flag's "key=value" to `labels`. INVALID_ARGUMENT naming
// --label when there is no '=' or no key.
absl::Status AddLabel(const std::string& flag_value,
                      google::protobuf::Map<std::string, std::string>* labels);

using GetEnvFn = std::function<std::optional<std::string>(const std::string&)>;

// Runs `jobwire args...` (args without argv[0]); returns the exit code.
// `in` is standard input (null: none).
int RunCli(const std::vector<std::string>& args, CommandList commands,
           const GetEnvFn& getenv, std::ostream& out, std::ostream& err,
           std::istream* in = nullptr);

}  // namespace jobwire::cli

#endif  // JOBWIRE_CLIENTS_CLI_CLI_H_
