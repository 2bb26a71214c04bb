#include "tools/bench/machine.h"

#include <sys/utsname.h>

#include <fstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace jobwire::bench {
namespace {

// The value of the first "key : value" line of /proc/cpuinfo named `key`.
std::string CpuInfo(const std::string& key) {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(key, 0) != 0) continue;
    size_t colon = line.find(':');
    if (colon != std::string::npos)
      return std::string(absl::StripAsciiWhitespace(line.substr(colon + 1)));
  }
  return "unknown";
}

}  // namespace

std::string MachineDescription() {
  struct utsname u;
  const std::string kernel = uname(&u) == 0 ? u.release : "unknown";
  return absl::StrCat(std::thread::hardware_concurrency(), " CPUs (",
                      CpuInfo("model name"), "), kernel ", kernel);
}

std::string LoadAverage() {
  std::ifstream in("/proc/loadavg");
  std::string a, b, c;
  if (!(in >> a >> b >> c)) return "unknown";
  return absl::StrCat(a, " ", b, " ", c);
}

}  // namespace jobwire::bench
