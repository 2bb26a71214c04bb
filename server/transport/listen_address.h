// Listen and dial addresses: the forms accepted by jobwired --listen and by
// the CLI's --addr.
//
//   unix:PATH          a Unix socket at PATH (relative to the working
//                      directory, or absolute)
//   unix:///ABS        a Unix socket at the absolute path /ABS
//   unix-abstract:NAME a Linux abstract Unix socket (no file)
//   HOST:PORT          TCP; HOST is a name, an IPv4 address or [IPv6]
//
// Pure functions on values; thread-compatible.
#ifndef JOBWIRE_SERVER_TRANSPORT_LISTEN_ADDRESS_H_
#define JOBWIRE_SERVER_TRANSPORT_LISTEN_ADDRESS_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace jobwire {

struct ListenAddress {
  enum class Kind { kUnixPath, kUnixAbstract, kTcp };

  Kind kind = Kind::kTcp;
  // kUnixPath: the socket path as given; kUnixAbstract: the name.
  std::string path;
  // kTcp: host without brackets ("127.0.0.1", "::1", "localhost").
  std::string host;
  // kTcp: 0..65535; 0 asks the kernel for a free port.
  int port = 0;

  bool is_unix() const { return kind != Kind::kTcp; }

  // The URI gRPC understands for this address: "unix:/abs/p.sock",
  // "unix:rel/p.sock", "unix-abstract:name", "127.0.0.1:50051", "[::1]:50051".
  // Also the canonical text that ParseListenAddress reads back.
  std::string ToUri() const;

  // True for every Unix socket and for TCP on localhost, 127.0.0.0/8 or ::1.
  // Any other host (including 0.0.0.0 and names) is not loopback.
  bool IsLoopback() const;
};

// Parses one of the forms above. Fails with INVALID_ARGUMENT naming what is
// wrong (empty path, missing port, port out of range, "unix://host/..." form).
absl::StatusOr<ListenAddress> ParseListenAddress(absl::string_view text);

// `address` with a relative Unix socket path made absolute against `cwd`.
// Other addresses are returned unchanged.
ListenAddress MakeAbsolute(ListenAddress address, absl::string_view cwd);

}  // namespace jobwire

#endif  // JOBWIRE_SERVER_TRANSPORT_LISTEN_ADDRESS_H_
