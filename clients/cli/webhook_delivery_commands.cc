// `jobwire webhooks`: the operators' view of webhook deliveries.
//   jobwire webhooks list [--failed] [--job ID] [--limit N] [-o table|json]
//   jobwire webhooks redeliver ID
// over AdminService.ListWebhookDeliveries and RedeliverWebhook.
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "clients/cli/cli.h"
#include "google/protobuf/util/time_util.h"
#include "jobwire/v1/admin_service.pb.h"

namespace jobwire::cli {
namespace {

using google::protobuf::util::TimeUtil;
using jobwire::v1::WebhookDeliveryRecord;

std::string DeliveryState(WebhookDeliveryRecord::State state) {
  switch (state) {
    case WebhookDeliveryRecord::STATE_PENDING:
      return "PENDING";
    case WebhookDeliveryRecord::STATE_DELIVERED:
      return "DELIVERED";
    case WebhookDeliveryRecord::STATE_DEAD:
      return "DEAD";
    default:
      return "UNSPECIFIED";
  }
}

class WebhooksListCommand final : public Command {
 public:
  std::string name() const override { return "webhooks list"; }
  std::string summary() const override {
    return "webhook deliveries, newest first: [--failed] [--job ID] "
           "[--limit N] [-o table|json]";
  }
  void AddFlags(FlagSet* flags) override {
    flags->Bool("failed", &failed_,
                "only dead deliveries and pending ones that failed");
    flags->String("job", &job_, "only this job's deliveries", "ID");
    flags->Int("limit", &limit_, "most deliveries to print (default 100)");
    flags->Output(&output_, {"table", "json"});
  }
  absl::Status Run(const CliContext& context,
                   const std::vector<std::string>& args) override {
    if (absl::Status s = NoArguments(name(), args); !s.ok()) return s;
    if (limit_ < 1)
      return absl::InvalidArgumentError("--limit: must be at least 1");
    jobwire::v1::ListWebhookDeliveriesRequest request;
    request.set_job_id(job_);
    request.set_failed_only(failed_);
    absl::StatusOr<jobwire::v1::ListWebhookDeliveriesResponse> listed =
        context.client->ListWebhookDeliveries(std::move(request), limit_);
    if (!listed.ok()) return listed.status();
    const jobwire::v1::ListWebhookDeliveriesResponse& all = *listed;
    if (output_ == "json") {
      context.PrintJson(all, /*every_field=*/true);
      return absl::OkStatus();
    }
    *context.out << absl::StrFormat(
        "%-8s  %-9s  %-8s  %-6s  %-15s  %-26s  %s\n", "ID", "STATE", "ATTEMPTS",
        "HTTP", "TYPE", "JOB", "LAST ERROR");
    for (const WebhookDeliveryRecord& d : all.deliveries()) {
      *context.out << absl::StrFormat(
          "%-8d  %-9s  %-8d  %-6s  %-15s  %-26s  %s\n", d.id(),
          DeliveryState(d.state()), d.attempts(),
          d.last_http_status() == 0 ? std::string("-")
                                    : absl::StrCat(d.last_http_status()),
          d.type(), d.job_id(), d.last_error());
    }
    if (!all.next_page_token().empty()) {
      *context.out << "(more deliveries match; --limit " << limit_
                   << " stopped the list)\n";
    }
    return absl::OkStatus();
  }

 private:
  bool failed_ = false;
  std::string job_;
  int limit_ = 100;
  std::string output_ = "table";
};

class WebhooksRedeliverCommand final : public Command {
 public:
  std::string name() const override { return "webhooks redeliver"; }
  std::string args_usage() const override { return "ID"; }
  std::string summary() const override {
    return "send a delivered or dead webhook delivery again (same "
           "webhook-id, attempts reset)";
  }
  void AddFlags(FlagSet* flags) override {
    flags->Output(&output_, {"table", "json"});
  }
  absl::Status Run(const CliContext& context,
                   const std::vector<std::string>& args) override {
    int64_t id = 0;
    if (args.size() != 1 || !absl::SimpleAtoi(args[0], &id) || id <= 0) {
      return absl::InvalidArgumentError(
          "webhooks redeliver takes one delivery ID (a number from "
          "`webhooks list`)");
    }
    absl::StatusOr<WebhookDeliveryRecord> redelivered =
        context.client->RedeliverWebhook(id);
    if (!redelivered.ok()) return redelivered.status();
    const WebhookDeliveryRecord& record = *redelivered;
    if (IsJson(output_)) {
      context.PrintJson(record);
      return absl::OkStatus();
    }
    *context.out << "delivery " << record.id() << " (" << record.webhook_id()
                 << ", " << record.type() << " of job " << record.job_id()
                 << ") is pending again, due "
                 << TimeUtil::ToString(record.next_attempt_time()) << "\n";
    return absl::OkStatus();
  }

 private:
  std::string output_ = "table";
};

}  // namespace

void AddWebhookDeliveryCommands(CommandList* commands) {
  commands->push_back(std::make_unique<WebhooksListCommand>());
  commands->push_back(std::make_unique<WebhooksRedeliverCommand>());
}

}  // namespace jobwire::cli
