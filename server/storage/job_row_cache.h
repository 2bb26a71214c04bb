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
// Bounded: terminal jobs are not kept (they are rarely written again), jobs
// whose heavy fields (args, payload, checkpoint, result payload) exceed
// Limits::max_job_bytes are not kept, and when the cache would go past
// max_jobs or max_bytes it is emptied and refills from later writes.
//
// Not thread-safe: only the writer thread uses it. Pointers returned by Find
// stay valid until the next Put, Forget, RollbackTo or Clear.
#ifndef JOBWIRE_SERVER_STORAGE_JOB_ROW_CACHE_H_
#define JOBWIRE_SERVER_STORAGE_JOB_ROW_CACHE_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/container/node_hash_map.h"
#include "server/core/job.h"

namespace jobwire {

class JobRowCache {
 public:
  struct Limits {
    size_t max_jobs = 100'000;  // 0 disables the cache
    size_t max_bytes = 64 << 20;
    size_t max_job_bytes = 16 << 10;
  };

  explicit JobRowCache(Limits limits) : limits_(limits) {}

  // The row of job `id`, or null when it is not held.
  const Job* Find(const std::string& id);

  // Records `job` as the row of job.id (a copy; the held row's storage is
  // reused), or forgets that row when the job is terminal or too big.
  void Put(const Job& job);
  void Forget(const std::string& id);

  // A position in the touched log, for RollbackTo.
  size_t mark() const { return touched_count_; }
  // Forgets every row touched since `mark`.
  void RollbackTo(size_t mark);
  // The open transaction committed: its rows stay.
  void Commit();
  void Clear();

  size_t size() const { return rows_.size(); }
  int64_t hits() const { return hits_; }
  int64_t misses() const { return misses_; }

 private:
  struct Entry {
    Job job;
    size_t bytes = 0;
  };
  static size_t ApproxBytes(const Job& job);

  const Limits limits_;
  // Node-based: the entries (about 1 KB each) never move on a rehash.
  absl::node_hash_map<std::string, Entry> rows_;
  size_t bytes_ = 0;
  // touched_[0, touched_count_) are the ids touched since the last Commit;
  // the strings beyond are kept for their storage (no allocation per Put).
  std::vector<std::string> touched_;
  size_t touched_count_ = 0;
  int64_t hits_ = 0;
  int64_t misses_ = 0;
};

}  // namespace jobwire

#endif  // JOBWIRE_SERVER_STORAGE_JOB_ROW_CACHE_H_
