#include "server/metrics/process_metrics.h"

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"

namespace jobwire {
namespace {

absl::StatusOr<std::string> ReadFile(const char* path) {
  std::ifstream in(path);
  if (!in) return absl::InternalError(std::string("cannot read ") + path);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// Seconds since the epoch at which the machine booted ("btime" of /proc/stat).
absl::StatusOr<int64_t> BootTime() {
  absl::StatusOr<std::string> stat = ReadFile("/proc/stat");
  if (!stat.ok()) return stat.status();
  for (absl::string_view line : absl::StrSplit(*stat, '\n')) {
    if (absl::ConsumePrefix(&line, "btime ")) {
      int64_t btime = 0;
      if (absl::SimpleAtoi(line, &btime)) return btime;
    }
  }
  return absl::InternalError("no btime in /proc/stat");
}

int64_t CountOpenFds() {
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return 0;
  int64_t n = 0;
  while (const dirent* entry = readdir(dir)) {
    if (entry->d_name[0] != '.') ++n;
  }
  closedir(dir);
  return n - 1;  // the directory's own descriptor
}

}  // namespace

absl::StatusOr<ProcessSample> ReadProcessSampleBlocking() {
  absl::StatusOr<std::string> stat = ReadFile("/proc/self/stat");
  if (!stat.ok()) return stat.status();
  // The command name (field 2) is in parentheses and may hold spaces: the
  // fields that follow start after the last ')'. Fields are numbered from 1
  // in proc(5); fields[0] here is field 3 (state).
  const size_t close = stat->rfind(')');
  if (close == std::string::npos) {
    return absl::InternalError("cannot parse /proc/self/stat");
  }
  std::vector<absl::string_view> fields = absl::StrSplit(
      absl::string_view(*stat).substr(close + 2), ' ', absl::SkipEmpty());
  auto field = [&fields](int number, int64_t* value) {
    const size_t i = static_cast<size_t>(number - 3);
    return i < fields.size() && absl::SimpleAtoi(fields[i], value);
  };
  int64_t utime = 0, stime = 0, starttime = 0, vsize = 0, rss = 0;
  if (!field(14, &utime) || !field(15, &stime) || !field(22, &starttime) ||
      !field(23, &vsize) || !field(24, &rss)) {
    return absl::InternalError("cannot parse /proc/self/stat");
  }
  absl::StatusOr<int64_t> boot = BootTime();
  if (!boot.ok()) return boot.status();
  const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
  ProcessSample s;
  s.cpu_seconds = static_cast<double>(utime + stime) / ticks;
  s.start_time_seconds =
      static_cast<double>(*boot) + static_cast<double>(starttime) / ticks;
  s.resident_memory_bytes = rss * sysconf(_SC_PAGESIZE);
  s.virtual_memory_bytes = vsize;
  s.open_fds = CountOpenFds();
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0) {
    s.max_fds = limit.rlim_cur == RLIM_INFINITY
                    ? 0
                    : static_cast<int64_t>(limit.rlim_cur);
  }
  return s;
}

}  // namespace jobwire
