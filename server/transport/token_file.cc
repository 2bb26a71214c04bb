#include "server/transport/token_file.h"

#include <fstream>
#include <sstream>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "server/common/logging.h"

namespace jobwire {
namespace {

constexpr size_t kMinTokenLength = 6;
constexpr absl::Duration kCheckEvery = absl::Seconds(1);

bool SameStamp(const struct timespec& a, const struct timespec& b) {
  return a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec;
}

struct timespec Stamp(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return {};
  return st.st_mtim;
}

absl::StatusOr<std::string> ReadText(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::InvalidArgumentError(
        absl::StrCat("--auth-token-file: cannot read ", path));
  }
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace

bool ConstantTimeEquals(absl::string_view a, absl::string_view b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < b.size(); ++i) {
    const unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    diff |= x ^ static_cast<unsigned char>(b[i]);
  }
  return diff == 0;
}

absl::Status CheckTokenText(absl::string_view token) {
  if (token.size() < kMinTokenLength) {
    return absl::InvalidArgumentError(
        absl::StrCat("too short: at least ", kMinTokenLength, " characters"));
  }
  for (char c : token) {
    if (c <= ' ' || c > '~') {
      return absl::InvalidArgumentError(
          "only visible ASCII characters, no spaces (it is sent in a "
          "header)");
    }
  }
  return absl::OkStatus();
}

absl::string_view ScopeOf(absl::string_view method_path) {
  absl::string_view method = method_path.substr(method_path.rfind('/') + 1);
  if (absl::StartsWith(method_path, "/jobwire.v1.WorkerService/")) {
    return "work";
  }
  if (absl::StartsWith(method_path, "/jobwire.v1.JobService/")) {
    if (method == "SubmitJob" || method == "SubmitJobs") return "submit";
    if (method == "GetJob" || method == "ListJobs" || method == "WatchJob" ||
        method == "WatchJobs" || method == "ExplainJob") {
      return "read";
    }
  }
  if (absl::StartsWith(method_path, "/jobwire.v1.AdminService/") &&
      (method == "GetServerInfo" || method == "ListQueues" ||
       method == "ListWebhookDeliveries")) {
    return "read";
  }
  return "admin";
}

absl::StatusOr<std::vector<TokenTable::Entry>> TokenTable::Parse(
    absl::string_view text) {
  std::vector<Entry> entries;
  int line_number = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_number;
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line[0] == '#') continue;
    auto bad = [line_number](absl::string_view what) {
      return absl::InvalidArgumentError(
          absl::StrCat("line ", line_number, ": ", what));
    };
    std::vector<absl::string_view> words =
        absl::StrSplit(line, absl::ByAnyChar(" \t"), absl::SkipEmpty());
    if (words.size() != 3) {
      return bad("want NAME TOKEN SCOPE[,SCOPE...]");
    }
    Entry entry;
    entry.name = std::string(words[0]);
    entry.token = std::string(words[1]);
    if (absl::Status s = CheckTokenText(entry.token); !s.ok()) {
      return bad(absl::StrCat("token of ", entry.name, ": ", s.message()));
    }
    for (absl::string_view scope : absl::StrSplit(words[2], ',')) {
      if (scope != "submit" && scope != "read" && scope != "work" &&
          scope != "admin") {
        return bad(absl::StrCat("unknown scope \"", scope,
                                "\" (want submit, read, work, admin)"));
      }
      entry.scopes.emplace_back(scope);
    }
    for (const Entry& other : entries) {
      if (other.name == entry.name) {
        return bad(absl::StrCat("name ", entry.name, " given twice"));
      }
      if (other.token == entry.token) {
        return bad(absl::StrCat("token of ", entry.name, " is also ",
                                other.name, "'s"));
      }
    }
    entries.push_back(std::move(entry));
  }
  if (entries.empty()) return absl::InvalidArgumentError("no token in it");
  return entries;
}

absl::StatusOr<std::shared_ptr<TokenTable>> TokenTable::Load(std::string path) {
  std::shared_ptr<TokenTable> table(new TokenTable(std::move(path)));
  const struct timespec stamp = Stamp(table->path_);
  absl::StatusOr<std::string> text = ReadText(table->path_);
  if (!text.ok()) return text.status();
  absl::StatusOr<std::vector<Entry>> entries = Parse(*text);
  if (!entries.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--auth-token-file: ", table->path_, " ", entries.status().message()));
  }
  absl::MutexLock lock(&table->mu_);
  table->entries_ = *std::move(entries);
  table->stamp_ = stamp;
  table->last_check_ = absl::Now();
  return table;
}

void TokenTable::MaybeReloadLocked() {
  const absl::Time now = absl::Now();
  if (now - last_check_ < kCheckEvery) return;
  last_check_ = now;
  const struct timespec stamp = Stamp(path_);
  if (SameStamp(stamp, stamp_) || SameStamp(stamp, failed_stamp_)) return;
  absl::StatusOr<std::string> text = ReadText(path_);
  absl::StatusOr<std::vector<Entry>> entries =
      text.ok() ? Parse(*text)
                : absl::StatusOr<std::vector<Entry>>(text.status());
  if (!entries.ok()) {
    failed_stamp_ = stamp;
    JW_LOG(WARNING) << "--auth-token-file " << path_
                    << " changed but does not load ("
                    << entries.status().message()
                    << "); the previous tokens stay in force";
    return;
  }
  entries_ = *std::move(entries);
  stamp_ = stamp;
  JW_LOG(INFO) << "--auth-token-file " << path_
               << " re-read: " << entries_.size() << " tokens";
}

std::optional<TokenTable::Entry> TokenTable::Find(absl::string_view token) {
  absl::MutexLock lock(&mu_);
  MaybeReloadLocked();
  std::optional<Entry> found;
  for (const Entry& entry : entries_) {
    if (ConstantTimeEquals(token, entry.token) && !found) found = entry;
  }
  return found;
}

std::optional<TokenTable::Entry> TokenTable::FindByName(
    absl::string_view name) {
  absl::MutexLock lock(&mu_);
  MaybeReloadLocked();
  for (const Entry& entry : entries_) {
    if (entry.name == name) return entry;
  }
  return std::nullopt;
}

}  // namespace jobwire
