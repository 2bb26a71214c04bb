#include "server/storage/job_row_cache.h"

#include <cstring>
#include <iterator>
#include <optional>
#include <utility>

namespace jobwire {
namespace {

// The packed row. The id goes first (its length, then its bytes), then a
// flags word saying which times and optional parts are present, then the
// fields in a fixed order; absent times and optional parts take no bytes.
// Integers are copied as they lie in memory (the cache never leaves the
// process); string lengths are varints, so empty fields take one byte.
// Times and durations are kept in whole microseconds, as SQLite keeps them
// (sqlite_rows.h): an unpacked row is what a SELECT would return.
enum Flag : uint32_t {
  kScheduleTime = 1 << 0,
  kBackoffUntil = 1 << 1,
  kLeaseExpireTime = 1 << 2,
  kCreateTime = 1 << 3,
  kStartTime = 1 << 4,
  kUpdateTime = 1 << 5,
  kFinishTime = 1 << 6,
  kRetryPolicy = 1 << 7,
  kWebhook = 1 << 8,
  kProgress = 1 << 9,
  kResult = 1 << 10,
  kError = 1 << 11,
};

constexpr absl::Time Job::*kTimes[] = {
    &Job::schedule_time, &Job::backoff_until, &Job::lease_expire_time,
    &Job::create_time,   &Job::start_time,    &Job::update_time,
    &Job::finish_time,
};

class Packer {
 public:
  explicit Packer(std::string* out) : out_(out) { out_->clear(); }

  template <typename T>
  void Raw(T v) {
    out_->append(reinterpret_cast<const char*>(&v), sizeof(v));
  }
  void Varint(uint64_t v) {
    while (v >= 0x80) {
      out_->push_back(static_cast<char>(v | 0x80));
      v >>= 7;
    }
    out_->push_back(static_cast<char>(v));
  }
  void Str(absl::string_view s) {
    Varint(s.size());
    out_->append(s.data(), s.size());
  }
  void Time(absl::Time t) { Raw<int64_t>(absl::ToUnixMicros(t)); }
  void Duration(absl::Duration d) {
    Raw<int64_t>(absl::ToInt64Microseconds(d));
  }

 private:
  std::string* const out_;
};

class Unpacker {
 public:
  explicit Unpacker(const char* p) : p_(p) {}

  template <typename T>
  T Raw() {
    T v;
    std::memcpy(&v, p_, sizeof(v));
    p_ += sizeof(v);
    return v;
  }
  uint64_t Varint() {
    uint64_t v = 0;
    for (int shift = 0;; shift += 7) {
      const auto byte = static_cast<unsigned char>(*p_++);
      v |= static_cast<uint64_t>(byte & 0x7f) << shift;
      if (byte < 0x80) return v;
    }
  }
  absl::string_view Str() {
    const size_t n = Varint();
    absl::string_view s(p_, n);
    p_ += n;
    return s;
  }
  void Str(std::string* out) {
    absl::string_view s = Str();
    out->assign(s.data(), s.size());
  }
  absl::Time Time() { return absl::FromUnixMicros(Raw<int64_t>()); }
  absl::Duration Duration() { return absl::Microseconds(Raw<int64_t>()); }

 private:
  const char* p_;
};

void Pack(const Job& job, std::string* out) {
  Packer p(out);
  p.Str(job.id);
  uint32_t flags = 0;
  for (size_t i = 0; i < std::size(kTimes); ++i) {
    if (job.*kTimes[i] != absl::InfinitePast()) flags |= 1u << i;
  }
  if (job.retry_policy) flags |= kRetryPolicy;
  if (job.webhook) flags |= kWebhook;
  if (job.progress) flags |= kProgress;
  if (job.result) flags |= kResult;
  if (job.error) flags |= kError;
  p.Raw(flags);
  for (size_t i = 0; i < std::size(kTimes); ++i) {
    if (flags & (1u << i)) p.Time(job.*kTimes[i]);
  }
  p.Raw(job.priority);
  p.Raw(job.max_attempts);
  p.Raw(job.attempt);
  p.Raw(static_cast<int8_t>(job.state));
  p.Raw(static_cast<int8_t>(job.stop_request));
  p.Raw(job.version);
  p.Raw(job.last_seq);
  p.Duration(job.attempt_timeout);
  for (const std::string* s :
       {&job.queue, &job.kind, &job.args_json, &job.payload, &job.request_id,
        &job.checkpoint, &job.worker_id, &job.stop_reason}) {
    p.Str(*s);
  }
  p.Varint(job.labels.size());
  for (const auto& [key, value] : job.labels) {
    p.Str(key);
    p.Str(value);
  }
  if (job.retry_policy) {
    p.Duration(job.retry_policy->initial_backoff);
    p.Duration(job.retry_policy->max_backoff);
    p.Raw(job.retry_policy->multiplier);
    p.Raw(job.retry_policy->jitter);
  }
  if (job.webhook) {
    p.Str(job.webhook->url);
    p.Varint(job.webhook->events.size());
    for (int e : job.webhook->events) p.Raw<int32_t>(e);
  }
  if (job.progress) {
    p.Raw(job.progress->done);
    p.Raw(job.progress->total);
    p.Str(job.progress->message);
    p.Str(job.progress->details_json);
  }
  if (job.result) {
    p.Str(job.result->data_json);
    p.Str(job.result->payload);
  }
  if (job.error) {
    p.Raw(job.error->code);
    p.Raw(static_cast<int8_t>(job.error->retryable));
    p.Str(job.error->message);
    p.Str(job.error->details_json);
  }
}

// Makes `opt` hold a value, keeping the one (and its strings' storage) it
// may already hold.
template <typename T>
T& Engage(std::optional<T>& opt) {
  if (!opt) opt.emplace();
  return *opt;
}

// Every field of `job` is overwritten, so `job` may be the previous row.
void Unpack(const char* data, Job* job) {
  Unpacker u(data);
  u.Str(&job->id);
  const auto flags = u.Raw<uint32_t>();
  for (size_t i = 0; i < std::size(kTimes); ++i) {
    job->*kTimes[i] = (flags & (1u << i)) ? u.Time() : absl::InfinitePast();
  }
  job->priority = u.Raw<int32_t>();
  job->max_attempts = u.Raw<int32_t>();
  job->attempt = u.Raw<int32_t>();
  job->state = static_cast<JobState>(u.Raw<int8_t>());
  job->stop_request = static_cast<StopRequest>(u.Raw<int8_t>());
  job->version = u.Raw<int64_t>();
  job->last_seq = u.Raw<int64_t>();
  job->attempt_timeout = u.Duration();
  for (std::string* s : {&job->queue, &job->kind, &job->args_json,
                         &job->payload, &job->request_id, &job->checkpoint,
                         &job->worker_id, &job->stop_reason}) {
    u.Str(s);
  }
  job->labels.clear();
  for (uint64_t n = u.Varint(); n > 0; --n) {
    absl::string_view key = u.Str();
    absl::string_view value = u.Str();
    job->labels.emplace(std::string(key), std::string(value));
  }
  if (flags & kRetryPolicy) {
    RetryPolicy& r = Engage(job->retry_policy);
    r.initial_backoff = u.Duration();
    r.max_backoff = u.Duration();
    r.multiplier = u.Raw<double>();
    r.jitter = u.Raw<double>();
  } else {
    job->retry_policy.reset();
  }
  if (flags & kWebhook) {
    WebhookSpec& w = Engage(job->webhook);
    u.Str(&w.url);
    w.events.clear();
    for (uint64_t n = u.Varint(); n > 0; --n)
      w.events.push_back(u.Raw<int32_t>());
  } else {
    job->webhook.reset();
  }
  if (flags & kProgress) {
    Progress& p = Engage(job->progress);
    p.done = u.Raw<int64_t>();
    p.total = u.Raw<int64_t>();
    u.Str(&p.message);
    u.Str(&p.details_json);
  } else {
    job->progress.reset();
  }
  if (flags & kResult) {
    JobResult& r = Engage(job->result);
    u.Str(&r.data_json);
    u.Str(&r.payload);
  } else {
    job->result.reset();
  }
  if (flags & kError) {
    JobError& e = Engage(job->error);
    e.code = u.Raw<int32_t>();
    e.retryable = u.Raw<int8_t>() != 0;
    u.Str(&e.message);
    u.Str(&e.details_json);
  } else {
    job->error.reset();
  }
}

// The id that a packed row starts with.
absl::string_view PackedId(const char* data) { return Unpacker(data).Str(); }

}  // namespace

size_t JobRowCache::EntryBytes(size_t capacity) {
  // The allocation plus malloc's header (glibc: 8 bytes, chunks of 16), and
  // the table slot with its control byte.
  constexpr size_t kMallocHeader = 16;
  return capacity + kMallocHeader +
         sizeof(std::pair<const absl::string_view, Entry>) + 1;
}

const Job* JobRowCache::Find(absl::string_view id) {
  auto it = rows_.find(id);
  if (it == rows_.end()) {
    ++misses_;
    return nullptr;
  }
  ++hits_;
  Unpack(it->second.data.get(), &found_);
  return &found_;
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
  Pack(job, &packed_);
  const size_t size = packed_.size();
  auto it = rows_.find(job.id);
  if (it == rows_.end() || it->second.capacity < size) {
    // A new allocation, with room for a bit of growth (a worker id, a
    // lease, a progress message) so that later Puts of the job reuse it.
    const size_t capacity = (size + 32 + 15) & ~size_t{15};
    Entry entry;
    entry.data.reset(new char[capacity]);
    entry.capacity = static_cast<uint32_t>(capacity);
    if (it != rows_.end()) {
      bytes_ -= EntryBytes(it->second.capacity);
      rows_.erase(it);
    }
    if (rows_.size() >= limits_.max_jobs ||
        bytes_ + EntryBytes(capacity) > limits_.max_bytes) {
      Clear();
    }
    bytes_ += EntryBytes(capacity);
    std::memcpy(entry.data.get(), packed_.data(), size);
    entry.size = static_cast<uint32_t>(size);
    // The key views the id inside the entry's own allocation.
    absl::string_view key = PackedId(entry.data.get());
    rows_.emplace(key, std::move(entry));
  } else {
    // Same id, so the key's bytes are rewritten with themselves.
    std::memcpy(it->second.data.get(), packed_.data(), size);
    it->second.size = static_cast<uint32_t>(size);
  }
  if (touched_count_ < touched_.size()) {
    touched_[touched_count_] = job.id;
  } else {
    touched_.push_back(job.id);
  }
  ++touched_count_;
}

void JobRowCache::Forget(absl::string_view id) {
  auto it = rows_.find(id);
  if (it == rows_.end()) return;
  bytes_ -= EntryBytes(it->second.capacity);
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
