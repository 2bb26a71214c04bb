#include "server/transport/access_log.h"

#include <grpc/grpc_security_constants.h>

#include <memory>

#include "absl/strings/str_cat.h"
#include "server/common/logging.h"

namespace jobwire {

std::string CallerOf(const grpc::AuthContext& context) {
  for (const char* property :
       {kCallerProperty, GRPC_X509_SUBJECT_PROPERTY_NAME}) {
    std::vector<grpc::string_ref> values = context.FindPropertyValues(property);
    if (!values.empty()) {
      return absl::StrCat(
          property == kCallerProperty ? "token:" : "cert:",
          absl::string_view(values[0].data(), values[0].size()));
    }
  }
  return "anonymous";
}

grpc::experimental::Interceptor* AccessLog::CreateServerInterceptor(
    grpc::experimental::ServerRpcInfo* info) {
  if (!LogLevelEnabled(LogLevel::kDebug)) return nullptr;
  grpc::ServerContextBase* context = info->server_context();
  std::shared_ptr<const grpc::AuthContext> auth =
      context != nullptr ? context->auth_context() : nullptr;
  JW_LOG(DEBUG) << "call " << info->method() << " by "
                << (auth != nullptr ? CallerOf(*auth) : "anonymous") << " from "
                << (context != nullptr ? context->peer() : "?");
  return nullptr;
}

}  // namespace jobwire
