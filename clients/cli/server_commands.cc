// `jobwire health` and `jobwire info`: the server itself.
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "clients/cli/cli.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "jobwire/v1/admin_service.grpc.pb.h"

namespace jobwire::cli {
namespace {

using grpc::health::v1::HealthCheckResponse;

absl::Status NoArguments(const std::string& command,
                         const std::vector<std::string>& args) {
  if (args.empty()) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat(command, " takes no arguments, got \"", args[0], "\""));
}

class HealthCommand final : public Command {
 public:
  std::string name() const override { return "health"; }
  std::string summary() const override {
    return "check grpc.health.v1.Health; prints SERVING and exits 0 when "
           "serving";
  }
  void AddFlags(FlagSet* flags) override {
    flags->String(
        "service", &service_,
        "service to ask about, e.g. jobwire.v1.JobService (default: the "
        "whole server)",
        "NAME");
  }
  absl::Status Run(const CliContext& context,
                   const std::vector<std::string>& args) override {
    if (absl::Status s = NoArguments(name(), args); !s.ok()) return s;
    auto stub = grpc::health::v1::Health::NewStub(context.channel);
    auto call = context.NewCallContext();
    grpc::health::v1::HealthCheckRequest request;
    request.set_service(service_);
    HealthCheckResponse response;
    grpc::Status status = stub->Check(call.get(), request, &response);
    if (!status.ok()) return FromGrpcStatus(status);
    const std::string& state =
        HealthCheckResponse::ServingStatus_Name(response.status());
    *context.out << state << "\n";
    if (response.status() != HealthCheckResponse::SERVING) {
      return absl::UnavailableError(absl::StrCat("server is ", state));
    }
    return absl::OkStatus();
  }

 private:
  std::string service_;
};

class InfoCommand final : public Command {
 public:
  std::string name() const override { return "info"; }
  std::string summary() const override {
    return "print AdminService.GetServerInfo as JSON (version, uptime, "
           "listeners, "
           "storage)";
  }
  absl::Status Run(const CliContext& context,
                   const std::vector<std::string>& args) override {
    if (absl::Status s = NoArguments(name(), args); !s.ok()) return s;
    auto stub = jobwire::v1::AdminService::NewStub(context.channel);
    auto call = context.NewCallContext();
    jobwire::v1::ServerInfo info;
    grpc::Status status = stub->GetServerInfo(call.get(), {}, &info);
    if (!status.ok()) return FromGrpcStatus(status);
    context.PrintJson(info);
    return absl::OkStatus();
  }
};

}  // namespace

void AddServerCommands(CommandList* commands) {
  commands->push_back(std::make_unique<HealthCommand>());
  commands->push_back(std::make_unique<InfoCommand>());
}

}  // namespace jobwire::cli
