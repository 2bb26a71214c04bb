// Bearer-token authentication for every jobwired listener.
//
// With a token configured, every call must carry the metadata
// `authorization: Bearer <token>`, except the methods that stay open so that
// probes and tools work without secrets: grpc.health.v1.Health/* and server
// reflection. A call without a valid token fails with UNAUTHENTICATED before
// any handler runs.
//
// gRPC 1.51's InsecureServerCredentials cannot take an AuthMetadataProcessor
// and server interceptors cannot reject a call, so TokenServerCredentials
// wraps core's insecure credentials with a core auth metadata processor: the
// check runs in gRPC's server auth filter, for TCP and Unix sockets alike.
#ifndef JOBWIRE_SERVER_TRANSPORT_TOKEN_AUTH_H_
#define JOBWIRE_SERVER_TRANSPORT_TOKEN_AUTH_H_

#include <grpcpp/security/server_credentials.h>

#include <memory>
#include <string>

#include "absl/strings/string_view.h"
#include "server/transport/tls_credentials.h"
#include "server/transport/token_file.h"

namespace jobwire {

// Server credentials that require `token` as described above (an empty
// token: no token check), or with `table` one of its tokens holding the
// scope the method needs (token_file.h; else PERMISSION_DENIED naming the
// scope), over TLS with `tls` (tls_credentials.h) or else plaintext. The
// result keeps `tls` and `table` alive. No token, table or TLS returns
// grpc::InsecureServerCredentials().
std::shared_ptr<grpc::ServerCredentials> TokenServerCredentials(
    const std::string& token, std::shared_ptr<TlsCertificates> tls = nullptr,
    std::shared_ptr<TokenTable> table = nullptr);

// True for method paths that need no token: "/grpc.health.v1.Health/..." and
// "/grpc.reflection.v1alpha.ServerReflection/..." (and v1).
bool IsOpenMethod(absl::string_view method_path);

// The token of an `authorization` value "Bearer <token>": the scheme in any
// case (RFC 7235), spaces around the token dropped; empty for any other.
absl::string_view BearerCredentials(absl::string_view authorization);

// True when `authorization` is "Bearer <token>" (the scheme in any case)
// with exactly `token`
// (compared in constant time). An empty `token` never matches.
bool BearerTokenMatches(absl::string_view authorization,
                        absl::string_view token);

}  // namespace jobwire

#endif  // JOBWIRE_SERVER_TRANSPORT_TOKEN_AUTH_H_
