#include "server/storage/job_row_cache.h"

namespace jobwire {
namespace {

// SQLite keeps times and durations in whole microseconds (sqlite_rows.h): the
// cached row holds what a SELECT would return.
absl::Time Micros(absl::Time t) {
  if (t == absl::InfinitePast()) return t;  // NULL
  return absl::FromUnixMicros(absl::ToUnixMicros(t));
}
absl::Duration Micros(absl::Duration d) {
  return absl::Microseconds(absl::ToInt64Microseconds(d));
}

void TruncateToMicros(Job* job) {
  for (absl::Time* t :
       {&job->schedule_time, &job->backoff_until, &job->lease_expire_time,
        &job->create_time, &job->start_time, &job->update_time,
        &job->finish_time}) {
    *t = Micros(*t);
  }
  job->attempt_timeout = Micros(job->attempt_timeout);
  if (job->retry_policy) {
    job->retry_policy->initial_backoff =
        Micros(job->retry_policy->initial_backoff);
    job->retry_policy->max_backoff = Micros(job->retry_policy->max_backoff);
  }
}

}  // namespace

size_t JobRowCache::ApproxBytes(const Job& job) {
  size_t bytes = sizeof(Entry) + job.id.size() * 2 + job.queue.size() +
                 job.kind.size() + job.args_json.size() + job.payload.size() +
                 job.checkpoint.size() + job.request_id.size() +
                 job.worker_id.size();
  for (const auto& [key, value] : job.labels)
    bytes += 64 + key.size() + value.size();
  if (job.result) {
    bytes += job.result->data_json.size() + job.result->payload.size();
  }
  if (job.error) {
    bytes += job.error->message.size() + job.error->details_json.size();
  }
  if (job.progress) {
    bytes += job.progress->message.size() + job.progress->details_json.size();
  }
  return bytes;
}

const Job* JobRowCache::Find(const std::string& id) {
  auto it = rows_.find(id);
  if (it == rows_.end()) {
    ++misses_;
    return nullptr;
  }
  ++hits_;
  return &it->second.job;
}

void JobRowCache::Put(const Job& job) {
  const size_t heavy = job.args_json.size() + job.payload.size() +
                       job.checkpoint.size() +
                       (job.result ? job.result->payload.size() : 0);
  if (limits_.max_jobs == 0 || IsTerminal(job.state) ||
      heavy > limits_.max_job_bytes) {
    Forget(job.id);
    return;
  }
  const size_t bytes = ApproxBytes(job);
  auto it = rows_.find(job.id);
  if (it == rows_.end()) {
    if (rows_.size() >= limits_.max_jobs ||
        bytes_ + bytes > limits_.max_bytes) {
      Clear();
    }
    it = rows_.emplace(job.id, Entry{}).first;
  }
  bytes_ = bytes_ - it->second.bytes + bytes;
  it->second.job = job;
  TruncateToMicros(&it->second.job);
  it->second.bytes = bytes;
  if (touched_count_ < touched_.size()) {
    touched_[touched_count_] = job.id;
  } else {
    touched_.push_back(job.id);
  }
  ++touched_count_;
}

void JobRowCache::Forget(const std::string& id) {
  auto it = rows_.find(id);
  if (it == rows_.end()) return;
  bytes_ -= it->second.bytes;
  rows_.erase(it);
}

void JobRowCache::RollbackTo(size_t mark) {
  if (mark >= touched_count_) return;
  for (size_t i = mark; i < touched_count_; ++i) Forget(touched_[i]);
  touched_count_ = mark;
}

void JobRowCache::Commit() {
  touched_count_ = 0;
  // Kept for reuse up to a usual batch; a huge Submit does not pin its ids.
  constexpr size_t kKeptTouched = 4096;
  if (touched_.size() > kKeptTouched) {
    touched_.resize(kKeptTouched);
    touched_.shrink_to_fit();
  }
}

void JobRowCache::Clear() {
  rows_.clear();
  bytes_ = 0;
}

}  // namespace jobwire
