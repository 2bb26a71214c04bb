#include "clients/cli/flags.h"

#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace jobwire::cli {

void FlagSet::String(std::string name, std::string* value, std::string help,
                     std::string value_name) {
  flags_.push_back({std::move(name), std::move(value_name), std::move(help),
                    [value](const std::string& v) {
                      *value = v;
                      return absl::OkStatus();
                    }});
}

void FlagSet::StringList(std::string name, std::vector<std::string>* values,
                         std::string help, std::string value_name) {
  flags_.push_back({std::move(name), std::move(value_name), std::move(help),
                    [values](const std::string& v) {
                      values->push_back(v);
                      return absl::OkStatus();
                    }});
}

void FlagSet::Int(std::string name, int* value, std::string help) {
  flags_.push_back(
      {std::move(name), "N", std::move(help), [value](const std::string& v) {
         if (!absl::SimpleAtoi(v, value)) {
           return absl::InvalidArgumentError(
               absl::StrCat("bad number \"", v, "\""));
         }
         return absl::OkStatus();
       }});
}

void FlagSet::Duration(std::string name, absl::Duration* value,
                       std::string help) {
  flags_.push_back({std::move(name), "DURATION", std::move(help),
                    [value](const std::string& v) {
                      if (!absl::ParseDuration(v, value) ||
                          *value < absl::ZeroDuration()) {
                        return absl::InvalidArgumentError(absl::StrCat(
                            "bad duration \"", v, "\" (e.g. 5s, 250ms)"));
                      }
                      return absl::OkStatus();
                    }});
}

void FlagSet::Bool(std::string name, bool* value, std::string help) {
  flags_.push_back(
      {std::move(name), "", std::move(help), [value](const std::string& v) {
         if (v.empty() || v == "true") {
           *value = true;
         } else if (v == "false") {
           *value = false;
         } else {
           return absl::InvalidArgumentError(
               absl::StrCat("want true or false, not \"", v, "\""));
         }
         return absl::OkStatus();
       }});
}

const FlagSet::Flag* FlagSet::Find(const std::string& name) const {
  for (const Flag& f : flags_) {
    if (f.name == name) return &f;
  }
  return nullptr;
}

absl::StatusOr<std::vector<std::string>> FlagSet::Parse(
    const std::vector<std::string>& args, bool stop_at_positional) {
  std::vector<std::string> positional;
  for (size_t i = 0; i < args.size(); ++i) {
    absl::string_view arg = args[i];
    if (arg == "--") {
      positional.insert(positional.end(), args.begin() + i + 1, args.end());
      break;
    }
    if (arg == "-h" || arg == "--help") {
      help_requested_ = true;
      continue;
    }
    if (!absl::ConsumePrefix(&arg, "--") || arg.empty()) {
      if (stop_at_positional) {
        positional.insert(positional.end(), args.begin() + i, args.end());
        break;
      }
      positional.push_back(args[i]);
      continue;
    }
    std::string name(arg);
    std::string value;
    bool has_value = false;
    if (size_t eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name.resize(eq);
      has_value = true;
    }
    const Flag* f = Find(name);
    if (f == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("unknown flag --", name));
    }
    if (!has_value && !f->value_name.empty()) {
      if (i + 1 >= args.size()) {
        return absl::InvalidArgumentError(
            absl::StrCat("--", name, ": missing value ", f->value_name));
      }
      value = args[++i];
    }
    if (absl::Status s = f->set(value); !s.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--", name, ": ", s.message()));
    }
  }
  return positional;
}

std::string FlagSet::Usage() const {
  std::string out;
  for (const Flag& f : flags_) {
    std::string head = absl::StrCat("  --", f.name);
    if (!f.value_name.empty()) absl::StrAppend(&head, " ", f.value_name);
    if (head.size() < 24) head.resize(24, ' ');
    absl::StrAppend(&out, head, " ", f.help, "\n");
  }
  return out;
}

}  // namespace jobwire::cli
