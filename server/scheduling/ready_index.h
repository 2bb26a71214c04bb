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
#include <string>
#include <vector>

#include "absl/container/btree_set.h"
#include "absl/container/node_hash_map.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace jobwire {

struct ReadyJob {
  std::string id;
  std::string queue;
  std::string kind;
  int32_t priority = 0;
  // When the job became ready (for the dispatch latency).
  absl::Time ready_since = absl::InfinitePast();
};

class ReadyIndex {
 public:
  // Adds a job, or replaces the one with its id (ready_since included).
  void Add(ReadyJob job);
  // Moves a job here to a new queue, kind or priority, keeping its
  // ready_since; false (and nothing changes) when it is not here.
  bool Rekey(const std::string& job_id, const std::string& queue,
             const std::string& kind, int32_t priority);
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
  struct Entry {
    std::string queue;
    std::string kind;
    int32_t priority = 0;
    absl::Time ready_since;
  };
  // The order of a queue's jobs. `id` views the key of the job's node in
  // where_, which stays put until the job is removed (and its Key with it).
  struct Key {
    int32_t priority;
    absl::string_view id;
    bool operator<(const Key& o) const {
      if (priority != o.priority) return priority > o.priority;
      return id < o.id;
    }
  };
  using Jobs = absl::node_hash_map<std::string, Entry>;

  // Files / unfiles a job of where_ under its queue and kind.
  void Link(const Jobs::value_type& job);
  void Unlink(const Jobs::value_type& job);

  // Every job by id. A commit looks up every job that changes state (most
  // are not here) and adds every new one: one node each, and the ordered
  // sets below hold views, so a job costs two allocations (its node and its
  // id) rather than a copy per structure.
  Jobs where_;
  // queue -> kind -> ordered jobs.
  std::map<std::string, std::map<std::string, absl::btree_set<Key>>> queues_;
};

}  // namespace jobwire

#endif  // JOBWIRE_SERVER_SCHEDULING_READY_INDEX_H_
