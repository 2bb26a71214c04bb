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

// What both shells' scripts share: the arms of a `case "$cmd" in` that set
// variable `var` to the words that may follow command `cmd` ("" for none
// yet, "webhooks", "webhooks list"), and the groups (" webhook webhooks").
struct Cases {
  std::string arms;
  std::string groups;
};
Cases MakeCases(const CLI::App& app, absl::string_view var) {
  const std::vector<const CLI::App*> top = Subcommands(app);
  Cases c;
  c.arms = absl::StrCat("    \"\") ", var, "=\"", Names(top), " ",
                        absl::StrJoin(LongFlags(app), " "), "\" ;;\n");
  for (const CLI::App* sub : top) {
    const std::vector<const CLI::App*> subs = Subcommands(*sub);
    absl::StrAppend(
        &c.arms, "    \"", sub->get_name(), "\") ", var, "=\"",
        subs.empty() ? absl::StrJoin(LongFlags(*sub), " ") : Names(subs),
        "\" ;;\n");
    if (!subs.empty()) absl::StrAppend(&c.groups, " ", sub->get_name());
    for (const CLI::App* leaf : subs) {
      absl::StrAppend(&c.arms, "    \"", sub->get_name(), " ", leaf->get_name(),
                      "\") ", var, "=\"", absl::StrJoin(LongFlags(*leaf), " "),
                      "\" ;;\n");
    }
  }
  return c;
}

// The global flags of `app` that take a value (" --addr --timeout ... "):
// the word after one is its value, not the command.
std::string ValuedFlags(const CLI::App& app) {
  std::string out = " ";
  for (const CLI::Option* option : app.get_options()) {
    if (option->get_type_size() == 0) continue;  // a switch
    for (const std::string& name : option->get_lnames())
      absl::StrAppend(&out, "--", name, " ");
  }
  return out;
}

// The loop both scripts run over the words before the cursor (from `first`
// to before `last`, in array `array`): `cmd` becomes the command typed so
// far. The value of a global flag given before the command is skipped.
std::string CommandLoop(const CLI::App& app, absl::string_view array,
                        absl::string_view first, absl::string_view last) {
  return absl::StrCat(
      "  for ((i = ", first, "; i < ", last,
      "; i++)); do\n"
      "    w=\"${",
      array,
      "[i]}\"\n"
      "    if [[ -z \"$cmd\" && \"",
      ValuedFlags(app),
      "\" == *\" $w \"* ]]; then ((i++)); continue; fi\n"
      "    [[ \"$w\" == -* ]] && continue\n"
      "    if [[ -z \"$cmd\" ]]; then cmd=\"$w\"\n"
      "    elif [[ \"$cmd\" != *\" \"* && \"$groups\" == *\" $cmd \"* ]]; then "
      "cmd=\"$cmd $w\"\n"
      "    fi\n"
      "  done\n");
}

// zsh: a #compdef file (for fpath as _jobwire) that also works sourced.
std::string Zsh(const CLI::App& app) {
  const Cases c = MakeCases(app, "cands");
  return absl::StrCat(
      "#compdef jobwire\n"
      "# zsh completion for jobwire: source <(jobwire completion zsh), or\n"
      "# save as _jobwire in a folder of $fpath.\n"
      "_jobwire() {\n"
      "  local cmd=\"\" cands=\"\" i w\n"
      "  local groups=\"",
      c.groups, " \"\n", CommandLoop(app, "words", "2", "CURRENT"),
      "  case \"$cmd\" in\n", c.arms,
      "  esac\n"
      "  compadd -- ${=cands}\n"
      "}\n"
      "if [[ \"${funcstack[1]}\" == _jobwire ]]; then\n"
      "  _jobwire \"$@\"\n"
      "else\n"
      "  compdef _jobwire jobwire\n"
      "fi\n");
}

std::string Bash(const CLI::App& app) {
  const Cases c = MakeCases(app, "words");
  const std::string& cases = c.arms;
  const std::string& groups = c.groups;
  return absl::StrCat(
      "# bash completion for jobwire: source <(jobwire completion bash)\n"
      "_jobwire() {\n"
      "  local cur=\"${COMP_WORDS[COMP_CWORD]}\" cmd=\"\" words=\"\" i w\n"
      "  local groups=\"",
      groups, " \"\n", CommandLoop(app, "COMP_WORDS", "1", "COMP_CWORD"),
      "  case \"$cmd\" in\n", cases,
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
  if (shell == "zsh") return Zsh(app);
  return Bash(app);
}

}  // namespace jobwire::cli
