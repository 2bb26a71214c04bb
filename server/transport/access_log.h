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
// Registered with ServerBuilder::experimental().SetInterceptorCreators.
// Thread-safe.
#ifndef JOBWIRE_SERVER_TRANSPORT_ACCESS_LOG_H_
#define JOBWIRE_SERVER_TRANSPORT_ACCESS_LOG_H_

#include <grpcpp/grpcpp.h>
#include <grpcpp/support/server_interceptor.h>

#include <string>

namespace jobwire {

// The auth-context property token_auth sets to the caller's name.
inline constexpr char kCallerProperty[] = "jobwire_caller";

// "token:NAME", "cert:SUBJECT" or "anonymous" for a call's auth context.
std::string CallerOf(const grpc::AuthContext& context);

class AccessLog final
    : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override;
};

}  // namespace jobwire

#endif  // JOBWIRE_SERVER_TRANSPORT_ACCESS_LOG_H_
