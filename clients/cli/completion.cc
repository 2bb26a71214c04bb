#include "clients/cli/completion.h"

#include <CLI/CLI.hpp>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"

namespace jobwire::cli {
namespace {

// The long flags of `app`, "--name" each.
std::vector<std::string> LongFlags(const CLI::App& app) {
  std::vector<std::string> flags;
  for (const CLI::Option* option : app.get_options()) {
    for (const std::string& name : option->get_lnames())
      flags.push_back("--" + name);
  }
  return flags;
}

std::vector<const CLI::App*> Subcommands(const CLI::App& app) {
  std::vector<const CLI::App*> subs;
  for (const CLI::App* sub : app.get_subcommands({})) subs.push_back(sub);
  return subs;
}

std::string Names(const std::vector<const CLI::App*>& apps) {
  return absl::StrJoin(apps, " ", [](std::string* out, const CLI::App* a) {
    out->append(a->get_name());
  });
}

std::string Bash(const CLI::App& app) {
  const std::vector<const CLI::App*> top = Subcommands(app);
  std::string cases =
      absl::StrCat("    \"\") words=\"", Names(top), " ",
                   absl::StrJoin(LongFlags(app), " "), "\" ;;\n");
  std::string groups;
  for (const CLI::App* sub : top) {
    const std::vector<const CLI::App*> subs = Subcommands(*sub);
    absl::StrAppend(
        &cases, "    \"", sub->get_name(), "\") words=\"",
        subs.empty() ? absl::StrJoin(LongFlags(*sub), " ") : Names(subs),
        "\" ;;\n");
    if (!subs.empty()) absl::StrAppend(&groups, " ", sub->get_name());
    for (const CLI::App* leaf : subs) {
      absl::StrAppend(&cases, "    \"", sub->get_name(), " ", leaf->get_name(),
                      "\") words=\"", absl::StrJoin(LongFlags(*leaf), " "),
                      "\" ;;\n");
    }
  }
  return absl::StrCat(
      "# bash completion for jobwire: source <(jobwire completion bash)\n"
      "_jobwire() {\n"
      "  local cur=\"${COMP_WORDS[COMP_CWORD]}\" cmd=\"\" words=\"\" i w\n"
      "  local groups=\"",
      groups,
      " \"\n"
      "  for ((i = 1; i < COMP_CWORD; i++)); do\n"
      "    w=\"${COMP_WORDS[i]}\"\n"
      "    [[ \"$w\" == -* ]] && continue\n"
      "    if [[ -z \"$cmd\" ]]; then cmd=\"$w\"\n"
      "    elif [[ \"$cmd\" != *\" \"* && \"$groups\" == *\" $cmd \"* ]]; then "
      "cmd=\"$cmd $w\"\n"
      "    fi\n"
      "  done\n"
      "  case \"$cmd\" in\n",
      cases,
      "  esac\n"
      "  mapfile -t COMPREPLY < <(compgen -W \"$words\" -- \"$cur\")\n"
      "}\n"
      "complete -o default -F _jobwire jobwire\n");
}

// A fish -d argument.
std::string FishQuote(const std::string& text) {
  return absl::StrCat(
      "'", absl::StrReplaceAll(text, {{"\\", "\\\\"}, {"'", "\\'"}}), "'");
}

std::string Fish(const CLI::App& app) {
  std::string out =
      "# fish completion for jobwire: jobwire completion fish | source\n"
      "complete -c jobwire -f\n";
  const std::vector<const CLI::App*> top = Subcommands(app);
  for (const CLI::App* sub : top) {
    absl::StrAppend(&out, "complete -c jobwire -n __fish_use_subcommand -a ",
                    sub->get_name(), " -d ",
                    FishQuote(sub->get_description().substr(0, 80)), "\n");
    std::vector<const CLI::App*> subs = Subcommands(*sub);
    if (subs.empty()) subs.push_back(sub);
    for (const CLI::App* leaf : subs) {
      std::string when =
          absl::StrCat("'__fish_seen_subcommand_from ", sub->get_name(), "'");
      if (leaf != sub) {
        absl::StrAppend(&out, "complete -c jobwire -n ", when, " -a ",
                        leaf->get_name(), " -d ",
                        FishQuote(leaf->get_description().substr(0, 80)), "\n");
        when = absl::StrCat("'__fish_seen_subcommand_from ", leaf->get_name(),
                            "'");
      }
      for (const CLI::Option* option : leaf->get_options()) {
        for (const std::string& name : option->get_lnames()) {
          absl::StrAppend(&out, "complete -c jobwire -n ", when, " -l ", name,
                          option->get_type_size() == 0 ? "" : " -r", " -d ",
                          FishQuote(option->get_description().substr(0, 80)),
                          "\n");
        }
      }
    }
  }
  return out;
}

}  // namespace

std::string CompletionScript(const CLI::App& app, const std::string& shell) {
  if (shell == "fish") return Fish(app);
  if (shell == "zsh") {
    return absl::StrCat(
        "# zsh completion for jobwire: source <(jobwire completion zsh)\n"
        "autoload -U +X bashcompinit && bashcompinit\n",
        Bash(app));
  }
  return Bash(app);
}

}  // namespace jobwire::cli
