// DispatchGates: the durable gates that hold ready jobs back from workers, as
// the Dispatcher keeps them in memory: the server-wide dispatch pause, each
// queue's pause (for good, or until a resume time), its concurrency limit and
// its weight.
//
// How it is used: the Dispatcher owns one, loads it from the store at
// recovery (the "dispatch.paused" setting, the queue rows), and after each
// committed gate write applies the written value here, so memory never runs
// ahead of the store. Every dispatch pass asks QueueOpen() and Weight(); the
// Dispatcher's timer heap calls EndTimedPause() at the time Apply() returned.
// Queues without a stored row take their limit and weight from the server
// options (DispatcherOptions), else no limit and weight 1.
//
// Thread-safety: none of its own. The Dispatcher holds it under its mutex
// (Dispatcher::mu_); every method is pure in-memory work. It owns its state
// and points at nothing. It does no I/O and does not fail.
#ifndef JOBWIRE_SERVER_SCHEDULING_DISPATCH_GATES_H_
#define JOBWIRE_SERVER_SCHEDULING_DISPATCH_GATES_H_

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>

#include "absl/time/time.h"
#include "server/storage/job_store.h"

namespace jobwire {

class DispatchGates {
 public:
  // The store setting that holds the dispatch pause: "0", or "1:" and the
  // reason.
  static constexpr char kDispatchPausedKey[] = "dispatch.paused";

  // `queue_concurrency` / `queue_weights`: defaults of queues without a
  // stored row (a limit <= 0 is no limit; a weight < 1 counts as 1).
  DispatchGates(const std::map<std::string, int32_t>& queue_concurrency,
                const std::map<std::string, int32_t>& queue_weights);

  // --- Dispatch pause ---
  bool dispatch_paused() const { return dispatch_paused_; }
  // Kept while paused; empty otherwise.
  const std::string& dispatch_pause_reason() const {
    return dispatch_pause_reason_;
  }
  void SetDispatchPause(bool paused, const std::string& reason);
  // The value of kDispatchPausedKey for a pause (or its end).
  static std::string DispatchPauseSetting(bool paused,
                                          const std::string& reason);
  // Applies a stored kDispatchPausedKey value (absent: not paused); true when
  // it holds a pause.
  bool LoadDispatchPauseSetting(const std::optional<std::string>& value);

  // --- Queues ---
  // The queue's settings: its stored row, else the options' defaults.
  QueueRow Settings(const std::string& queue) const;
  // The same, with a timed pause that ended at `now` read as no pause
  // (paused false, resume_time InfinitePast): what ListQueues shows and what
  // an edit starts from.
  QueueRow EffectiveSettings(const std::string& queue, absl::Time now) const;
  // True while a pause of `queue` holds at `now`.
  bool QueuePaused(const std::string& queue, absl::Time now) const;
  // True when `queue` may take one more job at `now`: not paused and
  // `running` (its leases) below its concurrency limit.
  bool QueueOpen(const std::string& queue, absl::Time now,
                 int32_t running) const;
  // The weight of `queue` for a worker that declared `worker_weight` for it
  // (0: none, the queue's own weight applies). At least 1.
  int32_t Weight(const std::string& queue, int32_t worker_weight) const;

  // Puts a stored queue row in force. Returns the time its timed pause ends,
  // when it has one: the owner calls EndTimedPause(row.name, ...) then.
  std::optional<absl::Time> Apply(const QueueRow& row);
  // The timer of a timed pause fired at `now`: forgets the pause in memory
  // if it has ended (the stored row keeps paused=1 with a past resume_time,
  // which reads as not paused; the next write of the row clears it). True
  // when a pause ended.
  bool EndTimedPause(const std::string& queue, absl::Time now);

  // True when `queue` has a row in the store.
  bool stored(const std::string& queue) const {
    return stored_.count(queue) > 0;
  }
  // Queues with a stored row or a default from the options, by name.
  const std::map<std::string, QueueRow>& queues() const { return queues_; }

 private:
  bool dispatch_paused_ = false;
  std::string dispatch_pause_reason_;
  // Settings of queues that have a stored row, or defaults from the options.
  std::map<std::string, QueueRow> queues_;
  std::set<std::string> stored_;
};

}  // namespace jobwire

#endif  // JOBWIRE_SERVER_SCHEDULING_DISPATCH_GATES_H_
