// JobRowCache: the store writer's copy of the rows of active jobs, so that a
// mutation need not SELECT the row it is about to rewrite. Internal to
// storage/.
//
// It mirrors the jobs table as the writer's open transaction sees it. Every
// Put is remembered as "touched" until the transaction's fate is known:
// Commit() keeps the touched rows; RollbackTo(mark) forgets every row touched
// since `mark` (a request that failed, a savepoint or a whole transaction
// rolled back), so the next read of such a job goes to SQLite again.
// Forgetting is always safe; the cache never answers for a job it does not
// hold, and it must be told (Put or Forget) of every write to a row it may
// hold. The store's writer is the only writer of the jobs table.
//
// Compact: each row is held as one allocation, its fields packed the way the
// database keeps them (times and durations in whole microseconds, empty
// fields a length byte), about 130 bytes for a small job instead of the
// ~1 KB of a Job; Find unpacks it into a Job that the cache owns.
//
// Bounded: terminal jobs are not kept (they are rarely written again), jobs
// whose heavy fields (args, payload, checkpoint, result payload) exceed
// Limits::max_job_bytes are not kept, and when the cache would go past
// max_jobs or max_bytes it is emptied and refills from later writes.
// max_bytes counts what the cache really holds per row: the packed row's
// allocation (with the allocator's own header) and the row's hash table
// slot (~210 bytes for a small job: the defaults hold a queue of ~300k
// small jobs in 64 MiB).
//
// Not thread-safe: only the writer thread uses it. The Job that Find returns
// stays valid until the next Find, Put, Forget, RollbackTo or Clear.
#ifndef JOBWIRE_SERVER_STORAGE_JOB_ROW_CACHE_H_
#define JOBWIRE_SERVER_STORAGE_JOB_ROW_CACHE_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "server/core/job.h"

namespace jobwire {

class JobRowCache {
 public:
  struct Limits {
    size_t max_jobs = 500'000;  // 0 disables the cache
    size_t max_bytes = 64 << 20;
    size_t max_job_bytes = 16 << 10;
  };

  explicit JobRowCache(Limits limits) : limits_(limits) {}

  // The row of job `id`, or null when it is not held.
  const Job* Find(absl::string_view id);
  // Whether the row of job `id` is held (not counted as a hit or miss).
  bool Holds(absl::string_view id) const { return rows_.contains(id); }

  // Records `job` as the row of job.id (packed; the held row's allocation is
  // reused when it is large enough), or forgets that row when the job is
  // terminal or too big.
  void Put(const Job& job);
  void Forget(absl::string_view id);

  // A position in the touched log, for RollbackTo.
  size_t mark() const { return touched_count_; }
  // Forgets every row touched since `mark`.
  void RollbackTo(size_t mark);
  // The open transaction committed: its rows stay.
  void Commit();
  void Clear();

  size_t size() const { return rows_.size(); }
  // What the held rows count against Limits::max_bytes.
  size_t bytes() const { return bytes_; }
  int64_t hits() const { return hits_; }
  int64_t misses() const { return misses_; }

 private:
  // A packed row: `size` bytes used of `capacity`; the id comes first, and
  // the map's key views it.
  struct Entry {
    std::unique_ptr<char[]> data;
    uint32_t size = 0;
    uint32_t capacity = 0;
  };
  // What an entry of `capacity` bytes counts against max_bytes.
  static size_t EntryBytes(size_t capacity);

  const Limits limits_;
  absl::flat_hash_map<absl::string_view, Entry> rows_;
  size_t bytes_ = 0;
  // Put packs here first (its capacity is kept), then copies to the entry.
  std::string packed_;
  // Find unpacks here (its strings keep their capacity).
  Job found_;
  // touched_[0, touched_count_) are the ids touched since the last Commit;
  // the strings beyond are kept for their storage (no allocation per Put).
  std::vector<std::string> touched_;
  size_t touched_count_ = 0;
  int64_t hits_ = 0;
  int64_t misses_ = 0;
};

}  // namespace jobwire

#endif  // JOBWIRE_SERVER_STORAGE_JOB_ROW_CACHE_H_
