#include "server/transport/access_log.h"

#include <grpc/grpc_security_constants.h>

#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "server/common/logging.h"
#include "server/transport/token_auth.h"

namespace jobwire {

AccessLog::AccessLog(std::string token, std::shared_ptr<TokenTable> table)
    : token_(std::move(token)), table_(std::move(table)) {}

std::string AccessLog::CallerOf(absl::string_view authorization,
                                const grpc::AuthContext* auth) const {
  if (!authorization.empty()) {
    if (table_ != nullptr) {
      std::optional<TokenTable::Entry> entry =
          table_->Find(BearerCredentials(authorization));
      if (entry.has_value()) return absl::StrCat("token:", entry->name);
    } else if (BearerTokenMatches(authorization, token_)) {
      return "token:token";
    }
  }
  if (auth != nullptr) {
    std::vector<grpc::string_ref> subject =
        auth->FindPropertyValues(GRPC_X509_SUBJECT_PROPERTY_NAME);
    if (!subject.empty()) {
      return absl::StrCat(
          "cert:", absl::string_view(subject[0].data(), subject[0].size()));
    }
  }
  return "anonymous";
}

grpc::experimental::Interceptor* AccessLog::CreateServerInterceptor(
    grpc::experimental::ServerRpcInfo* info) {
  if (!LogLevelEnabled(LogLevel::kDebug)) return nullptr;
  grpc::ServerContextBase* context = info->server_context();
  if (context == nullptr) {
    JW_LOG(DEBUG) << "call " << info->method() << " by anonymous from ?";
    return nullptr;
  }
  // The callback API binds a call's metadata to its context before it
  // creates the call's interceptors, so it is read here, once per call.
  absl::string_view authorization;
  const auto& metadata = context->client_metadata();
  auto it = metadata.find("authorization");
  if (it != metadata.end()) {
    authorization = absl::string_view(it->second.data(), it->second.size());
  }
  std::shared_ptr<const grpc::AuthContext> auth = context->auth_context();
  JW_LOG(DEBUG) << "call " << info->method() << " by "
                << CallerOf(authorization, auth.get()) << " from "
                << context->peer();
  return nullptr;
}

}  // namespace jobwire
