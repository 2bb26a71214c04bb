// `jobwire health`, `jobwire info` and `jobwire backup`: the server itself.
#include <sys/stat.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "clients/cli/cli.h"
#include "google/protobuf/struct.pb.h"
#include "grpc/health/v1/health.pb.h"
#include "jobwire/v1/admin_service.pb.h"

namespace jobwire::cli {
namespace {

using grpc::health::v1::HealthCheckResponse;

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
    flags->Output(&output_, {"table", "json"});
  }
  absl::Status Run(const CliContext& context,
                   const std::vector<std::string>& args) override {
    if (absl::Status s = NoArguments(name(), args); !s.ok()) return s;
    absl::StatusOr<HealthCheckResponse> checked =
        context.client->CheckHealth(service_);
    if (!checked.ok()) return checked.status();
    const HealthCheckResponse& response = *checked;
    const std::string& state =
        HealthCheckResponse::ServingStatus_Name(response.status());
    if (IsJson(output_)) {
      context.PrintJson(response);
    } else {
      *context.out << state << "\n";
    }
    if (response.status() != HealthCheckResponse::SERVING) {
      return absl::UnavailableError(absl::StrCat("server is ", state));
    }
    return absl::OkStatus();
  }

 private:
  std::string service_;
  std::string output_ = "table";
};

class InfoCommand final : public Command {
 public:
  std::string name() const override { return "info"; }
  std::string summary() const override {
    return "print AdminService.GetServerInfo as JSON (version, uptime, "
           "listeners, storage), or -o table";
  }
  void AddFlags(FlagSet* flags) override {
    flags->Output(&output_, {"json", "table"});
  }
  absl::Status Run(const CliContext& context,
                   const std::vector<std::string>& args) override {
    if (absl::Status s = NoArguments(name(), args); !s.ok()) return s;
    absl::StatusOr<jobwire::v1::ServerInfo> got =
        context.client->GetServerInfo();
    if (!got.ok()) return got.status();
    const jobwire::v1::ServerInfo& info = *got;
    if (IsJson(output_)) {
      context.PrintJson(info);
      return absl::OkStatus();
    }
    std::string counts;
    for (const auto& [state, n] : info.job_counts())
      absl::StrAppend(&counts, counts.empty() ? "" : ", ", state, " ", n);
    *context.out << "version    " << info.version() << "\n"
                 << "uptime     " << info.uptime().seconds() << "s\n"
                 << "listeners  " << absl::StrJoin(info.listeners(), ", ")
                 << "\n"
                 << "storage    " << info.storage_path() << " ("
                 << info.storage_bytes() << " bytes)\n"
                 << "dispatch   "
                 << (info.dispatch().paused()
                         ? absl::StrCat("paused",
                                        info.dispatch().reason().empty()
                                            ? ""
                                            : ": " + info.dispatch().reason())
                         : std::string("running"))
                 << (info.draining() ? " (draining)" : "") << "\n"
                 << "workers    " << info.workers() << "\n"
                 << "watchers   " << info.watchers() << "\n"
                 << "jobs       " << (counts.empty() ? "none" : counts) << "\n";
    return absl::OkStatus();
  }

 private:
  std::string output_ = "json";
};

// `jobwire backup --out FILE`: AdminService.Backup into FILE.tmp, renamed
// to FILE once every byte arrived, so FILE is never a partial copy.
class BackupCommand final : public Command {
 public:
  std::string name() const override { return "backup"; }
  std::string summary() const override {
    return "save a consistent copy of the server's database: --out FILE";
  }
  void AddFlags(FlagSet* flags) override {
    flags->String("out", &out_, "write the copy here (a SQLite database)",
                  "FILE");
    flags->Output(&output_, {"table", "json"});
  }
  absl::Status Run(const CliContext& context,
                   const std::vector<std::string>& args) override {
    if (absl::Status s = NoArguments(name(), args); !s.ok()) return s;
    if (out_.empty()) {
      return absl::InvalidArgumentError("--out: give the file to write");
    }
    const std::string temp = out_ + ".tmp";
    // The copy holds every job's args: owner-only, like the database.
    const mode_t umask_before = ::umask(0077);
    std::ofstream file(temp, std::ios::binary | std::ios::trunc);
    ::umask(umask_before);
    ::chmod(temp.c_str(), 0600);  // a .tmp left by an earlier run
    if (!file) {
      return absl::InvalidArgumentError(
          absl::StrCat("--out: cannot write ", temp));
    }
    // No deadline: a large database takes as long as it takes.
    int64_t written = 0;
    int64_t total = -1;
    absl::Status failed;
    absl::Status status =
        context.client->Backup([&](const jobwire::v1::BackupChunk& chunk) {
          if (chunk.offset() != written) {
            failed = absl::DataLossError(absl::StrCat(
                "backup: chunk at ", chunk.offset(), ", expected ", written));
            return false;
          }
          total = chunk.total_bytes();
          file.write(chunk.data().data(),
                     static_cast<std::streamsize>(chunk.data().size()));
          written += static_cast<int64_t>(chunk.data().size());
          return true;
        });
    file.close();
    if (failed.ok() && !status.ok()) failed = status;
    if (failed.ok() && !file) {
      failed = absl::InternalError(absl::StrCat("backup: writing ", temp));
    }
    if (failed.ok() && written != total) {
      failed = absl::DataLossError(
          absl::StrCat("backup: got ", written, " of ", total, " bytes"));
    }
    if (failed.ok() && std::rename(temp.c_str(), out_.c_str()) != 0) {
      failed = absl::InternalError(
          absl::StrCat("backup: cannot rename ", temp, " to ", out_));
    }
    if (!failed.ok()) {
      std::remove(temp.c_str());
      return failed;
    }
    if (IsJson(output_)) {
      google::protobuf::Struct done;
      (*done.mutable_fields())["out"].set_string_value(out_);
      (*done.mutable_fields())["bytes"].set_number_value(
          static_cast<double>(written));
      context.PrintJson(done);
    } else {
      *context.out << "wrote " << written << " bytes to " << out_ << "\n";
    }
    return absl::OkStatus();
  }

 private:
  std::string output_ = "table";
  std::string out_;
};

}  // namespace

void AddServerCommands(CommandList* commands) {
  commands->push_back(std::make_unique<HealthCommand>());
  commands->push_back(std::make_unique<InfoCommand>());
  commands->push_back(std::make_unique<BackupCommand>());
}

}  // namespace jobwire::cli
