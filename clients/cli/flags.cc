#include "clients/cli/flags.h"

#include <CLI/CLI.hpp>
#include <algorithm>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace jobwire::cli {

void FlagSet::String(const std::string& name, std::string* value,
                     const std::string& help, const std::string& value_name) {
  app_->add_option("--" + name, *value, help)->type_name(value_name);
}

void FlagSet::StringList(const std::string& name,
                         std::vector<std::string>* values,
                         const std::string& help,
                         const std::string& value_name) {
  // One value per occurrence: `--label a=1 ID` leaves ID positional.
  app_->add_option("--" + name, *values, help)
      ->type_name(value_name)
      ->allow_extra_args(false)
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
}

void FlagSet::Int(const std::string& name, int* value,
                  const std::string& help) {
  const std::string flag = "--" + name;
  app_->add_option_function<std::string>(
          flag,
          [value, flag](const std::string& text) {
            if (!absl::SimpleAtoi(text, value)) {
              throw CLI::ValidationError(
                  flag, absl::StrCat("bad number \"", text, "\""));
            }
          },
          help)
      ->type_name("N");
}

void FlagSet::Duration(const std::string& name, absl::Duration* value,
                       const std::string& help) {
  const std::string flag = "--" + name;
  app_->add_option_function<std::string>(
          flag,
          [value, flag](const std::string& text) {
            absl::Duration d;
            if (!absl::ParseDuration(text, &d) || d < absl::ZeroDuration()) {
              throw CLI::ValidationError(
                  flag,
                  absl::StrCat("bad duration \"", text, "\" (e.g. 5s, 250ms)"));
            }
            *value = d;
          },
          help)
      ->type_name("DURATION");
}

void FlagSet::Bool(const std::string& name, bool* value,
                   const std::string& help) {
  app_->add_flag("--" + name, *value, help);
}

void FlagSet::Output(std::string* format,
                     const std::vector<std::string>& formats) {
  const std::string list = absl::StrJoin(formats, " or ");
  app_->add_option("-o,--output", *format,
                   absl::StrCat(absl::StrJoin(formats, "|"), " (default ",
                                formats.front(), ")"))
      ->type_name("FORMAT")
      ->check(CLI::Validator(
          [formats, list](std::string& v) -> std::string {
            if (std::find(formats.begin(), formats.end(), v) != formats.end())
              return "";
            return absl::StrCat("want ", list, ", got \"", v, "\"");
          },
          "", "format"));
}

absl::StatusOr<std::vector<std::string>> ParseFlags(
    CLI::App* app, const std::vector<std::string>& args, bool* help) {
  std::vector<std::string> positional;
  app->add_option("args", positional)->type_name("ARGS");
  std::vector<std::string> reversed(args.rbegin(), args.rend());
  try {
    app->parse(reversed);
  } catch (const CLI::CallForHelp&) {
    *help = true;
  } catch (const CLI::ParseError& e) {
    return absl::InvalidArgumentError(e.what());
  }
  return positional;
}

}  // namespace jobwire::cli
