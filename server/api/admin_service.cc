#include "server/api/admin_service.h"

#include <sys/stat.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "server/transport/grpc_status.h"

namespace jobwire {
namespace {

using jobwire::v1::BackupChunk;

// Size of `path` in bytes, 0 when it does not exist.
int64_t FileSize(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return 0;
  return static_cast<int64_t>(st.st_size);
}

grpc::ServerUnaryReactor* Unimplemented(grpc::CallbackServerContext* context,
                                        absl::string_view method) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(ToGrpcStatus(absl::UnimplementedError(absl::StrCat(
      "jobwire.v1.AdminService.", method, " is not implemented yet"))));
  return reactor;
}

// A server stream that ends at once with a fixed status.
class FinishedWriter final : public grpc::ServerWriteReactor<BackupChunk> {
 public:
  explicit FinishedWriter(grpc::Status status) { Finish(std::move(status)); }
  void OnDone() override { delete this; }
};

}  // namespace

AdminServiceImpl::AdminServiceImpl(Options options, Clock* clock,
                                   Executor* executor)
    : options_(std::move(options)),
      clock_(clock),
      executor_(executor),
      start_time_(clock->Now()) {}

void AdminServiceImpl::SetListeners(std::vector<std::string> listeners) {
  absl::MutexLock lock(&mu_);
  listeners_ = std::move(listeners);
}

absl::Status AdminServiceImpl::GetServerInfoBlocking(
    jobwire::v1::ServerInfo* info) const {
  info->set_version(options_.version);
  absl::Duration uptime = clock_->Now() - start_time_;
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
  info->mutable_dispatch()->set_paused(false);
  info->set_draining(options_.draining ? options_.draining() : false);
  info->set_workers(options_.workers ? options_.workers() : 0);
  info->set_watchers(options_.watchers ? options_.watchers() : 0);
  if (options_.store != nullptr) {
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

grpc::ServerUnaryReactor* AdminServiceImpl::GetServerInfo(
    grpc::CallbackServerContext* context,
    const jobwire::v1::GetServerInfoRequest* /*request*/,
    jobwire::v1::ServerInfo* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  bool scheduled = executor_->Schedule([this, reactor, response] {
    reactor->Finish(ToGrpcStatus(GetServerInfoBlocking(response)));
  });
  if (!scheduled) {
    reactor->Finish(
        ToGrpcStatus(absl::UnavailableError("jobwired is shutting down")));
  }
  return reactor;
}

grpc::ServerUnaryReactor* AdminServiceImpl::PauseDispatch(
    grpc::CallbackServerContext* context,
    const jobwire::v1::PauseDispatchRequest*, jobwire::v1::DispatchState*) {
  return Unimplemented(context, "PauseDispatch");
}

grpc::ServerUnaryReactor* AdminServiceImpl::ResumeDispatch(
    grpc::CallbackServerContext* context,
    const jobwire::v1::ResumeDispatchRequest*, jobwire::v1::DispatchState*) {
  return Unimplemented(context, "ResumeDispatch");
}

grpc::ServerUnaryReactor* AdminServiceImpl::PauseQueue(
    grpc::CallbackServerContext* context, const jobwire::v1::PauseQueueRequest*,
    jobwire::v1::Queue*) {
  return Unimplemented(context, "PauseQueue");
}

grpc::ServerUnaryReactor* AdminServiceImpl::ResumeQueue(
    grpc::CallbackServerContext* context,
    const jobwire::v1::ResumeQueueRequest*, jobwire::v1::Queue*) {
  return Unimplemented(context, "ResumeQueue");
}

grpc::ServerUnaryReactor* AdminServiceImpl::ListQueues(
    grpc::CallbackServerContext* context, const jobwire::v1::ListQueuesRequest*,
    jobwire::v1::ListQueuesResponse*) {
  return Unimplemented(context, "ListQueues");
}

grpc::ServerUnaryReactor* AdminServiceImpl::UpdateQueue(
    grpc::CallbackServerContext* context,
    const jobwire::v1::UpdateQueueRequest*, jobwire::v1::Queue*) {
  return Unimplemented(context, "UpdateQueue");
}

grpc::ServerWriteReactor<BackupChunk>* AdminServiceImpl::Backup(
    grpc::CallbackServerContext* /*context*/,
    const jobwire::v1::BackupRequest*) {
  return new FinishedWriter(ToGrpcStatus(absl::UnimplementedError(
      "jobwire.v1.AdminService.Backup is not implemented yet")));
}

}  // namespace jobwire
