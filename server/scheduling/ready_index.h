// ReadyIndex: the in-memory set of QUEUED jobs waiting for a worker, per
// queue and kind, best first (priority descending, then id ascending; ids are
// ULIDs, so older jobs first).
//
// Built from committed events and the start-up load; never reads SQLite. Add
// is idempotent (re-adding a job moves it to its new queue/kind/priority).
// Not thread-safe: the Dispatcher guards it with its mutex.
#ifndef JOBWIRE_SERVER_SCHEDULING_READY_INDEX_H_
#define JOBWIRE_SERVER_SCHEDULING_READY_INDEX_H_

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"

namespace jobwire {

struct ReadyJob {
  std::string id;
  std::string queue;
  std::string kind;
  int32_t priority = 0;
};

class ReadyIndex {
 public:
  // Adds or re-keys a job.
  void Add(const ReadyJob& job);
  // Removes a job; false when it was not there.
  bool Remove(const std::string& job_id);
  bool Contains(const std::string& job_id) const;

  // The best job of `queue` whose kind `accepts` (a worker's kind filter),
  // without removing it.
  std::optional<ReadyJob> Peek(
      const std::string& queue,
      const std::function<bool(const std::string& kind)>& accepts) const;

  // Jobs ready in `queue` (all kinds).
  int64_t QueueSize(const std::string& queue) const;
  // Position of a job among its queue's ready jobs of any kind (0 = next);
  // -1 when absent. O(n) in the queue; for ExplainJob only.
  int64_t Rank(const std::string& job_id) const;
  // Every queue with at least one ready job.
  std::vector<std::string> NonEmptyQueues() const;
  int64_t size() const { return static_cast<int64_t>(where_.size()); }

 private:
  struct Key {
    int32_t priority;
    std::string id;
    bool operator<(const Key& o) const {
      if (priority != o.priority) return priority > o.priority;
      return id < o.id;
    }
  };
  // queue -> kind -> ordered jobs.
  std::map<std::string, std::map<std::string, std::set<Key>>> queues_;
  // Every job by id (a flat map: the commit callbacks look up every job
  // that changes state, and most are not here).
  absl::flat_hash_map<std::string, ReadyJob> where_;
};

}  // namespace jobwire

#endif  // JOBWIRE_SERVER_SCHEDULING_READY_INDEX_H_
