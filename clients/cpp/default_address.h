// DefaultAddress: where jobwired serves and every client dials when no
// address is given. The same rule in jobwired, the CLI and the four SDKs:
//
//   unix:$XDG_RUNTIME_DIR/jobwire.sock   when XDG_RUNTIME_DIR is an absolute
//   path unix:/run/jobwire/jobwire.sock       else when running as root (uid 0)
//   unix:/tmp/jobwire-UID/jobwire.sock   else (UID: the effective user id)
//
// The result depends on the user, never on the current folder. Clients
// prefer $JOBWIRE_ADDR (and --addr) over it; jobwired prefers --listen and
// $JOBWIRE_LISTEN. Relative forms ("unix:var/jobwire.sock") still work when
// given explicitly.
#ifndef JOBWIRE_CLIENTS_CPP_DEFAULT_ADDRESS_H_
#define JOBWIRE_CLIENTS_CPP_DEFAULT_ADDRESS_H_

#include <sys/types.h>

#include <functional>
#include <optional>
#include <string>

namespace jobwire::sdk {

// Reads an environment variable (std::nullopt when unset).
using EnvFn = std::function<std::optional<std::string>(const std::string&)>;

// The rule above, from the process's environment and effective uid.
std::string DefaultAddress();
// The rule above, for the given environment and uid (for tests).
std::string DefaultAddress(const EnvFn& getenv, uid_t uid);

}  // namespace jobwire::sdk

#endif  // JOBWIRE_CLIENTS_CPP_DEFAULT_ADDRESS_H_
