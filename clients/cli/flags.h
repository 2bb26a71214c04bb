// FlagSet: how a `jobwire` command declares its flags. It is a thin layer
// over CLI11 (Debian's libcli11-dev): each call adds one option to the
// CLI::App of the command, which parses them in any position, writes help
// and completions from them, and reports a bad value naming the flag.
//
// Flags are `--name value` or `--name=value`; booleans are `--name` (or
// `--name=true|false`); "--" ends flags. Parsed values go straight into the
// variables given, which must outlive the parse. Not thread-safe; one per
// command invocation.
#ifndef JOBWIRE_CLIENTS_CLI_FLAGS_H_
#define JOBWIRE_CLIENTS_CLI_FLAGS_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace CLI {
class App;
}  // namespace CLI

namespace jobwire::cli {

class FlagSet {
 public:
  // Adds the flags to `app`, which must outlive this FlagSet.
  explicit FlagSet(CLI::App* app) : app_(app) {}

  void String(const std::string& name, std::string* value,
              const std::string& help, const std::string& value_name = "VALUE");
  // Appends every occurrence (a repeatable flag).
  void StringList(const std::string& name, std::vector<std::string>* values,
                  const std::string& help,
                  const std::string& value_name = "VALUE");
  void Int(const std::string& name, int* value, const std::string& help);
  // A Go-style duration ("5s", "250ms"); negative ones are refused.
  void Duration(const std::string& name, absl::Duration* value,
                const std::string& help);
  void Bool(const std::string& name, bool* value, const std::string& help);
  // `-o, --output FORMAT`, one of `formats` (the first is the default,
  // which `*format` should already hold). A value outside them is refused
  // naming --output.
  void Output(std::string* format, const std::vector<std::string>& formats);

  CLI::App* app() const { return app_; }

 private:
  CLI::App* app_;
};

// Parses `args` with `flags` and an ARGS positional list; returns the
// positional arguments. For tests and small tools: INVALID_ARGUMENT naming
// the flag ("--timeout: bad duration \"y\""); `--help` sets *help.
absl::StatusOr<std::vector<std::string>> ParseFlags(
    CLI::App* app, const std::vector<std::string>& args, bool* help);

}  // namespace jobwire::cli

#endif  // JOBWIRE_CLIENTS_CLI_FLAGS_H_
