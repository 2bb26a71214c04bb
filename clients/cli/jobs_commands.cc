// `jobwire submit | get | list | watch | cancel`: jobs through JobService.
#include <unistd.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

// Boost.JSON, header-only: its definitions are compiled here (this is the
// only file of the client that uses it).
#include <boost/json.hpp>
#include <boost/json/src.hpp>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "clients/cli/cli.h"
#include "clients/cpp/client.h"
#include "clients/cpp/progress.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/time_util.h"

namespace jobwire::cli {
namespace {

using jobwire::v1::Job;

absl::Status OneId(const std::string& command,
                   const std::vector<std::string>& args, std::string* id) {
  if (args.size() != 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        command, " takes one job ID, got ", args.size(), " arguments"));
  }
  *id = args[0];
  return absl::OkStatus();
}

using sdk::IsTerminal;

// The outcome of a job that reached `state`: OK for SUCCEEDED.
absl::Status Outcome(const std::string& id, Job::State state,
                     const jobwire::v1::JobError& error) {
  if (state == Job::STATE_SUCCEEDED) return absl::OkStatus();
  const std::string message =
      error.message().empty() ? "" : absl::StrCat(": ", error.message());
  if (state == Job::STATE_CANCELLED) {
    return absl::CancelledError(
        absl::StrCat("job ", id, " was cancelled", message));
  }
  return absl::AbortedError(absl::StrCat("job ", id, " failed", message));
}

// How long `watch` keeps trying to resume while the server is away.
constexpr absl::Duration kWatchGiveUpAfter = absl::Minutes(2);

// Prints event `e` of job `id` for people: a line each (progress as a bar
// on a terminal, `tty`).
void PrintEvent(const CliContext& context, const std::string& id,
                const jobwire::v1::JobEvent& e, bool tty) {
  if (e.has_snapshot()) {
    *context.out << id << " " << StateName(e.snapshot().state()) << "\n";
  } else if (e.has_state_changed()) {
    const auto& sc = e.state_changed();
    *context.out << (tty ? "\n" : "") << id << " " << StateName(sc.from())
                 << " -> " << StateName(sc.to())
                 << (sc.reason().empty() ? ""
                                         : absl::StrCat(" (", sc.reason(), ")"))
                 << "\n";
  } else if (e.has_progress()) {
    const auto& p = e.progress();
    if (tty && p.total() > 0) {
      const int width = 30;
      const int filled = static_cast<int>(
          width * std::min<int64_t>(p.done(), p.total()) / p.total());
      *context.out << "\r[" << std::string(filled, '#')
                   << std::string(width - filled, ' ') << "] " << p.done()
                   << "/" << p.total() << " " << p.message() << std::flush;
    } else {
      *context.out << id << " progress " << p.done() << "/" << p.total()
                   << (p.message().empty() ? "" : " ") << p.message() << "\n";
    }
  } else if (e.has_log()) {
    *context.out << (tty ? "\n" : "") << id << " log: " << e.log().line()
                 << "\n";
  } else if (e.has_updated()) {
    *context.out << (tty ? "\n" : "") << id
                 << " updated: " << absl::StrJoin(e.updated().paths(), ", ")
                 << "\n";
  }
}

// Follows one job on the C++ SDK's resuming watch (sdk::Client::WatchJob):
// after a disconnect or the server's `draining` it resumes from the last
// seq, and gives up once attempts have failed for kWatchGiveUpAfter. A
// server that cannot be reached at the start (a wrong --addr, say) fails at
// once, like any other command. Returns the job's outcome. With `json`,
// prints each WatchJobResponse but heartbeats as one line of JSON (JSON
// lines), else a line per event for people. Every line goes out at once
// (stdout may be a pipe or a file).
absl::Status Watch(const CliContext& context, const std::string& id,
                   std::optional<int64_t> after_seq, bool json) {
  sdk::Client& client = *context.client;
  const bool tty =
      !json && context.out == &std::cout && ::isatty(STDOUT_FILENO) == 1;
  std::optional<absl::Status> outcome;
  sdk::Client::WatchOptions options;
  options.fail_if_unreachable = true;
  options.give_up_after = kWatchGiveUpAfter;
  options.on_message = [&](const jobwire::v1::WatchJobResponse& msg) {
    if (json) {
      context.PrintJson(msg, /*every_field=*/false, /*one_line=*/true);
    } else if (msg.has_draining()) {
      *context.out << (tty ? "\n" : "") << "server draining; will resume\n";
    } else if (msg.has_reset()) {
      *context.out << "reset: " << msg.reset().reason() << "\n";
    }
    context.out->flush();
  };
  absl::Status watched = client.WatchJob(
      id, after_seq,
      [&](const jobwire::v1::JobEvent& e) {
        if (!json) PrintEvent(context, id, e, tty);
        context.out->flush();
        if (e.has_snapshot() && IsTerminal(e.snapshot().state())) {
          outcome = Outcome(id, e.snapshot().state(), e.snapshot().error());
        } else if (e.has_state_changed() &&
                   IsTerminal(e.state_changed().to())) {
          outcome =
              Outcome(id, e.state_changed().to(), e.state_changed().error());
        }
        return true;
      },
      options);
  if (outcome.has_value()) return *outcome;
  if (!watched.ok()) return watched;
  // The stream ended with no terminal event in it: the job had ended at or
  // before the cursor (--after-seq). Its state says how.
  absl::StatusOr<Job> job = client.GetJob(id);
  if (!job.ok()) return job.status();
  if (!IsTerminal(job->state())) {
    return absl::UnavailableError("the server ended the watch early");
  }
  if (json) {
    context.PrintJson(*job, /*every_field=*/false, /*one_line=*/true);
  } else {
    *context.out << id << " " << StateName(job->state()) << "\n";
  }
  context.out->flush();
  return Outcome(id, job->state(), job->error());
}

class SubmitCommand final : public Command {
 public:
  std::string name() const override { return "submit"; }
  std::string summary() const override {
    return "submit a job: --kind K [--queue Q] [--args JSON] [--label k=v]... "
           "[--watch]";
  }
  void AddFlags(FlagSet* flags) override {
    flags->String("kind", &kind_, "what to run (required)", "KIND");
    flags->String("queue", &queue_, "queue name (default \"default\")",
                  "QUEUE");
    flags->String("args", &args_, "JSON object of arguments, e.g. '{\"n\":1}'",
                  "JSON");
    flags->StringList("label", &labels_, "label key=value; repeatable", "K=V");
    flags->Int("priority", &priority_, "higher runs first (default 0)");
    flags->Duration("schedule-in", &schedule_in_,
                    "do not start before now + DURATION");
    flags->String("request-id", &request_id_,
                  "idempotency key: a retry returns the same job", "ID");
    flags->Int("max-attempts", &max_attempts_,
               "attempts in all (default: server's, 3)");
    flags->Bool(
        "watch", &watch_,
        "follow the job until it ends; exit non-zero unless it succeeds");
    flags->Output(&output_, {"json", "table"});
  }
  absl::Status Run(const CliContext& context,
                   const std::vector<std::string>& args) override {
    if (!args.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("submit takes no arguments, got \"", args[0], "\""));
    }
    if (kind_.empty()) return absl::InvalidArgumentError("--kind: is required");
    Job job_message;
    Job* job = &job_message;
    job->set_kind(kind_);
    job->set_queue(queue_);
    if (!args_.empty()) {
      if (!google::protobuf::util::JsonStringToMessage(args_,
                                                       job->mutable_args())
               .ok()) {
        return absl::InvalidArgumentError("--args: not a JSON object");
      }
    }
    for (const std::string& label : labels_) {
      if (absl::Status s = AddLabel(label, job->mutable_labels()); !s.ok())
        return s;
    }
    job->set_priority(priority_);
    if (schedule_in_ < absl::ZeroDuration()) {
      return absl::InvalidArgumentError("--schedule-in: must not be negative");
    }
    if (schedule_in_ > absl::ZeroDuration()) {
      const absl::Time at = absl::Now() + schedule_in_;
      job->mutable_schedule_time()->set_seconds(absl::ToUnixSeconds(at));
    }
    if (max_attempts_ < 0)
      return absl::InvalidArgumentError("--max-attempts: must be >= 0");
    job->set_max_attempts(max_attempts_);

    absl::StatusOr<jobwire::v1::SubmitJobResponse> submitted =
        context.client->SubmitJob(job_message, request_id_);
    if (!submitted.ok()) return submitted.status();
    const jobwire::v1::SubmitJobResponse& response = *submitted;
    if (!watch_) {
      PrintJob(context, response.job(), output_);
      return absl::OkStatus();
    }
    if (IsJson(output_)) {  // JSON lines: the job, then its events
      context.PrintJson(response.job(), /*every_field=*/false,
                        /*one_line=*/true);
    } else {
      *context.out << response.job().id() << "\n";
    }
    return Watch(context, response.job().id(), response.job().last_seq(),
                 IsJson(output_));
  }

 private:
  std::string kind_, queue_, args_, request_id_;
  std::vector<std::string> labels_;
  int priority_ = 0;
  int max_attempts_ = 0;
  absl::Duration schedule_in_ = absl::ZeroDuration();
  bool watch_ = false;
  std::string output_ = "json";
};

// `jobs[3].job.kind: ...` in a refused batch's message, for the user who
// wrote the file: `line 17: job.kind: ...`. `lines[i]` is the file line of
// the batch's job i.
std::string NameLines(absl::string_view message,
                      const std::vector<int>& lines) {
  std::string out;
  for (;;) {
    const size_t at = message.find("jobs[");
    if (at == absl::string_view::npos) break;
    const size_t close = message.find("].", at);
    int index = -1;
    if (close == absl::string_view::npos ||
        !absl::SimpleAtoi(message.substr(at + 5, close - at - 5), &index) ||
        index < 0 || static_cast<size_t>(index) >= lines.size()) {
      break;
    }
    absl::StrAppend(&out, message.substr(0, at), "line ", lines[index], ": ");
    message.remove_prefix(close + 2);
  }
  absl::StrAppend(&out, message);
  return out;
}

// `value` as a google.protobuf.Value, as protobuf's JSON parser makes it.
void ToProtoValue(const boost::json::value& value,
                  google::protobuf::Value* out) {
  switch (value.kind()) {
    case boost::json::kind::null:
      out->set_null_value(google::protobuf::NULL_VALUE);
      break;
    case boost::json::kind::bool_:
      out->set_bool_value(value.get_bool());
      break;
    case boost::json::kind::int64:
      out->set_number_value(static_cast<double>(value.get_int64()));
      break;
    case boost::json::kind::uint64:
      out->set_number_value(static_cast<double>(value.get_uint64()));
      break;
    case boost::json::kind::double_:
      out->set_number_value(value.get_double());
      break;
    case boost::json::kind::string:
      out->set_string_value(std::string(value.get_string()));
      break;
    case boost::json::kind::array: {
      google::protobuf::ListValue* list = out->mutable_list_value();
      for (const boost::json::value& v : value.get_array())
        ToProtoValue(v, list->add_values());
      break;
    }
    case boost::json::kind::object: {
      auto& fields = *out->mutable_struct_value()->mutable_fields();
      for (const auto& [key, v] : value.get_object())
        ToProtoValue(v, &fields[std::string(key)]);
      break;
    }
  }
}

// A SubmitJobRequest from a line of the common shape, without protobuf's
// JSON parser (~27 µs a line): {"job": {...}, "request_id": "..."} whose job
// has only "kind" and "queue" (strings), "priority" (an integer), "args" (an
// object) and "labels" (an object of strings). False for anything else, and
// for bad JSON: the caller then runs protobuf's parser, which also names the
// error.
bool ParseCommonLine(absl::string_view text,
                     jobwire::v1::SubmitJobRequest* out) {
  boost::json::error_code ec;
  // A line of the common shape parses within the buffer: no allocation.
  unsigned char buffer[4096];
  boost::json::monotonic_resource scratch(buffer, sizeof buffer);
  const boost::json::value root =
      boost::json::parse({text.data(), text.size()}, ec, &scratch);
  if (ec || !root.is_object()) return false;
  for (const auto& [key, value] : root.get_object()) {
    if (key == "request_id" && value.is_string()) {
      out->set_request_id(std::string(value.get_string()));
    } else if (key == "job" && value.is_object()) {
      jobwire::v1::Job* job = out->mutable_job();
      for (const auto& [field, v] : value.get_object()) {
        if ((field == "kind" || field == "queue") && v.is_string()) {
          std::string s(v.get_string());
          field == "kind" ? job->set_kind(std::move(s))
                          : job->set_queue(std::move(s));
        } else if (field == "priority" && v.is_int64() &&
                   v.get_int64() >= INT32_MIN && v.get_int64() <= INT32_MAX) {
          job->set_priority(static_cast<int32_t>(v.get_int64()));
        } else if (field == "args" && v.is_object()) {
          auto& fields = *job->mutable_args()->mutable_fields();
          for (const auto& [name, arg] : v.get_object())
            ToProtoValue(arg, &fields[std::string(name)]);
        } else if (field == "labels" && v.is_object()) {
          auto& labels = *job->mutable_labels();
          for (const auto& [name, label] : v.get_object()) {
            if (!label.is_string()) return false;
            labels[std::string(name)] = std::string(label.get_string());
          }
        } else {
          return false;
        }
      }
    } else {
      return false;
    }
  }
  return true;
}

// Up to `max` non-blank lines of `in` (a window of a JSON-lines file) and
// the number of each; `number` is the last line number read so far. False
// at the end of the input.
struct BatchLines {
  std::vector<std::string> texts;
  std::vector<int> lines;
};
bool ReadLines(std::istream& in, size_t max, int* number, BatchLines* out) {
  out->texts.clear();
  out->lines.clear();
  std::string line;
  while (out->texts.size() < max && std::getline(in, line)) {
    ++*number;
    if (absl::StripAsciiWhitespace(line).empty()) continue;
    out->texts.push_back(std::move(line));
    out->lines.push_back(*number);
  }
  return !out->texts.empty();
}

// The SubmitJobRequests of `in`'s lines, into `requests`; INVALID_ARGUMENT
// naming the first bad line of `path`. With `requests` null the lines are
// only checked: each parser thread parses into one message it reuses.
// Lines of the common shape take ParseCommonLine's fast path; protobuf's
// JSON parser takes ~27 µs a line, so the lines are parsed on every core.
absl::Status ParseLines(const std::string& path, const BatchLines& in,
                        std::vector<jobwire::v1::SubmitJobRequest>* requests) {
  const std::vector<std::string>& texts = in.texts;
  if (requests != nullptr) {
    requests->clear();
    requests->resize(texts.size());
  }
  // One thread per 1,000 lines, at most one per core (and 8).
  const size_t threads =
      std::max<size_t>(1, std::min<size_t>({std::thread::hardware_concurrency(),
                                            8, texts.size() / 1000 + 1}));
  const size_t chunk = (texts.size() + threads - 1) / threads;
  std::vector<absl::Status> errors(threads);  // the first of each chunk
  std::vector<std::thread> parsers;
  for (size_t t = 0; t < threads; ++t) {
    parsers.emplace_back([&, t] {
      jobwire::v1::SubmitJobRequest scratch;
      const size_t end = std::min(texts.size(), (t + 1) * chunk);
      for (size_t i = t * chunk; i < end; ++i) {
        jobwire::v1::SubmitJobRequest* out =
            requests == nullptr ? &scratch : &(*requests)[i];
        out->Clear();
        if (ParseCommonLine(texts[i], out)) continue;
        out->Clear();
        const auto parsed =
            google::protobuf::util::JsonStringToMessage(texts[i], out);
        if (!parsed.ok()) {
          errors[t] = absl::InvalidArgumentError(absl::StrCat(
              path, ": line ", in.lines[i],
              ": not a SubmitJobRequest as JSON (e.g. {\"job\": {\"kind\": "
              "\"k\"}, \"request_id\": \"r1\"}): ",
              std::string(parsed.message())));
          return;
        }
      }
    });
  }
  for (std::thread& parser : parsers) parser.join();
  for (const absl::Status& error : errors) {  // chunks in line order
    if (!error.ok()) return error;
  }
  return absl::OkStatus();
}

// Prints the Progress of a watch over many jobs for people: one bar redrawn
// in place on a terminal (`tty`), else a line each time the count of ended
// jobs changes (and the last one).
class ProgressPrinter {
 public:
  ProgressPrinter(const CliContext& context, bool tty)
      : context_(context), tty_(tty) {}

  void Print(const sdk::Progress& p, bool last) {
    if (!tty_ && p.ended() == printed_ended_ && !(last && printed_ended_ < 0))
      return;
    printed_ended_ = p.ended();
    if (tty_) {
      const int width = 30;
      const int filled =
          p.total == 0 ? width : static_cast<int>(width * p.ended() / p.total);
      *context_.out << "\r[" << std::string(filled, '#')
                    << std::string(width - filled, ' ') << "] " << p.ToString()
                    << "\x1b[K" << (last ? "\n" : "") << std::flush;
    } else {
      *context_.out << p.ToString() << std::endl;
    }
  }

 private:
  const CliContext& context_;
  const bool tty_;
  int64_t printed_ended_ = -1;
};

// Follows `progress` (or, with `filter` and no `progress`, every job the
// filter matches: sdk::WatchProgress) until all have ended, printing as
// ProgressPrinter does, or with `json` each event of a followed job after
// what it started from (JSON lines). Exits 0 when all succeeded.
absl::Status FollowMany(const CliContext& context, const std::string& filter,
                        bool json, int64_t after_event_id,
                        sdk::JobsProgress* progress) {
  const bool tty =
      !json && context.out == &std::cout && ::isatty(STDOUT_FILENO) == 1;
  ProgressPrinter printer(context, tty);
  sdk::Progress last;
  auto shown = [&](const sdk::Progress& p) {
    last = p;
    if (!json) printer.Print(p, /*last=*/false);
    return true;
  };
  sdk::WatchProgressOptions options;
  options.give_up_after = kWatchGiveUpAfter;
  if (json) {
    options.on_event = [&](const jobwire::v1::JobEvent& e) {
      context.PrintJson(e, /*every_field=*/false, /*one_line=*/true);
      context.out->flush();
    };
  }
  absl::Status watched =
      progress == nullptr
          ? sdk::WatchProgress(context.client, filter, shown, options)
          : sdk::FollowProgress(context.client, filter, after_event_id,
                                progress, shown, options);
  if (!watched.ok()) {
    if (progress == nullptr &&
        watched.code() == absl::StatusCode::kInvalidArgument) {
      return absl::InvalidArgumentError(
          absl::StrCat("--filter: ", watched.message()));
    }
    return watched;
  }
  if (!json) printer.Print(last, /*last=*/true);
  const int64_t bad = last.ended() - last.succeeded;
  if (bad > 0) {
    return absl::AbortedError(
        absl::StrCat(bad, " of ", last.ended(), " jobs did not succeed"));
  }
  return absl::OkStatus();
}

// Ids per ListJobs filter when submit-batch --watch lists jobs that existed
// before it (`id = "..." OR ...`: ~3,400 of the filter's 4,096 characters).
constexpr size_t kIdsPerList = 100;

class SubmitBatchCommand final : public Command {
 public:
  std::string name() const override { return "submit-batch"; }
  std::string args_usage() const override { return "FILE"; }
  std::string summary() const override {
    return "submit many jobs from JSON lines (FILE, or - for stdin), "
           "1,000 per commit; prints their ids, or with --watch follows them "
           "to their end (a bar on a terminal)";
  }
  void AddFlags(FlagSet* flags) override {
    flags->Bool("watch", &watch_,
                "then follow the submitted jobs until all have ended, as "
                "watch --filter does (their ids are not printed); exit 0 "
                "only if all succeeded");
    flags->Output(&output_, {"table", "json"});
  }
  absl::Status Run(const CliContext& context,
                   const std::vector<std::string>& args) override {
    if (args.size() != 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("submit-batch takes one FILE (- for stdin), got ",
                       args.size(), " arguments"));
    }
    const std::string& path = args[0];
#ifdef __GLIBC__
    // The lines are parsed on short-lived threads while others send: with
    // glibc's default of 8 malloc arenas per core, each window's memory
    // lands in other arenas and RSS creeps up (200 MiB for 1,000,000 lines;
    // 122 MiB with 2 arenas, no slower).
    mallopt(M_ARENA_MAX, 2);
#endif
    int64_t submitted = 0;
    int64_t created = 0;
    BatchLines window;
    std::vector<jobwire::v1::SubmitJobRequest> requests;
    int number = 0;
    // Every line is parsed before anything is sent: a typo submits nothing.
    if (path == "-") {
      // Standard input cannot be read twice: every line is held.
      ReadLines(std::cin, SIZE_MAX, &number, &window);
      if (absl::Status s = ParseLines(path, window, &requests); !s.ok())
        return s;
      if (absl::Status s = StartWatch(context); !s.ok()) return s;
      if (absl::Status s = SendWindow(context, std::move(requests),
                                      window.lines, &submitted, &created);
          !s.ok()) {
        return s;
      }
    } else {
      // A file is read twice, kWindowLines lines at a time (checked, then
      // parsed again and sent), so the memory it takes is bounded.
      std::ifstream check(path);
      if (!check) {
        return absl::InvalidArgumentError(
            absl::StrCat(path, ": cannot read it"));
      }
      while (ReadLines(check, kWindowLines, &number, &window)) {
        if (absl::Status s = ParseLines(path, window, /*requests=*/nullptr);
            !s.ok()) {
          return s;
        }
      }
      if (absl::Status s = StartWatch(context); !s.ok()) return s;
      // The next window is read and parsed while this one is sent.
      std::ifstream in(path);
      number = 0;
      BatchLines next_window;
      std::vector<jobwire::v1::SubmitJobRequest> next_requests;
      bool more = false;
      absl::Status parsed;
      auto read_next = [&] {
        more = ReadLines(in, kWindowLines, &number, &next_window);
        if (more) parsed = ParseLines(path, next_window, &next_requests);
      };
      read_next();
      while (more) {
        if (!parsed.ok()) {
          // The file changed since it was checked.
          return absl::Status(
              parsed.code(), absl::StrCat(parsed.message(), "; the ", submitted,
                                          " jobs before it were submitted"));
        }
        std::swap(window, next_window);
        std::swap(requests, next_requests);
        std::thread reader(read_next);
        absl::Status sent = SendWindow(context, std::move(requests),
                                       window.lines, &submitted, &created);
        reader.join();
        if (!sent.ok()) return sent;
      }
    }
    *context.err << "jobwire submit-batch: " << submitted
                 << (submitted == 1 ? " job, " : " jobs, ") << created
                 << " new\n";
    if (!watch_) return absl::OkStatus();
    if (absl::Status s = ListExisting(context); !s.ok()) return s;
    return FollowMany(context, /*filter=*/"", IsJson(output_), cursor_,
                      progress_.get());
  }

 private:
  // With --watch, before the first submit: the cursor the watch follows
  // from (every event of a job submitted after it comes after it), and the
  // set of jobs to follow, filled from the SubmitJobs replies.
  absl::Status StartWatch(const CliContext& context) {
    if (!watch_) return absl::OkStatus();
    absl::StatusOr<jobwire::v1::ServerInfo> info =
        context.client->GetServerInfo();
    if (!info.ok()) return info.status();
    cursor_ = info->last_event_id();
    progress_ =
        std::make_unique<sdk::JobsProgress>(/*fixed=*/true, absl::Now());
    return absl::OkStatus();
  }

  // With --watch: the jobs of batches where some matched an earlier
  // request_id existed before the cursor, with events the watch will not
  // replay; their states as of now, listed by id.
  absl::Status ListExisting(const CliContext& context) {
    for (size_t at = 0; at < maybe_existed_.size(); at += kIdsPerList) {
      jobwire::v1::ListJobsRequest request;
      std::string filter;
      const size_t end = std::min(maybe_existed_.size(), at + kIdsPerList);
      for (size_t i = at; i < end; ++i) {
        absl::StrAppend(&filter, filter.empty() ? "" : " OR ", "id = \"",
                        maybe_existed_[i], "\"");
      }
      request.set_filter(filter);
      absl::StatusOr<jobwire::v1::ListJobsResponse> listed =
          context.client->ListJobs(std::move(request), /*limit=*/0);
      if (!listed.ok()) return listed.status();
      for (const Job& job : listed->jobs())
        progress_->Observe(job.id(), job.state(), job.last_seq());
    }
    maybe_existed_.clear();
    return absl::OkStatus();
  }

  // Sends `requests` (lines[i] is the file line of requests[i]) in batches
  // of kBatch jobs and at most 4 MiB on kStreams streams, kPerStream in
  // flight on each
  // (sdk::Client::SubmitBatches), and prints
  // their ids in line order (or, with --watch, follows them); adds the jobs
  // submitted before a failed batch to `submitted`, the new ones to
  // `created`. The failed batch's error names its line, with how many jobs
  // went in before it (and of later lines, already in flight).
  absl::Status SendWindow(const CliContext& context,
                          std::vector<jobwire::v1::SubmitJobRequest> requests,
                          const std::vector<int>& lines, int64_t* submitted,
                          int64_t* created) {
    const size_t total = requests.size();
    size_t first_failed = SIZE_MAX;  // the first batch that failed
    size_t failed_first = 0;         // its requests [first, first + count)
    size_t failed_count = 0;
    int64_t after_failed = 0;  // jobs submitted in batches after it
    absl::Status failure;      // its status
    absl::Status ended = context.client->SubmitBatches(
        std::move(requests), kBatch, kStreams,
        [&](sdk::Client::BatchOutcome batch) {
          if (!batch.status.ok()) {
            if (first_failed == SIZE_MAX) {
              first_failed = static_cast<size_t>(batch.index);
              failed_first = batch.first;
              failed_count = batch.count;
              failure = batch.status;
            }
            return;
          }
          const jobwire::v1::SubmitJobsResponse& response = batch.response;
          if (watch_) {  // followed, not printed
            for (const std::string& id : response.ids()) progress_->Add(id);
            if (response.created() < response.ids_size()) {
              maybe_existed_.insert(maybe_existed_.end(),
                                    response.ids().begin(),
                                    response.ids().end());
            }
          } else if (IsJson(output_)) {  // a SubmitJobsResponse a line
            context.PrintJson(response, /*every_field=*/true,
                              /*one_line=*/true);
          } else {
            for (const std::string& id : response.ids())
              *context.out << id << "\n";
          }
          context.out->flush();
          (first_failed == SIZE_MAX ? *submitted : after_failed) +=
              response.ids_size();
          *created += response.created();
        },
        kPerStream);
    if (first_failed != SIZE_MAX) {
      const size_t start = failed_first;
      const size_t end = std::min(total, start + failed_count);
      const std::vector<int> batch_lines(lines.begin() + start,
                                         lines.begin() + end);
      std::string before =
          *submitted == 0
              ? "; nothing before it was submitted"
              : absl::StrCat("; the ", *submitted, " jobs before line ",
                             lines[start], " were submitted");
      if (*submitted == 0 && after_failed == 0)
        before = "; nothing was submitted";
      return absl::Status(
          failure.code(),
          absl::StrCat(NameLines(failure.message(), batch_lines), before,
                       after_failed == 0
                           ? ""
                           : absl::StrCat(", and ", after_failed,
                                          " jobs of later lines")));
    }
    return ended;
  }

  bool watch_ = false;
  // With --watch: the cursor taken before the first submit, the jobs
  // submitted, and those of batches where some already existed.
  int64_t cursor_ = 0;
  std::unique_ptr<sdk::JobsProgress> progress_;
  std::vector<std::string> maybe_existed_;

  // Lines read, checked or sent at a time (a window of a file).
  static constexpr size_t kWindowLines = 32 * 1000;
  // Jobs per SubmitJobs batch: the server's most.
  static constexpr int kBatch = 1000;
  // Streams, each with up to kPerStream batches sent ahead of their answers
  // (the next is on the wire while the server commits one).
  static constexpr int kStreams = 4;
  static constexpr int kPerStream = 2;
  std::string output_ = "table";
};

// Prints the job a JobService call answered with in `format` (PrintJob).
absl::Status PrintJobFrom(const CliContext& context,
                          const absl::StatusOr<Job>& job,
                          const std::string& format) {
  if (!job.ok()) return job.status();
  PrintJob(context, *job, format);
  return absl::OkStatus();
}

// A command that prints one job: JSON by default, or `-o table`.
class OneJobCommand : public Command {
 public:
  void AddFlags(FlagSet* flags) override {
    flags->Output(&output_, {"json", "table"});
  }

 protected:
  std::string output_ = "json";
};

class GetCommand final : public OneJobCommand {
 public:
  std::string name() const override { return "get"; }
  std::string args_usage() const override { return "ID"; }
  std::string summary() const override { return "print one job as JSON"; }
  absl::Status Run(const CliContext& context,
                   const std::vector<std::string>& args) override {
    std::string id;
    if (absl::Status s = OneId(name(), args, &id); !s.ok()) return s;
    return PrintJobFrom(context, context.client->GetJob(id), output_);
  }
};

class ListCommand final : public Command {
 public:
  std::string name() const override { return "list"; }
  std::string summary() const override {
    return "list jobs: [--filter EXPR] [--order-by ORDER] [--limit N] "
           "[--page-token T] [-o table|json]";
  }
  void AddFlags(FlagSet* flags) override {
    flags->String("filter", &filter_,
                  "AIP-160 filter, e.g. 'state = QUEUED AND queue = q'",
                  "EXPR");
    flags->String("order-by", &order_by_,
                  "create_time (default, oldest first), \"create_time desc\" "
                  "(newest first), \"priority desc\" or \"update_time desc\"",
                  "ORDER");
    flags->Int("limit", &limit_, "most jobs to print (default 100)");
    flags->String("page-token", &page_token_,
                  "continue where a --limit stopped (the token it printed); "
                  "keep the other flags the same",
                  "TOKEN");
    flags->Output(&output_, {"table", "json"});
  }
  absl::Status Run(const CliContext& context,
                   const std::vector<std::string>& args) override {
    if (absl::Status s = NoArguments(name(), args); !s.ok()) return s;
    if (limit_ < 1)
      return absl::InvalidArgumentError("--limit: must be at least 1");
    jobwire::v1::ListJobsRequest request;
    request.set_filter(filter_);
    request.set_order_by(order_by_);
    request.set_page_token(page_token_);
    // Its next_page_token is empty once the last page is in: no more match.
    absl::StatusOr<jobwire::v1::ListJobsResponse> all =
        context.client->ListJobs(std::move(request), limit_);
    if (!all.ok()) {
      return NameFlags(all.status(), {{"filter: ", "--filter: "},
                                      {"order_by: ", "--order-by: "},
                                      {"page_token: ", "--page-token: "}});
    }
    if (IsJson(output_)) {
      context.PrintJson(*all, /*every_field=*/true);
      return absl::OkStatus();
    }
    PrintJobTable(context, all->jobs());
    if (!all->next_page_token().empty()) {
      *context.out << "(more jobs match; --limit " << limit_
                   << " stopped the list; --page-token "
                   << all->next_page_token() << " continues it)\n";
    }
    return absl::OkStatus();
  }

 private:
  std::string filter_;
  std::string order_by_;
  std::string page_token_;
  int limit_ = 100;
  std::string output_ = "table";
};

class WatchCommand final : public Command {
 public:
  std::string name() const override { return "watch"; }
  std::string args_usage() const override { return "ID"; }
  std::string summary() const override {
    return "follow a job live, resuming after disconnects; exit 0 when it "
           "succeeds; or with --filter F, every job F matches (a bar on a "
           "terminal)";
  }
  void AddFlags(FlagSet* flags) override {
    flags->Int("after-seq", &after_seq_,
               "replay events after this seq (default: snapshot)");
    // A list, to tell --filter '' (every job) from no --filter.
    flags->StringList("filter", &filters_,
                      "instead of one ID: every job this ListJobs filter "
                      "matches, until all have ended",
                      "EXPR");
    flags->Output(&output_, {"table", "json"});
  }
  absl::Status Run(const CliContext& context,
                   const std::vector<std::string>& args) override {
    if (!filters_.empty()) {
      if (!args.empty() || after_seq_ != -1) {
        return absl::InvalidArgumentError(
            "--filter: follows many jobs; give no ID and no --after-seq");
      }
      if (filters_.size() > 1) {
        return absl::InvalidArgumentError(
            "--filter: give it once (combine expressions with AND)");
      }
      return FollowMany(context, filters_[0], IsJson(output_),
                        /*after_event_id=*/0, /*progress=*/nullptr);
    }
    std::string id;
    if (absl::Status s = OneId(name(), args, &id); !s.ok()) return s;
    if (after_seq_ < -1)
      return absl::InvalidArgumentError("--after-seq: must be >= 0");
    std::optional<int64_t> after;
    if (after_seq_ >= 0) after = after_seq_;
    return Watch(context, id, after, IsJson(output_));
  }

 private:
  int after_seq_ = -1;
  std::vector<std::string> filters_;
  std::string output_ = "table";
};

class CancelCommand final : public OneJobCommand {
 public:
  std::string name() const override { return "cancel"; }
  std::string args_usage() const override { return "ID"; }
  std::string summary() const override {
    return "cancel a job; prints it as JSON";
  }
  void AddFlags(FlagSet* flags) override {
    OneJobCommand::AddFlags(flags);
    flags->String("reason", &reason_, "why; recorded in the event", "TEXT");
  }
  absl::Status Run(const CliContext& context,
                   const std::vector<std::string>& args) override {
    std::string id;
    if (absl::Status s = OneId(name(), args, &id); !s.ok()) return s;
    return PrintJobFrom(context, context.client->CancelJob(id, reason_),
                        output_);
  }

 private:
  std::string reason_;
};

class RetryCommand final : public OneJobCommand {
 public:
  std::string name() const override { return "retry"; }
  std::string args_usage() const override { return "ID"; }
  std::string summary() const override {
    return "run a FAILED or CANCELLED job again; prints it as JSON";
  }
  void AddFlags(FlagSet* flags) override {
    OneJobCommand::AddFlags(flags);
    flags->Int("attempts", &attempts_,
               "attempts added to the job's budget (default 1)");
  }
  absl::Status Run(const CliContext& context,
                   const std::vector<std::string>& args) override {
    std::string id;
    if (absl::Status s = OneId(name(), args, &id); !s.ok()) return s;
    if (attempts_ < 1)
      return absl::InvalidArgumentError("--attempts: must be at least 1");
    return PrintJobFrom(context, context.client->RetryJob(id, attempts_),
                        output_);
  }

 private:
  int attempts_ = 1;
};

class ExplainCommand final : public Command {
 public:
  std::string name() const override { return "explain"; }
  std::string args_usage() const override { return "ID"; }
  std::string summary() const override {
    return "say why a job is not running: every gate that holds it";
  }
  void AddFlags(FlagSet* flags) override {
    flags->Output(&output_, {"table", "json", "text"});
  }
  absl::Status Run(const CliContext& context,
                   const std::vector<std::string>& args) override {
    std::string id;
    if (absl::Status s = OneId(name(), args, &id); !s.ok()) return s;
    absl::StatusOr<jobwire::v1::ExplainJobResponse> explained =
        context.client->ExplainJob(id);
    if (!explained.ok()) return explained.status();
    const jobwire::v1::ExplainJobResponse& response = *explained;
    if (IsJson(output_)) {
      context.PrintJson(response);
      return absl::OkStatus();
    }
    *context.out << response.job().id() << " "
                 << StateName(response.job().state()) << "\n";
    if (response.gates().empty()) {
      *context.out << "  nothing holds it\n";
    }
    for (const auto& gate : response.gates()) {
      *context.out << "  " << gate.type() << ": " << gate.description() << "\n";
    }
    return absl::OkStatus();
  }

 private:
  std::string output_ = "table";
};

}  // namespace

void AddJobCommands(CommandList* commands) {
  commands->push_back(std::make_unique<SubmitCommand>());
  commands->push_back(std::make_unique<SubmitBatchCommand>());
  commands->push_back(std::make_unique<GetCommand>());
  commands->push_back(std::make_unique<ListCommand>());
  commands->push_back(std::make_unique<WatchCommand>());
  commands->push_back(std::make_unique<CancelCommand>());
  commands->push_back(std::make_unique<RetryCommand>());
  commands->push_back(std::make_unique<ExplainCommand>());
}

}  // namespace jobwire::cli
