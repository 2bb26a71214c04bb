// Runs `promtool check metrics` on a scrape's text. Test-only.
#ifndef JOBWIRE_SERVER_METRICS_PROMTOOL_CHECK_H_
#define JOBWIRE_SERVER_METRICS_PROMTOOL_CHECK_H_

#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace jobwire::test {

// OK when promtool (JOBWIRE_PROMTOOL, else `promtool` on PATH: Debian's
// `prometheus` package, installed by tools/bootstrap) accepts `text` with no
// lint finding. FAILED_PRECONDITION when promtool is missing; INVALID_ARGUMENT
// with promtool's output when it objects.
inline absl::Status PromtoolCheckMetrics(const std::string& text) {
  const char* env = std::getenv("JOBWIRE_PROMTOOL");
  const std::string promtool =
      env != nullptr && *env != '\0' ? env : "promtool";
  const std::string probe = "command -v '" + promtool + "' >/dev/null 2>&1";
  if (std::system(probe.c_str()) != 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "promtool not found (", promtool,
        "): run tools/bootstrap (Debian's `prometheus` package provides "
        "/usr/bin/promtool) or set JOBWIRE_PROMTOOL"));
  }
  char path[] = "/tmp/jobwire-metrics-XXXXXX";
  const int fd = mkstemp(path);
  if (fd < 0) return absl::InternalError("mkstemp failed");
  close(fd);
  std::ofstream(path) << text;
  const std::string command =
      "'" + promtool + "' check metrics < " + path + " 2>&1";
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) {
    std::remove(path);
    return absl::InternalError("popen failed");
  }
  std::string output;
  char buf[512];
  while (fgets(buf, sizeof(buf), pipe) != nullptr) output += buf;
  const int status = pclose(pipe);
  std::remove(path);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || !output.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("promtool check metrics:\n", output));
  }
  return absl::OkStatus();
}

}  // namespace jobwire::test

#endif  // JOBWIRE_SERVER_METRICS_PROMTOOL_CHECK_H_
