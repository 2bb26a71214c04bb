#include "server/transport/token_auth.h"

#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>

#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace jobwire {
namespace {

absl::string_view SliceView(const grpc_slice& slice) {
  return absl::string_view(
      reinterpret_cast<const char*>(GRPC_SLICE_START_PTR(slice)),
      GRPC_SLICE_LENGTH(slice));
}

// What a processor checks: one token with every scope, or a table.
struct AuthState {
  std::string token;
  std::shared_ptr<TokenTable> table;
};

// Called by core's server auth filter for every incoming call, on a gRPC
// thread; it compares strings (and, at most once a second, stats the token
// file), so it answers inline. It records nothing in `context`: that is the
// connection's auth context in gRPC 1.51, shared by all of its calls (the
// access log reads each call's caller from the call's own metadata).
void ProcessMetadata(void* state_ptr, grpc_auth_context* /*context*/,
                     const grpc_metadata* md, size_t num_md,
                     grpc_process_auth_metadata_done_cb done, void* user_data) {
  const AuthState& state = *static_cast<const AuthState*>(state_ptr);
  absl::string_view path;
  absl::string_view authorization;
  for (size_t i = 0; i < num_md; ++i) {
    absl::string_view key = SliceView(md[i].key);
    if (key == ":path") path = SliceView(md[i].value);
    if (key == "authorization") authorization = SliceView(md[i].value);
  }
  if (IsOpenMethod(path)) {
    done(user_data, nullptr, 0, nullptr, 0, GRPC_STATUS_OK, nullptr);
    return;
  }
  if (authorization.empty()) {
    done(user_data, nullptr, 0, nullptr, 0, GRPC_STATUS_UNAUTHENTICATED,
         "missing credentials: send metadata 'authorization: Bearer <token>'");
    return;
  }
  if (state.table == nullptr) {
    const bool ok = BearerTokenMatches(authorization, state.token);
    done(user_data, nullptr, 0, nullptr, 0,
         ok ? GRPC_STATUS_OK : GRPC_STATUS_UNAUTHENTICATED,
         ok ? nullptr : "invalid bearer token");
    return;
  }
  std::optional<TokenTable::Entry> caller =
      state.table->Find(BearerCredentials(authorization));
  if (!caller.has_value()) {
    done(user_data, nullptr, 0, nullptr, 0, GRPC_STATUS_UNAUTHENTICATED,
         "invalid bearer token");
    return;
  }
  const absl::string_view scope = ScopeOf(path);
  for (const std::string& s : caller->scopes) {
    if (s == scope) {
      done(user_data, nullptr, 0, nullptr, 0, GRPC_STATUS_OK, nullptr);
      return;
    }
  }
  const std::string message =
      absl::StrCat("token ", caller->name, " lacks the scope '", scope,
                   "' that ", path, " needs");
  done(user_data, nullptr, 0, nullptr, 0, GRPC_STATUS_PERMISSION_DENIED,
       message.c_str());
}

void DestroyState(void* state) { delete static_cast<AuthState*>(state); }

class TokenCredentials final : public grpc::ServerCredentials {
 public:
  TokenCredentials(std::string token, std::shared_ptr<TlsCertificates> tls,
                   std::shared_ptr<TokenTable> table)
      : token_(std::move(token)),
        tls_(std::move(tls)),
        table_(std::move(table)) {}

  void SetAuthMetadataProcessor(
      const std::shared_ptr<grpc::AuthMetadataProcessor>& /*processor*/)
      override {
    // The token check is this class's processor; there is no second one.
  }

 private:
  int AddPortToServer(const std::string& addr, grpc_server* server) override {
    grpc_server_credentials* creds =
        tls_ != nullptr ? tls_->CreateCoreCredentials()
                        : grpc_insecure_server_credentials_create();
    if (!token_.empty() || table_ != nullptr) {
      grpc_auth_metadata_processor processor;
      processor.process = &ProcessMetadata;
      processor.destroy = &DestroyState;
      processor.state = new AuthState{token_, table_};
      grpc_server_credentials_set_auth_metadata_processor(creds, processor);
    }
    int port = grpc_server_add_http2_port(server, addr.c_str(), creds);
    grpc_server_credentials_release(creds);
    return port;
  }

  const std::string token_;
  const std::shared_ptr<TlsCertificates> tls_;
  const std::shared_ptr<TokenTable> table_;
};

}  // namespace

std::shared_ptr<grpc::ServerCredentials> TokenServerCredentials(
    const std::string& token, std::shared_ptr<TlsCertificates> tls,
    std::shared_ptr<TokenTable> table) {
  if (token.empty() && tls == nullptr && table == nullptr) {
    return grpc::InsecureServerCredentials();
  }
  return std::make_shared<TokenCredentials>(token, std::move(tls),
                                            std::move(table));
}

bool IsOpenMethod(absl::string_view method_path) {
  return absl::StartsWith(method_path, "/grpc.health.v1.Health/") ||
         absl::StartsWith(method_path,
                          "/grpc.reflection.v1alpha.ServerReflection/") ||
         absl::StartsWith(method_path, "/grpc.reflection.v1.ServerReflection/");
}

absl::string_view BearerCredentials(absl::string_view authorization) {
  authorization = absl::StripAsciiWhitespace(authorization);
  if (authorization.size() < 7 ||
      !absl::EqualsIgnoreCase(authorization.substr(0, 7), "bearer ")) {
    return {};
  }
  return absl::StripLeadingAsciiWhitespace(authorization.substr(7));
}

bool BearerTokenMatches(absl::string_view authorization,
                        absl::string_view token) {
  if (token.empty()) return false;
  authorization = BearerCredentials(authorization);
  if (authorization.empty()) return false;
  return ConstantTimeEquals(authorization, token);
}

}  // namespace jobwire
