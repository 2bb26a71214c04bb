// The operator's controls: `jobwire pause` and `jobwire resume` (of dispatch
// or a queue, AdminService; with --job of one job, JobService), `jobwire
// queues`, `jobwire set-queue` (weight and concurrency limit) and `jobwire
// update` (UpdateJob: a job's priority, queue, labels, schedule, attempts)
// and `jobwire bulk` (BulkUpdateJobs: the same patch, or an action, on many
// jobs).
#include <climits>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "clients/cli/cli.h"
#include "google/protobuf/util/time_util.h"

namespace jobwire::cli {
namespace {

using google::protobuf::util::TimeUtil;
using jobwire::v1::Queue;

absl::Status NoPositional(const std::string& command,
                          const std::vector<std::string>& args) {
  if (args.empty()) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      command, ": unexpected argument \"", args[0], "\"; flags only"));
}

// The fields of PauseQueue / ResumeQueue / PauseDispatch, as flags.
const FieldFlags& QueueFlags() {
  static const FieldFlags* flags = new FieldFlags{{"name: ", "--queue: "},
                                                  {"resume_time: ", "--for: "},
                                                  {"reason: ", "--reason: "}};
  return *flags;
}

// "job ID PAUSED", or for a running job the request its worker got.
std::string JobStateText(const jobwire::v1::Job& job, absl::string_view asked) {
  return absl::StrCat(
      "job ", job.id(), " ", StateName(job.state()),
      job.state() == jobwire::v1::Job::STATE_RUNNING
          ? absl::StrCat(" (its worker is asked to ", asked, ")")
          : "");
}

// Prints the state line of a job just paused or resumed (or the job as
// JSON), or the call's error naming --job.
absl::Status PrintControlled(const CliContext& context,
                             const absl::StatusOr<jobwire::v1::Job>& job,
                             const std::string& output,
                             absl::string_view asked) {
  if (!job.ok()) return NameFlags(job.status(), {{"id: ", "--job: "}});
  if (IsJson(output)) {
    context.PrintJson(*job);
  } else {
    *context.out << JobStateText(*job, asked) << "\n";
  }
  return absl::OkStatus();
}

std::string PauseText(const Queue& q) {
  if (!q.paused()) return "active";
  if (!q.has_resume_time()) return "paused";
  return absl::StrCat("paused until ", TimeUtil::ToString(q.resume_time()));
}

// Prints a queue just paused or resumed ("queue q paused", or JSON), or the
// call's error naming the flags.
absl::Status PrintQueue(const CliContext& context,
                        const absl::StatusOr<Queue>& queue,
                        const std::string& output) {
  if (!queue.ok()) return NameFlags(queue.status(), QueueFlags());
  if (IsJson(output)) {
    context.PrintJson(*queue);
    return absl::OkStatus();
  }
  *context.out << "queue " << queue->name() << " " << PauseText(*queue) << "\n";
  return absl::OkStatus();
}

class PauseCommand final : public Command {
 public:
  std::string name() const override { return "pause"; }
  std::string summary() const override {
    return "pause dispatch server-wide, or one queue: [--queue Q [--for 10m]] "
           "[--reason TEXT], or one job: --job ID";
  }
  void AddFlags(FlagSet* flags) override {
    flags->String("job", &job_,
                  "pause only this job (a running one at its next safe point)",
                  "ID");
    flags->String("queue", &queue_, "pause only this queue", "Q");
    flags->Duration("for", &for_,
                    "with --queue: resume by itself after this long");
    flags->String("reason", &reason_,
                  "why (dispatch pause; shown by info and explain)", "TEXT");
    flags->Output(&output_, {"table", "json"});
  }
  absl::Status Run(const CliContext& context,
                   const std::vector<std::string>& args) override {
    if (absl::Status s = NoPositional(name(), args); !s.ok()) return s;
    if (!job_.empty()) {
      if (!queue_.empty() || for_ != absl::ZeroDuration() || !reason_.empty()) {
        return absl::InvalidArgumentError(
            "--job: pauses one job; --queue, --for and --reason do not apply");
      }
      return PrintControlled(context, context.client->PauseJob(job_), output_,
                             "pause");
    }
    if (for_ != absl::ZeroDuration() && queue_.empty()) {
      return absl::InvalidArgumentError(
          "--for: needs --queue (a dispatch pause lasts until resume)");
    }
    if (for_ < absl::ZeroDuration()) {
      return absl::InvalidArgumentError("--for: must be positive");
    }
    if (queue_.empty()) {
      absl::StatusOr<jobwire::v1::DispatchState> state =
          context.client->PauseDispatch(reason_);
      if (!state.ok()) return NameFlags(state.status(), QueueFlags());
      if (IsJson(output_)) {
        context.PrintJson(*state);
        return absl::OkStatus();
      }
      *context.out << "dispatch paused" << (state->reason().empty() ? "" : ": ")
                   << state->reason() << "\n";
      return absl::OkStatus();
    }
    if (!reason_.empty()) {
      return absl::InvalidArgumentError(
          "--reason: only for a dispatch pause (without --queue)");
    }
    jobwire::v1::PauseQueueRequest request;
    request.set_name(queue_);
    if (for_ > absl::ZeroDuration()) {
      *request.mutable_resume_time() = TimeUtil::NanosecondsToTimestamp(
          absl::ToUnixNanos(absl::Now() + for_));
    }
    return PrintQueue(context, context.client->PauseQueue(request), output_);
  }

 private:
  std::string job_;
  std::string queue_;
  absl::Duration for_ = absl::ZeroDuration();
  std::string reason_;
  std::string output_ = "table";
};

class ResumeCommand final : public Command {
 public:
  std::string name() const override { return "resume"; }
  std::string summary() const override {
    return "lift a dispatch pause, or a queue's: [--queue Q], or a job's: "
           "--job ID";
  }
  void AddFlags(FlagSet* flags) override {
    flags->String("job", &job_, "resume only this PAUSED job", "ID");
    flags->String("queue", &queue_, "resume only this queue", "Q");
    flags->Output(&output_, {"table", "json"});
  }
  absl::Status Run(const CliContext& context,
                   const std::vector<std::string>& args) override {
    if (absl::Status s = NoPositional(name(), args); !s.ok()) return s;
    if (!job_.empty()) {
      if (!queue_.empty()) {
        return absl::InvalidArgumentError(
            "--job: resumes one job; --queue does not apply");
      }
      return PrintControlled(context, context.client->ResumeJob(job_), output_,
                             "resume");
    }
    if (queue_.empty()) {
      absl::StatusOr<jobwire::v1::DispatchState> state =
          context.client->ResumeDispatch();
      if (!state.ok()) return NameFlags(state.status(), QueueFlags());
      if (IsJson(output_)) {
        context.PrintJson(*state);
        return absl::OkStatus();
      }
      *context.out << "dispatch resumed\n";
      return absl::OkStatus();
    }
    return PrintQueue(context, context.client->ResumeQueue(queue_), output_);
  }

 private:
  std::string job_;
  std::string queue_;
  std::string output_ = "table";
};

class QueuesCommand final : public Command {
 public:
  std::string name() const override { return "queues"; }
  std::string summary() const override {
    return "list queues with job counts, workers, free slots and pause state: "
           "[--output table|json]";
  }
  void AddFlags(FlagSet* flags) override {
    flags->Output(&output_, {"table", "json"});
  }
  absl::Status Run(const CliContext& context,
                   const std::vector<std::string>& args) override {
    if (absl::Status s = NoPositional(name(), args); !s.ok()) return s;
    absl::StatusOr<jobwire::v1::ListQueuesResponse> listed =
        context.client->ListQueues();
    if (!listed.ok()) return listed.status();
    const jobwire::v1::ListQueuesResponse& response = *listed;
    if (IsJson(output_)) {
      context.PrintJson(response, /*every_field=*/true);
      return absl::OkStatus();
    }
    constexpr char kRow[] =
        "%-20s  %7s  %9s  %7s  %7s  %7s  %9s  %6s  %9s  %6s  %6s  %7s  %s\n";
    *context.out << absl::StrFormat(
        kRow, "QUEUE", "QUEUED", "SCHEDULED", "RUNNING", "PAUSED", "FAILED",
        "SUCCEEDED", "WEIGHT", "LIMIT", "WORKERS", "FREE", "DONE/1M", "STATE");
    for (const Queue& q : response.queues()) {
      auto count = [&q](const char* state) {
        auto it = q.counts().find(state);
        return it == q.counts().end() ? int64_t{0} : it->second;
      };
      *context.out << absl::StrFormat(
          kRow, q.name(), absl::StrCat(count("QUEUED")),
          absl::StrCat(count("SCHEDULED")), absl::StrCat(count("RUNNING")),
          absl::StrCat(count("PAUSED")), absl::StrCat(count("FAILED")),
          absl::StrCat(count("SUCCEEDED")), absl::StrCat(q.weight()),
          q.concurrency_limit() > 0 ? absl::StrCat(q.concurrency_limit())
                                    : std::string("-"),
          absl::StrCat(q.workers()), absl::StrCat(q.free_slots()),
          absl::StrCat(q.finished_last_minute()), PauseText(q));
    }
    return absl::OkStatus();
  }

 private:
  std::string output_ = "table";
};

class SetQueueCommand final : public Command {
 public:
  std::string name() const override { return "set-queue"; }
  std::string args_usage() const override { return "NAME"; }
  std::string summary() const override {
    return "set a queue's fair-dispatch weight and concurrency limit: "
           "[--weight N] [--concurrency-limit N]";
  }
  void AddFlags(FlagSet* flags) override {
    flags->Int("weight", &weight_,
               "share in fair dispatch, at least 1 (default: unchanged)");
    flags->Int("concurrency-limit", &limit_,
               "most running jobs, 0 for no limit (default: unchanged)");
    flags->Output(&output_, {"table", "json"});
  }
  absl::Status Run(const CliContext& context,
                   const std::vector<std::string>& args) override {
    if (args.size() != 1) {
      return absl::InvalidArgumentError(absl::StrCat(
          "set-queue takes one queue NAME, got ", args.size(), " arguments"));
    }
    jobwire::v1::UpdateQueueRequest request;
    request.mutable_queue()->set_name(args[0]);
    if (weight_ != kUnchanged) {
      if (weight_ < 1)
        return absl::InvalidArgumentError("--weight: must be at least 1");
      request.mutable_queue()->set_weight(weight_);
      request.mutable_update_mask()->add_paths("weight");
    }
    if (limit_ != kUnchanged) {
      if (limit_ < 0) {
        return absl::InvalidArgumentError(
            "--concurrency-limit: must be 0 (no limit) or more");
      }
      request.mutable_queue()->set_concurrency_limit(limit_);
      request.mutable_update_mask()->add_paths("concurrency_limit");
    }
    if (request.update_mask().paths().empty()) {
      return absl::InvalidArgumentError(
          "set-queue: give --weight, --concurrency-limit or both");
    }
    absl::StatusOr<Queue> updated = context.client->UpdateQueue(request);
    if (!updated.ok()) {
      return NameFlags(updated.status(), {{"queue.name: ", "NAME: "},
                                          {"queue.weight: ", "--weight: "},
                                          {"queue.concurrency_limit: ",
                                           "--concurrency-limit: "}});
    }
    const Queue& queue = *updated;
    if (IsJson(output_)) {
      context.PrintJson(queue);
      return absl::OkStatus();
    }
    *context.out << "queue " << queue.name() << ": weight " << queue.weight()
                 << ", "
                 << (queue.concurrency_limit() > 0
                         ? absl::StrCat("at most ", queue.concurrency_limit(),
                                        " running")
                         : std::string("no concurrency limit"))
                 << "\n";
    return absl::OkStatus();
  }

 private:
  static constexpr int kUnchanged = -1;
  int weight_ = kUnchanged;
  int limit_ = kUnchanged;
  std::string output_ = "table";
};

// The patch flags of `update` and `bulk`: each one given writes its field.
class PatchFlags {
 public:
  void Add(FlagSet* flags, absl::string_view what) {
    flags->Int("priority", &priority_, "higher runs first");
    flags->String("queue", &queue_, absl::StrCat("move ", what, " to QUEUE"),
                  "QUEUE");
    flags->StringList("label", &labels_, "set label key=value; repeatable",
                      "K=V");
    flags->StringList("remove-label", &remove_labels_,
                      "remove label KEY; repeatable", "KEY");
    flags->Duration("schedule-in", &schedule_in_,
                    "do not start before now + DURATION (0s: now)");
    flags->Int("max-attempts", &max_attempts_, "attempts in all");
  }

  // Sets the given fields in `job` and their paths in `mask`.
  absl::Status Fill(jobwire::v1::Job* job,
                    google::protobuf::FieldMask* mask) const {
    if (priority_ != INT_MIN) {
      job->set_priority(priority_);
      mask->add_paths("priority");
    }
    if (!queue_.empty()) {
      job->set_queue(queue_);
      mask->add_paths("queue");
    }
    for (const std::string& label : labels_) {
      google::protobuf::Map<std::string, std::string> one;
      if (absl::Status s = AddLabel(label, &one); !s.ok()) return s;
      for (const auto& [key, value] : one) {
        (*job->mutable_labels())[key] = value;
        mask->add_paths(absl::StrCat("labels.", key));
      }
    }
    for (const std::string& key : remove_labels_) {
      if (job->labels().contains(key)) {
        return absl::InvalidArgumentError(absl::StrCat(
            "--remove-label: \"", key, "\" is also set by --label"));
      }
      mask->add_paths(absl::StrCat("labels.", key));
    }
    if (schedule_in_ != kUnsetDuration) {
      if (schedule_in_ < absl::ZeroDuration()) {
        return absl::InvalidArgumentError(
            "--schedule-in: must not be negative");
      }
      if (schedule_in_ > absl::ZeroDuration()) {
        const absl::Time at = absl::Now() + schedule_in_;
        job->mutable_schedule_time()->set_seconds(absl::ToUnixSeconds(at));
      }
      mask->add_paths("schedule_time");
    }
    if (max_attempts_ != INT_MIN) {
      if (max_attempts_ < 1)
        return absl::InvalidArgumentError("--max-attempts: must be at least 1");
      job->set_max_attempts(max_attempts_);
      mask->add_paths("max_attempts");
    }
    return absl::OkStatus();
  }

  static constexpr absl::string_view kNames =
      "--priority, --queue, --label, --remove-label, --schedule-in, "
      "--max-attempts";

  // The server's field names of a patch in `job_field`, as these flags.
  static FieldFlags Names(absl::string_view job_field) {
    FieldFlags names;
    for (const auto& [field, flag] :
         FieldFlags{{".priority: ", "--priority: "},
                    {".queue: ", "--queue: "},
                    {".labels", "--label "},
                    {".schedule_time: ", "--schedule-in: "},
                    {".max_attempts: ", "--max-attempts: "}}) {
      names.emplace_back(absl::StrCat(job_field, field), flag);
    }
    names.emplace_back("update_mask.paths", "--label/--remove-label ");
    return names;
  }

 private:
  static constexpr absl::Duration kUnsetDuration = -absl::InfiniteDuration();
  int priority_ = INT_MIN;
  std::string queue_;
  std::vector<std::string> labels_;
  std::vector<std::string> remove_labels_;
  absl::Duration schedule_in_ = kUnsetDuration;
  int max_attempts_ = INT_MIN;
};

class UpdateCommand final : public Command {
 public:
  std::string name() const override { return "update"; }
  std::string args_usage() const override { return "ID"; }
  std::string summary() const override {
    return "change a job that has not ended: [--priority N] [--queue Q] "
           "[--label k=v]... [--remove-label k]... [--schedule-in D] "
           "[--max-attempts N] [--etag E]";
  }
  void AddFlags(FlagSet* flags) override {
    patch_.Add(flags, "the job");
    flags->String("etag", &etag_,
                  "only if the job's etag still is this (else ABORTED)", "E");
    flags->Output(&output_, {"json", "table"});
  }
  absl::Status Run(const CliContext& context,
                   const std::vector<std::string>& args) override {
    if (args.size() != 1) {
      return absl::InvalidArgumentError(absl::StrCat(
          "update takes one job ID, got ", args.size(), " arguments"));
    }
    jobwire::v1::UpdateJobRequest request;
    request.mutable_job()->set_id(args[0]);
    if (absl::Status s =
            patch_.Fill(request.mutable_job(), request.mutable_update_mask());
        !s.ok()) {
      return s;
    }
    if (request.update_mask().paths().empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("update: give at least one of ", PatchFlags::kNames));
    }
    request.set_etag(etag_);
    absl::StatusOr<jobwire::v1::Job> updated =
        context.client->UpdateJob(request);
    if (!updated.ok()) {
      FieldFlags names = PatchFlags::Names("job");
      names.emplace_back("job.id: ", "ID: ");
      return NameFlags(updated.status(), names);
    }
    PrintJob(context, *updated, output_);
    return absl::OkStatus();
  }

 private:
  PatchFlags patch_;
  std::string etag_;
  std::string output_ = "json";
};

// `jobwire bulk`: one BulkUpdateJobs request.
class BulkCommand final : public Command {
 public:
  std::string name() const override { return "bulk"; }
  std::string summary() const override {
    return "change many jobs: (--filter EXPR | --id ID...) (--action "
           "cancel|pause|resume|retry|delete | patch flags of update) "
           "[--expect-state S]... [--dry-run]";
  }
  void AddFlags(FlagSet* flags) override {
    // A list, to tell --filter '' (every job) from no --filter.
    flags->StringList("filter", &filters_,
                      "the jobs a ListJobs filter matches ('' for every job)",
                      "EXPR");
    flags->StringList("id", &ids_, "this job; repeatable", "ID");
    flags->String("action", &action_,
                  "cancel, pause, resume, retry or delete (finished jobs), "
                  "instead of a patch",
                  "A");
    patch_.Add(flags, "the jobs");
    flags->StringList("expect-state", &expect_states_,
                      "change only jobs in this state (QUEUED, SCHEDULED, "
                      "RUNNING, PAUSED, SUCCEEDED, FAILED, CANCELLED; any "
                      "case); repeatable",
                      "S");
    flags->Bool("dry-run", &dry_run_,
                "count what would change; change nothing");
    flags->Output(&output_, {"table", "json"});
  }
  absl::Status Run(const CliContext& context,
                   const std::vector<std::string>& args) override {
    if (absl::Status s = NoPositional("bulk", args); !s.ok()) return s;
    jobwire::v1::BulkUpdateJobsRequest request;
    if (!filters_.empty() && !ids_.empty()) {
      return absl::InvalidArgumentError(
          "bulk: give --filter or --id, not both");
    }
    if (filters_.size() > 1) {
      return absl::InvalidArgumentError(
          "--filter: give it once (combine expressions with AND)");
    }
    if (!filters_.empty()) {
      request.set_filter(filters_[0]);
    } else if (!ids_.empty()) {
      for (const std::string& id : ids_) request.mutable_ids()->add_ids(id);
    } else {
      return absl::InvalidArgumentError(
          "bulk: give --filter EXPR or --id ID (\"--filter ''\" is every "
          "job)");
    }
    if (absl::Status s =
            patch_.Fill(request.mutable_patch(), request.mutable_update_mask());
        !s.ok()) {
      return s;
    }
    const bool patch = !request.update_mask().paths().empty();
    if (!action_.empty()) {
      if (patch) {
        return absl::InvalidArgumentError(absl::StrCat(
            "--action: cannot be combined with ", PatchFlags::kNames));
      }
      jobwire::v1::BulkUpdateJobsRequest::Action action;
      if (!jobwire::v1::BulkUpdateJobsRequest::Action_Parse(
              absl::StrCat("ACTION_", absl::AsciiStrToUpper(action_)),
              &action) ||
          action == jobwire::v1::BulkUpdateJobsRequest::ACTION_UNSPECIFIED) {
        return absl::InvalidArgumentError(
            absl::StrCat("--action: \"", action_,
                         "\" is not cancel, pause, resume, retry or delete"));
      }
      request.set_action(action);
    } else if (!patch) {
      return absl::InvalidArgumentError(absl::StrCat(
          "bulk: give --action or at least one of ", PatchFlags::kNames));
    }
    for (const std::string& name : expect_states_) {
      absl::StatusOr<jobwire::v1::Job::State> state =
          ParseState("--expect-state", name);
      if (!state.ok()) return state.status();
      request.add_expected_states(*state);
    }
    request.set_dry_run(dry_run_);

    // No deadline: a large selection takes as long as it takes.
    absl::StatusOr<jobwire::v1::BulkUpdateJobsResponse> bulk =
        context.client->BulkUpdateJobs(request);
    if (!bulk.ok()) {
      FieldFlags names = PatchFlags::Names("patch");
      names.insert(names.end(), {{"filter: ", "--filter: "},
                                 {"ids.ids", "--id "},
                                 {"action: ", "--action: "},
                                 {"expected_states", "--expect-state "}});
      return NameFlags(bulk.status(), names);
    }
    const jobwire::v1::BulkUpdateJobsResponse& response = *bulk;
    if (IsJson(output_)) {
      context.PrintJson(response, /*every_field=*/true);
    } else {
      PrintBulkTable(context, response);
    }
    if (response.failed() > 0) {
      return absl::AbortedError(
          absl::StrCat(response.failed(), " jobs failed"));
    }
    return absl::OkStatus();
  }

 private:
  void PrintBulkTable(const CliContext& context,
                      const jobwire::v1::BulkUpdateJobsResponse& response) {
    *context.out << (dry_run_ ? "dry run: " : "") << "matched "
                 << response.matched()
                 << (dry_run_ ? ", would update " : ", updated ")
                 << response.updated() << ", skipped " << response.skipped()
                 << (dry_run_ ? ", would fail " : ", failed ")
                 << response.failed() << "\n";
    for (const auto& f : response.failures()) {
      *context.out << "  " << f.id() << ": "
                   << absl::StatusCodeToString(
                          static_cast<absl::StatusCode>(f.code()))
                   << ": " << f.message() << "\n";
    }
    if (response.failed() > static_cast<int64_t>(response.failures_size())) {
      *context.out << "  ... and "
                   << response.failed() - response.failures_size()
                   << " more failures\n";
    }
  }

  std::vector<std::string> filters_;
  std::vector<std::string> ids_;
  std::string action_;
  PatchFlags patch_;
  std::vector<std::string> expect_states_;
  bool dry_run_ = false;
  std::string output_ = "table";
};

}  // namespace

void AddQueueCommands(CommandList* commands) {
  commands->push_back(std::make_unique<PauseCommand>());
  commands->push_back(std::make_unique<ResumeCommand>());
  commands->push_back(std::make_unique<QueuesCommand>());
  commands->push_back(std::make_unique<SetQueueCommand>());
  commands->push_back(std::make_unique<UpdateCommand>());
  commands->push_back(std::make_unique<BulkCommand>());
}

}  // namespace jobwire::cli
