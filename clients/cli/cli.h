// The `jobwire` command-line client: its command table and runner.
//
// Each command is a small Command subclass in a file of its own
// (server_commands.cc: health, info; later jobs_commands.cc,
// worker_command.cc ...), registered with ONE line in commands.cc
// (AllCommands). There is no static registration: commands.cc is the list.
// A command's name may be two words ("webhook verify"): a group and its
// subcommand.
//
// Every command gets the global flags (--addr, --timeout, --token) and its
// own. On success it prints its result to stdout and `jobwire` exits 0; on
// failure `jobwire` prints exactly one line to stderr,
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
#include <vector>

#include "absl/status/status.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "clients/cli/flags.h"
#include "google/protobuf/map.h"
#include "google/protobuf/message.h"

namespace jobwire::cli {

// What a command's Run gets: the connection and where to print.
struct CliContext {
  std::shared_ptr<grpc::Channel> channel;
  // The per-call deadline (--timeout); streams that run long may ignore it.
  absl::Duration timeout = absl::Seconds(10);
  // Bearer token (--token / JOBWIRE_TOKEN); empty for none.
  std::string token;
  std::ostream* out = nullptr;
  // Standard input, for the commands that read it; may be null.
  std::istream* in = nullptr;
  // For notes beside the result (progress, summaries); not for errors,
  // which the command returns.
  std::ostream* err = nullptr;

  // A ClientContext carrying the token, and the deadline unless
  // `with_deadline` is false.
  std::unique_ptr<grpc::ClientContext> NewCallContext(
      bool with_deadline = true) const;
  // Prints `message` as JSON (proto field names) and a newline.
  void PrintJson(const google::protobuf::Message& message) const;
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
  // server's status (see FromGrpcStatus).
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

// The flags and arguments of listing command `command`: takes a trailing
// "-o FORMAT" from `args` into `*output`; INVALID_ARGUMENT for any other
// argument, naming --output unless `*output` is "table" or "json", or
// --limit when `limit` < 1.
absl::Status CheckListFlags(absl::string_view command,
                            const std::vector<std::string>& args,
                            std::string* output, int limit);
// grpc::Status -> absl::Status (same code and message).
absl::Status FromGrpcStatus(const grpc::Status& status);

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
