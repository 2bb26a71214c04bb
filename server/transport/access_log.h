// AccessLog: one `debug` log line per gRPC call, naming the method, the
// caller and the peer:
//   call /jobwire.v1.JobService/SubmitJob by token:ci from ipv4:127.0.0.1:5
//   call /jobwire.v1.JobService/GetJob by anonymous from
//   unix:uid=1000,gid=1000,pid=42
// The caller is the token's name (--auth-token-file; "token" for
// --auth-token), the client certificate's subject (mTLS), or "anonymous";
// the peer is named as peer_name.h says (a Unix peer by its uid, gid and
// pid). The HTTP face logs its calls in the same shape (http_server.h).
// With the log level above debug it adds no interceptor at all.
//
// The token's name comes from the call's own `authorization` metadata:
// gRPC 1.51 hands every call of a connection the connection's auth context
// (the one token_auth's processor sees), so anything recorded there would
// name the connection's first caller, not this call's. A client may send a
// different token on each call of one channel. The certificate subject is
// the connection's, which is right: one TLS handshake per connection.
//
// Registered with ServerBuilder::experimental().SetInterceptorCreators.
// Thread-safe.
#ifndef JOBWIRE_SERVER_TRANSPORT_ACCESS_LOG_H_
#define JOBWIRE_SERVER_TRANSPORT_ACCESS_LOG_H_

#include <grpcpp/grpcpp.h>
#include <grpcpp/support/server_interceptor.h>

#include <memory>
#include <string>

#include "absl/strings/string_view.h"
#include "server/transport/token_file.h"

namespace jobwire {

class AccessLog final
    : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  // The same `token` (--auth-token) and `table` (--auth-token-file, may be
  // null) as the listeners' TokenServerCredentials. Keeps `table` alive.
  AccessLog(std::string token, std::shared_ptr<TokenTable> table);

  // The caller of one call: "token:NAME" when `authorization` (the call's
  // metadata value) holds a token the server accepts, else
  // "cert:SUBJECT" for the connection's client certificate in `auth` (may
  // be null), else "anonymous".
  std::string CallerOf(absl::string_view authorization,
                       const grpc::AuthContext* auth) const;

  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override;

 private:
  const std::string token_;
  const std::shared_ptr<TokenTable> table_;
};

}  // namespace jobwire

#endif  // JOBWIRE_SERVER_TRANSPORT_ACCESS_LOG_H_
