// FlagSet: the `jobwire` CLI's small flag parser.
//
// Flags are `--name value` or `--name=value`; booleans are `--name` (or
// `--name=true|false`). A FlagSet writes parsed values straight into the
// variables given when the flags are defined, which must outlive Parse().
// Not thread-safe; one per command invocation.
#ifndef JOBWIRE_CLIENTS_CLI_FLAGS_H_
#define JOBWIRE_CLIENTS_CLI_FLAGS_H_

#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace jobwire::cli {

class FlagSet {
 public:
  void String(std::string name, std::string* value, std::string help,
              std::string value_name = "VALUE");
  // Appends every occurrence (a repeatable flag).
  void StringList(std::string name, std::vector<std::string>* values,
                  std::string help, std::string value_name = "VALUE");
  void Int(std::string name, int* value, std::string help);
  void Duration(std::string name, absl::Duration* value, std::string help);
  void Bool(std::string name, bool* value, std::string help);

  // Parses `args`. With `stop_at_positional`, stops at the first argument
  // that is not a flag and returns it and everything after it untouched;
  // otherwise flags and positional arguments may mix ("--" ends flags).
  // `-h`/`--help` set help_requested(). Fails: INVALID_ARGUMENT naming the
  // flag ("unknown flag --x", "--timeout: bad duration \"y\"").
  absl::StatusOr<std::vector<std::string>> Parse(
      const std::vector<std::string>& args, bool stop_at_positional = false);

  bool help_requested() const { return help_requested_; }

  // One line per flag: "  --name VALUE  help".
  std::string Usage() const;

 private:
  struct Flag {
    std::string name;
    std::string value_name;  // empty for booleans
    std::string help;
    std::function<absl::Status(const std::string&)> set;
  };
  const Flag* Find(const std::string& name) const;

  std::vector<Flag> flags_;
  bool help_requested_ = false;
};

}  // namespace jobwire::cli

#endif  // JOBWIRE_CLIENTS_CLI_FLAGS_H_
