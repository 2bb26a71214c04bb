#include "clients/cpp/default_address.h"

#include <unistd.h>

#include <cstdlib>

namespace jobwire::sdk {

std::string DefaultAddress(const EnvFn& getenv, uid_t uid) {
  if (std::optional<std::string> dir = getenv("XDG_RUNTIME_DIR");
      dir.has_value() && !dir->empty() && dir->front() == '/') {
    if (dir->size() > 1 && dir->back() == '/') dir->pop_back();
    return "unix:" + *dir + "/jobwire.sock";
  }
  if (uid == 0) return "unix:/run/jobwire/jobwire.sock";
  return "unix:/tmp/jobwire-" + std::to_string(uid) + "/jobwire.sock";
}

std::string DefaultAddress() {
  return DefaultAddress(
      [](const std::string& name) -> std::optional<std::string> {
        const char* v = std::getenv(name.c_str());
        if (v == nullptr) return std::nullopt;
        return std::string(v);
      },
      ::geteuid());
}

}  // namespace jobwire::sdk
