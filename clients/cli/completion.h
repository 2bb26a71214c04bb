// Shell completion for `jobwire`, written from the CLI11 command tree:
// `jobwire completion bash|zsh|fish` prints one of these scripts.
#ifndef JOBWIRE_CLIENTS_CLI_COMPLETION_H_
#define JOBWIRE_CLIENTS_CLI_COMPLETION_H_

#include <string>

namespace CLI {
class App;
}  // namespace CLI

namespace jobwire::cli {

// The completion script of `app` (the root `jobwire` App) for `shell`:
// "bash", "zsh" (a #compdef file, also fine to source) or "fish". Completes
// command names (and a group's subcommands) and each command's --flags.
std::string CompletionScript(const CLI::App& app, const std::string& shell);

}  // namespace jobwire::cli

#endif  // JOBWIRE_CLIENTS_CLI_COMPLETION_H_
