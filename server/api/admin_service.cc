#include "server/api/admin_service.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <functional>
#include <map>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "server/api/convert.h"
#include "server/common/errors.h"
#include "server/common/status_macros.h"
#include "server/core/validation.h"
#include "server/transport/grpc_status.h"
#include "server/webhooks/http_webhook_sender.h"

namespace jobwire {
namespace {

using jobwire::v1::BackupChunk;

// Size of `path` in bytes, 0 when it does not exist.
int64_t FileSize(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return 0;
  return static_cast<int64_t>(st.st_size);
}

constexpr int32_t kMaxConcurrencyLimit = 1'000'000;
constexpr int32_t kMaxQueueWeight = 1000;
constexpr char kQueueNameRule[] = "must match [a-z0-9][a-z0-9._-]{0,127}";

absl::Status CheckQueueName(absl::string_view field, const std::string& name) {
  if (name.empty()) return InvalidArgumentError(field, "is required");
  if (!IsValidQueueName(name))
    return InvalidArgumentError(field, kQueueNameRule);
  return absl::OkStatus();
}

void DispatchToProto(const Dispatcher::DispatchPause& pause,
                     jobwire::v1::DispatchState* out) {
  out->set_paused(pause.paused);
  out->set_reason(pause.reason);
}

// Bytes of one BackupChunk.
constexpr size_t kBackupChunkBytes = 1 << 20;

// A backup in progress is `DB.backup-XXXXXX` (mkstemp's six characters).
constexpr char kBackupInfix[] = ".backup-";
constexpr size_t kBackupSuffixChars = 6;

// Backup: the store writes a snapshot to a temporary file beside the
// database (on the Executor), then the file goes out in chunks, one write in
// flight, each chunk read on the Executor after the previous one was sent.
// The file is removed when the call ends, however it ends. Reference
// counted: gRPC holds one reference until OnDone, an Executor task another.
class BackupWriter final : public grpc::ServerWriteReactor<BackupChunk> {
 public:
  BackupWriter(JobStore* store, Executor* executor, std::string db_path)
      : store_(store), executor_(executor), db_path_(std::move(db_path)) {
    RunOnExecutor([this] { Snapshot(); });
  }

  void OnWriteDone(bool ok) override {
    if (!ok)
      return Finish(grpc::Status(grpc::StatusCode::CANCELLED,
                                 "the client stopped reading"));
    RunOnExecutor([this] { SendNext(); });
  }

  void OnCancel() override { cancelled_ = true; }

  void OnDone() override { Unref(); }

 private:
  ~BackupWriter() override {
    if (fd_ >= 0) ::close(fd_);
    if (!temp_path_.empty()) ::unlink(temp_path_.c_str());
  }

  void RunOnExecutor(std::function<void()> task) {
    refs_.fetch_add(1);
    if (!executor_->Schedule([this, task = std::move(task)] {
          task();
          Unref();
        })) {
      Finish(ToGrpcStatus(absl::UnavailableError("server is shutting down")));
      Unref();
    }
  }

  // Executor.
  void Snapshot() {
    // Beside the database: the same disk, and a crash leaves it where the
    // next start removes it (RemoveStaleBackupsBlocking).
    std::string temp_path = absl::StrCat(db_path_, kBackupInfix, "XXXXXX");
    const int temp_fd = ::mkstemp(temp_path.data());
    if (temp_fd < 0) {
      return Finish(ToGrpcStatus(absl::InternalError(
          absl::StrCat("backup: cannot create a file beside ", db_path_))));
    }
    ::close(temp_fd);
    temp_path_ = std::move(temp_path);
    absl::StatusOr<int64_t> size = store_->BackupBlocking(temp_path_);
    if (!size.ok()) return Finish(ToGrpcStatus(size.status()));
    fd_ = ::open(temp_path_.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ < 0) {
      return Finish(ToGrpcStatus(absl::InternalError(
          absl::StrCat("backup: cannot read ", temp_path_))));
    }
    total_ = FileSize(temp_path_);
    SendNext();
  }

  // Executor: reads and sends the next chunk, or finishes.
  void SendNext() {
    if (cancelled_.load()) {
      return Finish(grpc::Status(grpc::StatusCode::CANCELLED, "cancelled"));
    }
    if (offset_ >= total_ && offset_ > 0) return Finish(grpc::Status::OK);
    std::string* data = chunk_.mutable_data();
    data->resize(std::min<int64_t>(kBackupChunkBytes, total_ - offset_));
    const ssize_t n = ::pread(fd_, data->data(), data->size(), offset_);
    if (n < 0 || static_cast<size_t>(n) != data->size()) {
      return Finish(ToGrpcStatus(absl::InternalError(
          absl::StrCat("backup: short read of ", temp_path_))));
    }
    chunk_.set_offset(offset_);
    chunk_.set_total_bytes(total_);
    offset_ += n;
    if (n == 0) offset_ = 1;  // an empty file: one empty chunk, then done
    StartWrite(&chunk_);
  }

  void Unref() {
    if (refs_.fetch_sub(1) == 1) delete this;
  }

  JobStore* const store_;
  Executor* const executor_;
  const std::string db_path_;
  std::atomic<int> refs_{1};
  std::atomic<bool> cancelled_{false};
  // Touched by one step at a time (Executor tasks follow each other).
  std::string temp_path_;  // empty until Snapshot creates it
  int fd_ = -1;
  int64_t total_ = 0;
  int64_t offset_ = 0;
  BackupChunk chunk_;
};

// A server stream that ends at once with a fixed status.
class FinishedWriter final : public grpc::ServerWriteReactor<BackupChunk> {
 public:
  explicit FinishedWriter(grpc::Status status) { Finish(std::move(status)); }
  void OnDone() override { delete this; }
};

}  // namespace

int RemoveStaleBackupsBlocking(const std::string& db_path) {
  const size_t slash = db_path.rfind('/');
  const std::string dir =
      slash == std::string::npos ? "." : db_path.substr(0, slash + 1);
  const std::string prefix = absl::StrCat(
      slash == std::string::npos ? db_path : db_path.substr(slash + 1),
      kBackupInfix);
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return 0;
  int removed = 0;
  while (const dirent* entry = ::readdir(d)) {
    const absl::string_view name = entry->d_name;
    if (name.size() != prefix.size() + kBackupSuffixChars ||
        !absl::StartsWith(name, prefix)) {
      continue;
    }
    if (::unlinkat(::dirfd(d), entry->d_name, 0) == 0) ++removed;
  }
  ::closedir(d);
  return removed;
}

AdminServiceImpl::AdminServiceImpl(Options options, Clock* clock,
                                   Executor* executor)
    : options_(std::move(options)),
      clock_(clock),
      executor_(executor),
      start_time_(clock->Now()),
      start_monotonic_(clock->Monotonic()) {}

void AdminServiceImpl::SetListeners(std::vector<std::string> listeners) {
  absl::MutexLock lock(&mu_);
  listeners_ = std::move(listeners);
}

absl::Status AdminServiceImpl::GetServerInfoBlocking(
    jobwire::v1::ServerInfo* info) const {
  info->set_version(options_.version);
  absl::Duration uptime = clock_->Monotonic() - start_monotonic_;
  info->mutable_uptime()->set_seconds(absl::ToInt64Seconds(uptime));
  info->mutable_uptime()->set_nanos(static_cast<int32_t>(
      absl::ToInt64Nanoseconds(uptime % absl::Seconds(1))));
  info->mutable_start_time()->set_seconds(absl::ToUnixSeconds(start_time_));
  info->mutable_start_time()->set_nanos(
      static_cast<int32_t>(absl::ToInt64Nanoseconds(
          (start_time_ - absl::UnixEpoch()) % absl::Seconds(1))));
  {
    absl::MutexLock lock(&mu_);
    for (const std::string& l : listeners_) info->add_listeners(l);
  }
  info->set_storage_path(options_.storage_path);
  // SQLite in WAL mode keeps recent commits in the -wal file.
  info->set_storage_bytes(FileSize(options_.storage_path) +
                          FileSize(options_.storage_path + "-wal"));
  if (options_.dispatcher != nullptr) {
    DispatchToProto(options_.dispatcher->dispatch_pause(),
                    info->mutable_dispatch());
  }
  info->set_draining(options_.draining ? options_.draining() : false);
  info->set_workers(options_.workers ? options_.workers() : 0);
  info->set_watchers(options_.watchers ? options_.watchers() : 0);
  if (options_.store != nullptr) {
    const WriteStats w = options_.store->write_stats();
    jobwire::v1::StorageStats* storage = info->mutable_storage();
    storage->set_commits(w.commits);
    storage->set_requests(w.requests);
    storage->set_write_requests(w.write_requests);
    DurationToProto(w.queue_wait, storage->mutable_queue_wait());
    DurationToProto(w.apply, storage->mutable_apply());
    DurationToProto(w.commit, storage->mutable_commit());
    DurationToProto(w.complete, storage->mutable_complete());
    absl::StatusOr<std::vector<QueueStateCount>> counts =
        options_.store->CountJobsByQueueAndStateBlocking();
    if (!counts.ok()) return counts.status();
    auto* by_state = info->mutable_job_counts();
    for (const QueueStateCount& c : *counts) {
      (*by_state)[std::string(JobStateName(c.state))] += c.count;
    }
  }
  return absl::OkStatus();
}

grpc::ServerUnaryReactor* AdminServiceImpl::RunBlocking(
    grpc::CallbackServerContext* context, std::function<absl::Status()> body) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  bool scheduled = executor_->Schedule([reactor, body = std::move(body)] {
    reactor->Finish(ToGrpcStatus(body()));
  });
  if (!scheduled) {
    reactor->Finish(
        ToGrpcStatus(absl::UnavailableError("jobwired is shutting down")));
  }
  return reactor;
}

grpc::ServerUnaryReactor* AdminServiceImpl::GetServerInfo(
    grpc::CallbackServerContext* context,
    const jobwire::v1::GetServerInfoRequest* /*request*/,
    jobwire::v1::ServerInfo* response) {
  return RunBlocking(
      context, [this, response] { return GetServerInfoBlocking(response); });
}

absl::Status AdminServiceImpl::NeedDispatcher() const {
  if (options_.dispatcher != nullptr) return absl::OkStatus();
  return absl::UnimplementedError("this server has no dispatcher");
}

absl::Status AdminServiceImpl::PauseDispatchBlocking(
    const jobwire::v1::PauseDispatchRequest& request,
    jobwire::v1::DispatchState* response) {
  JW_RETURN_IF_ERROR(NeedDispatcher());
  if (request.reason().size() > kMaxReasonBytes) {
    return InvalidArgumentError(
        "reason", absl::StrCat("is longer than ", kMaxReasonBytes, " bytes"));
  }
  JW_RETURN_IF_ERROR(
      options_.dispatcher->SetDispatchPausedBlocking(true, request.reason()));
  DispatchToProto(options_.dispatcher->dispatch_pause(), response);
  return absl::OkStatus();
}

absl::Status AdminServiceImpl::ResumeDispatchBlocking(
    jobwire::v1::DispatchState* response) {
  JW_RETURN_IF_ERROR(NeedDispatcher());
  JW_RETURN_IF_ERROR(options_.dispatcher->SetDispatchPausedBlocking(false, ""));
  DispatchToProto(options_.dispatcher->dispatch_pause(), response);
  return absl::OkStatus();
}

absl::Status AdminServiceImpl::PauseQueueBlocking(
    const jobwire::v1::PauseQueueRequest& request,
    jobwire::v1::Queue* response) {
  JW_RETURN_IF_ERROR(NeedDispatcher());
  JW_RETURN_IF_ERROR(CheckQueueName("name", request.name()));
  absl::Time resume_time = absl::InfinitePast();
  if (request.has_resume_time()) {
    if (!IsValidTimestamp(request.resume_time())) {
      return InvalidArgumentError("resume_time", "is not a valid timestamp");
    }
    resume_time = TimeFromProto(request.resume_time());
    if (resume_time <= clock_->Now()) {
      return InvalidArgumentError("resume_time", "must be in the future");
    }
  }
  JW_RETURN_IF_ERROR(options_.dispatcher
                         ->UpdateQueueBlocking(request.name(),
                                               [resume_time](QueueRow* row) {
                                                 row->paused = true;
                                                 row->resume_time = resume_time;
                                               })
                         .status());
  return DescribeQueueBlocking(request.name(), response);
}

absl::Status AdminServiceImpl::ResumeQueueBlocking(
    const jobwire::v1::ResumeQueueRequest& request,
    jobwire::v1::Queue* response) {
  JW_RETURN_IF_ERROR(NeedDispatcher());
  JW_RETURN_IF_ERROR(CheckQueueName("name", request.name()));
  JW_ASSIGN_OR_RETURN(std::vector<jobwire::v1::Queue> known,
                      QueuesBlocking(request.name()));
  if (known.empty()) {
    return absl::NotFoundError(
        absl::StrCat("queue ", request.name(), " was never seen"));
  }
  JW_RETURN_IF_ERROR(
      options_.dispatcher
          ->UpdateQueueBlocking(request.name(),
                                [](QueueRow* row) { row->paused = false; })
          .status());
  return DescribeQueueBlocking(request.name(), response);
}

absl::Status AdminServiceImpl::UpdateQueueBlocking(
    const jobwire::v1::UpdateQueueRequest& request,
    jobwire::v1::Queue* response) {
  JW_RETURN_IF_ERROR(NeedDispatcher());
  const jobwire::v1::Queue& queue = request.queue();
  std::vector<FieldViolation> bad;
  if (!request.has_queue()) {
    bad.push_back({"queue", "is required"});
  } else if (!IsValidQueueName(queue.name())) {
    bad.push_back({"queue.name", kQueueNameRule});
  }
  bool set_limit = false;
  bool set_weight = false;
  if (request.update_mask().paths_size() == 0) {
    bad.push_back(
        {"update_mask", "is required: name concurrency_limit and/or weight"});
  }
  for (int i = 0; i < request.update_mask().paths_size(); ++i) {
    const std::string& path = request.update_mask().paths(i);
    if (path == "concurrency_limit") {
      set_limit = true;
    } else if (path == "weight") {
      set_weight = true;
    } else {
      bad.push_back({absl::StrCat("update_mask.paths[", i, "]"),
                     absl::StrCat("\"", path,
                                  "\" is not updatable; use concurrency_limit "
                                  "or weight")});
    }
  }
  if (set_limit && (queue.concurrency_limit() < 0 ||
                    queue.concurrency_limit() > kMaxConcurrencyLimit)) {
    bad.push_back({"queue.concurrency_limit",
                   absl::StrCat("must be between 0 (no limit) and ",
                                kMaxConcurrencyLimit)});
  }
  if (set_weight && (queue.weight() < 1 || queue.weight() > kMaxQueueWeight)) {
    bad.push_back({"queue.weight",
                   absl::StrCat("must be between 1 and ", kMaxQueueWeight)});
  }
  if (!bad.empty()) return InvalidArgumentError(std::move(bad));
  JW_RETURN_IF_ERROR(
      options_.dispatcher
          ->UpdateQueueBlocking(queue.name(),
                                [&](QueueRow* row) {
                                  if (set_limit) {
                                    row->concurrency_limit =
                                        queue.concurrency_limit();
                                  }
                                  if (set_weight) row->weight = queue.weight();
                                })
          .status());
  return DescribeQueueBlocking(queue.name(), response);
}

absl::Status AdminServiceImpl::ListQueuesBlocking(
    jobwire::v1::ListQueuesResponse* response) {
  JW_RETURN_IF_ERROR(NeedDispatcher());
  JW_ASSIGN_OR_RETURN(std::vector<jobwire::v1::Queue> queues,
                      QueuesBlocking(""));
  for (jobwire::v1::Queue& q : queues) *response->add_queues() = std::move(q);
  return absl::OkStatus();
}

absl::StatusOr<std::vector<jobwire::v1::Queue>>
AdminServiceImpl::QueuesBlocking(const std::string& name) {
  std::map<std::string, std::map<std::string, int64_t>> counts;
  if (options_.store != nullptr) {
    JW_ASSIGN_OR_RETURN(std::vector<QueueStateCount> rows,
                        options_.store->CountJobsByQueueAndStateBlocking());
    for (const QueueStateCount& c : rows) {
      counts[c.queue][std::string(JobStateName(c.state))] += c.count;
    }
  }
  std::vector<std::string> with_jobs;
  with_jobs.reserve(counts.size());
  for (const auto& [queue, by_state] : counts) with_jobs.push_back(queue);
  std::vector<jobwire::v1::Queue> out;
  for (const Dispatcher::QueueView& v :
       options_.dispatcher->Queues(with_jobs)) {
    if (!name.empty() && v.settings.name != name) continue;
    jobwire::v1::Queue q;
    q.set_name(v.settings.name);
    q.set_paused(v.settings.paused);
    if (v.settings.paused && v.settings.resume_time != absl::InfinitePast()) {
      TimeToProto(v.settings.resume_time, q.mutable_resume_time());
    }
    q.set_concurrency_limit(v.settings.concurrency_limit);
    q.set_weight(v.settings.weight);
    q.set_workers(v.workers);
    q.set_free_slots(v.free_slots);
    q.set_finished_last_minute(v.finished_last_minute);
    if (auto c = counts.find(v.settings.name); c != counts.end()) {
      for (const auto& [state, n] : c->second) (*q.mutable_counts())[state] = n;
    }
    out.push_back(std::move(q));
  }
  return out;
}

absl::Status AdminServiceImpl::DescribeQueueBlocking(
    const std::string& name, jobwire::v1::Queue* response) {
  JW_ASSIGN_OR_RETURN(std::vector<jobwire::v1::Queue> queues,
                      QueuesBlocking(name));
  if (queues.empty()) {
    return absl::InternalError(absl::StrCat("queue ", name, " vanished"));
  }
  *response = std::move(queues[0]);
  return absl::OkStatus();
}

grpc::ServerUnaryReactor* AdminServiceImpl::PauseDispatch(
    grpc::CallbackServerContext* context,
    const jobwire::v1::PauseDispatchRequest* request,
    jobwire::v1::DispatchState* response) {
  return RunBlocking(context, [this, request, response] {
    return PauseDispatchBlocking(*request, response);
  });
}

grpc::ServerUnaryReactor* AdminServiceImpl::ResumeDispatch(
    grpc::CallbackServerContext* context,
    const jobwire::v1::ResumeDispatchRequest* /*request*/,
    jobwire::v1::DispatchState* response) {
  return RunBlocking(
      context, [this, response] { return ResumeDispatchBlocking(response); });
}

grpc::ServerUnaryReactor* AdminServiceImpl::PauseQueue(
    grpc::CallbackServerContext* context,
    const jobwire::v1::PauseQueueRequest* request,
    jobwire::v1::Queue* response) {
  return RunBlocking(context, [this, request, response] {
    return PauseQueueBlocking(*request, response);
  });
}

grpc::ServerUnaryReactor* AdminServiceImpl::ResumeQueue(
    grpc::CallbackServerContext* context,
    const jobwire::v1::ResumeQueueRequest* request,
    jobwire::v1::Queue* response) {
  return RunBlocking(context, [this, request, response] {
    return ResumeQueueBlocking(*request, response);
  });
}

grpc::ServerUnaryReactor* AdminServiceImpl::ListQueues(
    grpc::CallbackServerContext* context,
    const jobwire::v1::ListQueuesRequest* /*request*/,
    jobwire::v1::ListQueuesResponse* response) {
  return RunBlocking(context,
                     [this, response] { return ListQueuesBlocking(response); });
}

grpc::ServerUnaryReactor* AdminServiceImpl::UpdateQueue(
    grpc::CallbackServerContext* context,
    const jobwire::v1::UpdateQueueRequest* request,
    jobwire::v1::Queue* response) {
  return RunBlocking(context, [this, request, response] {
    return UpdateQueueBlocking(*request, response);
  });
}

grpc::ServerWriteReactor<BackupChunk>* AdminServiceImpl::Backup(
    grpc::CallbackServerContext* /*context*/,
    const jobwire::v1::BackupRequest*) {
  if (options_.store == nullptr) {
    return new FinishedWriter(ToGrpcStatus(absl::UnimplementedError(
        "jobwire.v1.AdminService.Backup needs the store")));
  }
  return new BackupWriter(options_.store, executor_, options_.storage_path);
}

namespace {

void WebhookDeliveryToProto(const WebhookOutboxRow& row,
                            jobwire::v1::WebhookDeliveryRecord* out) {
  using Record = jobwire::v1::WebhookDeliveryRecord;
  out->set_id(row.id);
  out->set_job_id(row.job_id);
  out->set_event_id(row.event_id);
  out->set_webhook_id(HttpWebhookSender::MessageId(row));
  out->set_type(row.type);
  out->set_url(row.url);
  switch (row.state) {
    case WebhookDeliveryState::kPending:
      out->set_state(Record::STATE_PENDING);
      TimeToProto(row.next_attempt_time, out->mutable_next_attempt_time());
      break;
    case WebhookDeliveryState::kDelivered:
      out->set_state(Record::STATE_DELIVERED);
      break;
    case WebhookDeliveryState::kDead:
      out->set_state(Record::STATE_DEAD);
      break;
  }
  out->set_attempts(row.attempts);
  if (row.last_attempt_time != absl::InfinitePast())
    TimeToProto(row.last_attempt_time, out->mutable_last_attempt_time());
  out->set_last_http_status(row.last_http_status);
  out->set_last_error(row.last_error);
  TimeToProto(row.create_time, out->mutable_create_time());
}

}  // namespace

absl::Status AdminServiceImpl::ListWebhookDeliveriesBlocking(
    const jobwire::v1::ListWebhookDeliveriesRequest& request,
    jobwire::v1::ListWebhookDeliveriesResponse* response) {
  if (options_.store == nullptr)
    return absl::UnimplementedError("no store wired in");
  if (!request.job_id().empty())
    JW_RETURN_IF_ERROR(CheckJobId(request.job_id(), "job_id"));
  WebhookDeliveryQuery query;
  query.job_id = request.job_id();
  query.failed_only = request.failed_only();
  query.page_size = request.page_size();
  query.page_token = request.page_token();
  JW_ASSIGN_OR_RETURN(WebhookDeliveryPage page,
                      options_.store->ListWebhookDeliveriesBlocking(query));
  for (const WebhookOutboxRow& row : page.deliveries)
    WebhookDeliveryToProto(row, response->add_deliveries());
  response->set_next_page_token(page.next_page_token);
  return absl::OkStatus();
}

grpc::ServerUnaryReactor* AdminServiceImpl::ListWebhookDeliveries(
    grpc::CallbackServerContext* context,
    const jobwire::v1::ListWebhookDeliveriesRequest* request,
    jobwire::v1::ListWebhookDeliveriesResponse* response) {
  return RunBlocking(context, [this, request, response] {
    return ListWebhookDeliveriesBlocking(*request, response);
  });
}

grpc::ServerUnaryReactor* AdminServiceImpl::RedeliverWebhook(
    grpc::CallbackServerContext* context,
    const jobwire::v1::RedeliverWebhookRequest* request,
    jobwire::v1::WebhookDeliveryRecord* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::Status refused;
  if (request->id() <= 0) {
    refused = InvalidArgumentError("id", "must be a delivery id (> 0)");
  } else if (!options_.webhooks_enabled) {
    refused = FailedPreconditionError(
        "this server sends no webhooks: start jobwired with "
        "--webhook-secret-file",
        PreconditionViolation{"WEBHOOKS", "jobwired",
                              "no --webhook-secret-file"});
  } else if (options_.store == nullptr) {
    refused = absl::UnimplementedError("no store wired in");
  }
  if (!refused.ok()) {
    reactor->Finish(ToGrpcStatus(refused));
    return reactor;
  }
  options_.store->RedeliverWebhook(
      request->id(),
      [this, reactor, response](absl::StatusOr<WebhookOutboxRow> row) {
        if (!row.ok()) {
          reactor->Finish(ToGrpcStatus(row.status()));
          return;
        }
        WebhookDeliveryToProto(*row, response);
        if (options_.webhooks_wake) options_.webhooks_wake();
        reactor->Finish(grpc::Status::OK);
      });
  return reactor;
}

}  // namespace jobwire
