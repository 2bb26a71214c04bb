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
#include <optional>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "server/api/convert.h"
#include "server/common/errors.h"
#include "server/common/logging.h"
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
//
// The stream checklist: it is registered with the service's StreamRegistry
// (AdminServiceImpl::Shutdown ends it with UNAVAILABLE + RetryInfo); every end
// goes through FinishOnce, which records the first status only; a client
// cancel finishes it at once (OnCancel). The steps on the Executor run one at
// a time (`steps_`): a finish asked for during a step is carried out
// when the step ends, otherwise by a last step of its own, so the file is
// never read and removed at once, and its removal (disk I/O) stays off gRPC's
// threads. The file is gone before Finish, so a client that saw the end of
// the stream finds no `.backup-` file. Reference counted: gRPC holds one
// reference until OnDone, each scheduled step another.
class BackupWriter final : public grpc::ServerWriteReactor<BackupChunk>,
                           public ServiceStream {
 public:
  BackupWriter(JobStore* store, Executor* executor, std::string db_path,
               StreamRegistry* registry)
      : store_(store),
        executor_(executor),
        db_path_(std::move(db_path)),
        registry_(registry) {
    registry_->Add(this);
    RunStep(&BackupWriter::Snapshot);
  }

  void OnWriteDone(bool ok) override {
    if (!ok)
      return FinishOnce(absl::CancelledError("the client stopped reading"));
    RunStep(&BackupWriter::SendNext);
  }

  void OnCancel() override {
    FinishOnce(absl::CancelledError("cancelled by the client"));
  }

  void OnDone() override { Unref(); }

  // --- ServiceStream ---
  void Tick(absl::Time) override {}
  // A backup has no `draining` message: it goes on until Abort.
  void Drain(absl::Time) override {}
  void Abort(const absl::Status& status) override { FinishOnce(status); }
  size_t BufferedMessages() override { return 0; }

 private:
  ~BackupWriter() override { RemoveFile(); }

  // Records the stream's end; the first call wins. Finishes now (by a last
  // step on the Executor) or when the running step ends.
  void FinishOnce(const absl::Status& status) {
    {
      absl::MutexLock lock(&mu_);
      if (finish_status_.has_value()) return;
      finish_status_ = status;
      if (steps_ > 0) return;  // the last EndStep finishes
      ++steps_;
    }
    Ref();
    if (!executor_->Schedule([this] {
          EndStep();
          Unref();
        })) {
      EndStep();  // the Executor is gone: remove the file here
      Unref();
    }
  }

  // Runs `step` on the Executor unless the stream is finishing.
  void RunStep(void (BackupWriter::*step)()) {
    {
      absl::MutexLock lock(&mu_);
      if (finish_status_.has_value()) return;
      ++steps_;
    }
    Ref();
    if (!executor_->Schedule([this, step] {
          if (!finishing()) (this->*step)();
          EndStep();
          Unref();
        })) {
      {
        absl::MutexLock lock(&mu_);
        if (!finish_status_.has_value()) finish_status_ = ShuttingDownError();
      }
      EndStep();
      Unref();
    }
  }

  bool finishing() {
    absl::MutexLock lock(&mu_);
    return finish_status_.has_value();
  }

  // A step ended: if the stream is to finish, the file goes, then Finish.
  void EndStep() {
    absl::Status status;
    {
      absl::MutexLock lock(&mu_);
      if (--steps_ > 0 || !finish_status_.has_value() || finished_) return;
      finished_ = true;
      status = *finish_status_;
    }
    RemoveFile();
    Finish(ToGrpcStatus(status));
  }

  // Called when no step runs and none will (or from the destructor).
  void RemoveFile() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    if (!temp_path_.empty()) ::unlink(temp_path_.c_str());
    temp_path_.clear();
  }

  // Executor.
  void Snapshot() {
    // Beside the database: the same disk, and a crash leaves it where the
    // next start removes it (RemoveStaleBackupsBlocking).
    std::string temp_path = absl::StrCat(db_path_, kBackupInfix, "XXXXXX");
    const int temp_fd = ::mkstemp(temp_path.data());
    if (temp_fd < 0) {
      return FinishOnce(absl::InternalError(
          absl::StrCat("backup: cannot create a file beside ", db_path_)));
    }
    ::close(temp_fd);
    temp_path_ = std::move(temp_path);
    absl::StatusOr<int64_t> size = store_->BackupBlocking(temp_path_);
    if (!size.ok()) return FinishOnce(size.status());
    fd_ = ::open(temp_path_.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ < 0) {
      return FinishOnce(absl::InternalError(
          absl::StrCat("backup: cannot read ", temp_path_)));
    }
    total_ = FileSize(temp_path_);
    SendNext();
  }

  // Executor: reads and sends the next chunk, or finishes.
  void SendNext() {
    if (offset_ >= total_ && offset_ > 0) return FinishOnce(absl::OkStatus());
    std::string* data = chunk_.mutable_data();
    data->resize(std::min<int64_t>(kBackupChunkBytes, total_ - offset_));
    const ssize_t n = ::pread(fd_, data->data(), data->size(), offset_);
    if (n < 0 || static_cast<size_t>(n) != data->size()) {
      return FinishOnce(absl::InternalError(
          absl::StrCat("backup: short read of ", temp_path_)));
    }
    chunk_.set_offset(offset_);
    chunk_.set_total_bytes(total_);
    offset_ += n;
    if (n == 0) offset_ = 1;  // an empty file: one empty chunk, then done
    StartWrite(&chunk_);
  }

  void Ref() { refs_.fetch_add(1); }
  void Unref() {
    if (refs_.fetch_sub(1) != 1) return;
    registry_->Remove(this);
    delete this;
  }

  JobStore* const store_;
  Executor* const executor_;
  const std::string db_path_;
  StreamRegistry* const registry_;
  std::atomic<int> refs_{1};
  absl::Mutex mu_;
  // Set by the first FinishOnce.
  std::optional<absl::Status> finish_status_ ABSL_GUARDED_BY(mu_);
  // Steps scheduled or running. Two overlap only briefly: a write's
  // OnWriteDone may schedule the next step before the step that started the
  // write has returned from EndStep.
  int steps_ ABSL_GUARDED_BY(mu_) = 0;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;  // Finish was called
  // Touched by one step at a time (see the class comment), then by the
  // finishing step.
  std::string temp_path_;  // empty until Snapshot creates it
  int fd_ = -1;
  int64_t total_ = 0;
  int64_t offset_ = 0;
  BackupChunk chunk_;
};

// A server stream that ends at once with a fixed status.
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

AdminServiceImpl::~AdminServiceImpl() {
  if (!backups_.WaitUntilEmpty(absl::Seconds(5))) {
    JW_LOG(WARNING) << backups_.size() << " backup streams outlive the service";
  }
}

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
  info->set_storage_bytes(options_.storage_bytes
                              ? options_.storage_bytes()
                              : FileSize(options_.storage_path) +
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
    // Read before the counts: a cursor may be early, never late.
    absl::StatusOr<int64_t> last_event_id =
        options_.store->LastEventIdBlocking();
    if (!last_event_id.ok()) return last_event_id.status();
    info->set_last_event_id(*last_event_id);
    absl::StatusOr<std::vector<NodeInfo>> nodes =
        options_.store->ListNodesBlocking();
    if (!nodes.ok()) return nodes.status();
    for (const NodeInfo& n : *nodes) {
      jobwire::v1::ServerNode* node = info->add_nodes();
      node->set_id(n.id);
      node->set_name(n.name);
      TimeToProto(n.start_time, node->mutable_start_time());
      TimeToProto(n.heartbeat_time, node->mutable_heartbeat_time());
      node->set_answering(n.self);
    }
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

void AdminServiceImpl::RunBlocking(const UnaryDone& done,
                                   std::function<absl::Status()> body) {
  bool scheduled =
      executor_->Schedule([done, body = std::move(body)] { done(body()); });
  if (!scheduled) done(ShuttingDownError());
}

void AdminServiceImpl::AddUnaryMethods(UnaryMethods* table) {
  const char* const service = jobwire::v1::AdminService::service_full_name();
  table->Add(service, "GetServerInfo", this,
             &AdminServiceImpl::ServeGetServerInfo);
  table->Add(service, "PauseDispatch", this,
             &AdminServiceImpl::ServePauseDispatch);
  table->Add(service, "ResumeDispatch", this,
             &AdminServiceImpl::ServeResumeDispatch);
  table->Add(service, "PauseQueue", this, &AdminServiceImpl::ServePauseQueue);
  table->Add(service, "ResumeQueue", this, &AdminServiceImpl::ServeResumeQueue);
  table->Add(service, "ListQueues", this, &AdminServiceImpl::ServeListQueues);
  table->Add(service, "UpdateQueue", this, &AdminServiceImpl::ServeUpdateQueue);
  table->Add(service, "ListWebhookDeliveries", this,
             &AdminServiceImpl::ServeListWebhookDeliveries);
  table->Add(service, "RedeliverWebhook", this,
             &AdminServiceImpl::ServeRedeliverWebhook);
}

grpc::ServerUnaryReactor* AdminServiceImpl::GetServerInfo(
    grpc::CallbackServerContext* context,
    const jobwire::v1::GetServerInfoRequest* request,
    jobwire::v1::ServerInfo* response) {
  return ServeOverGrpc(context, this, &AdminServiceImpl::ServeGetServerInfo,
                       request, response);
}

void AdminServiceImpl::ServeGetServerInfo(
    const jobwire::v1::GetServerInfoRequest& /*request*/,
    jobwire::v1::ServerInfo* response, UnaryDone done) {
  RunBlocking(done,
              [this, response] { return GetServerInfoBlocking(response); });
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
  return ServeOverGrpc(context, this, &AdminServiceImpl::ServePauseDispatch,
                       request, response);
}

void AdminServiceImpl::ServePauseDispatch(
    const jobwire::v1::PauseDispatchRequest& request,
    jobwire::v1::DispatchState* response, UnaryDone done) {
  RunBlocking(done, [this, &request, response] {
    return PauseDispatchBlocking(request, response);
  });
}

grpc::ServerUnaryReactor* AdminServiceImpl::ResumeDispatch(
    grpc::CallbackServerContext* context,
    const jobwire::v1::ResumeDispatchRequest* request,
    jobwire::v1::DispatchState* response) {
  return ServeOverGrpc(context, this, &AdminServiceImpl::ServeResumeDispatch,
                       request, response);
}

void AdminServiceImpl::ServeResumeDispatch(
    const jobwire::v1::ResumeDispatchRequest& /*request*/,
    jobwire::v1::DispatchState* response, UnaryDone done) {
  RunBlocking(done,
              [this, response] { return ResumeDispatchBlocking(response); });
}

grpc::ServerUnaryReactor* AdminServiceImpl::PauseQueue(
    grpc::CallbackServerContext* context,
    const jobwire::v1::PauseQueueRequest* request,
    jobwire::v1::Queue* response) {
  return ServeOverGrpc(context, this, &AdminServiceImpl::ServePauseQueue,
                       request, response);
}

void AdminServiceImpl::ServePauseQueue(
    const jobwire::v1::PauseQueueRequest& request, jobwire::v1::Queue* response,
    UnaryDone done) {
  RunBlocking(done, [this, &request, response] {
    return PauseQueueBlocking(request, response);
  });
}

grpc::ServerUnaryReactor* AdminServiceImpl::ResumeQueue(
    grpc::CallbackServerContext* context,
    const jobwire::v1::ResumeQueueRequest* request,
    jobwire::v1::Queue* response) {
  return ServeOverGrpc(context, this, &AdminServiceImpl::ServeResumeQueue,
                       request, response);
}

void AdminServiceImpl::ServeResumeQueue(
    const jobwire::v1::ResumeQueueRequest& request,
    jobwire::v1::Queue* response, UnaryDone done) {
  RunBlocking(done, [this, &request, response] {
    return ResumeQueueBlocking(request, response);
  });
}

grpc::ServerUnaryReactor* AdminServiceImpl::ListQueues(
    grpc::CallbackServerContext* context,
    const jobwire::v1::ListQueuesRequest* request,
    jobwire::v1::ListQueuesResponse* response) {
  return ServeOverGrpc(context, this, &AdminServiceImpl::ServeListQueues,
                       request, response);
}

void AdminServiceImpl::ServeListQueues(
    const jobwire::v1::ListQueuesRequest& /*request*/,
    jobwire::v1::ListQueuesResponse* response, UnaryDone done) {
  RunBlocking(done, [this, response] { return ListQueuesBlocking(response); });
}

grpc::ServerUnaryReactor* AdminServiceImpl::UpdateQueue(
    grpc::CallbackServerContext* context,
    const jobwire::v1::UpdateQueueRequest* request,
    jobwire::v1::Queue* response) {
  return ServeOverGrpc(context, this, &AdminServiceImpl::ServeUpdateQueue,
                       request, response);
}

void AdminServiceImpl::ServeUpdateQueue(
    const jobwire::v1::UpdateQueueRequest& request,
    jobwire::v1::Queue* response, UnaryDone done) {
  RunBlocking(done, [this, &request, response] {
    return UpdateQueueBlocking(request, response);
  });
}

grpc::ServerWriteReactor<BackupChunk>* AdminServiceImpl::Backup(
    grpc::CallbackServerContext* /*context*/,
    const jobwire::v1::BackupRequest* request) {
  absl::Status size = CheckRequestBytes(*request, options_.max_request_bytes);
  if (!size.ok()) return new FinishedWriter<BackupChunk>(size);
  if (options_.store == nullptr) {
    return new FinishedWriter<BackupChunk>(absl::UnimplementedError(
        "jobwire.v1.AdminService.Backup needs the store"));
  }
  if (shutting_down_.load()) {
    return new FinishedWriter<BackupChunk>(ShuttingDownError());
  }
  if (!options_.backup_refusal.ok()) {
    return new FinishedWriter<BackupChunk>(options_.backup_refusal);
  }
  return new BackupWriter(options_.store, executor_, options_.storage_path,
                          &backups_);
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
  return ServeOverGrpc(context, this,
                       &AdminServiceImpl::ServeListWebhookDeliveries, request,
                       response);
}

void AdminServiceImpl::ServeListWebhookDeliveries(
    const jobwire::v1::ListWebhookDeliveriesRequest& request,
    jobwire::v1::ListWebhookDeliveriesResponse* response, UnaryDone done) {
  RunBlocking(done, [this, &request, response] {
    return ListWebhookDeliveriesBlocking(request, response);
  });
}

grpc::ServerUnaryReactor* AdminServiceImpl::RedeliverWebhook(
    grpc::CallbackServerContext* context,
    const jobwire::v1::RedeliverWebhookRequest* request,
    jobwire::v1::WebhookDeliveryRecord* response) {
  return ServeOverGrpc(context, this, &AdminServiceImpl::ServeRedeliverWebhook,
                       request, response);
}

void AdminServiceImpl::ServeRedeliverWebhook(
    const jobwire::v1::RedeliverWebhookRequest& request,
    jobwire::v1::WebhookDeliveryRecord* response, UnaryDone done) {
  absl::Status refused;
  if (request.id() <= 0) {
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
  if (!refused.ok()) return done(refused);
  options_.store->RedeliverWebhook(
      request.id(), [this, done = std::move(done),
                     response](absl::StatusOr<WebhookOutboxRow> row) {
        if (!row.ok()) return done(row.status());
        WebhookDeliveryToProto(*row, response);
        if (options_.webhooks_wake) options_.webhooks_wake();
        done(absl::OkStatus());
      });
}

void AdminServiceImpl::Shutdown() {
  if (shutting_down_.exchange(true)) return;
  const absl::Status status = ShuttingDownError();
  backups_.ForEach([&status](ServiceStream* s) { s->Abort(status); });
}

size_t AdminServiceImpl::open_backups() { return backups_.size(); }

}  // namespace jobwire
