// EventBus: fan-out of committed job events to in-process subscribers.
//
// The store hands every committed batch to OnCommit (it is the store's
// CommitListener) on its completion thread (or its idle writer, job_store.h),
// in event_id order. The bus appends the events to a ring of recent events,
// bounded in count (Options::ring_capacity) and in bytes (ring_max_bytes,
// ApproxBytes of each event: an event with a large result or log line counts
// for what it holds), dropping the oldest first, and pushes each one to
//   - the subscribers of that event's job (SubscribeJob): a hash lookup, so
//     10,000 watchers of 10,000 different jobs cost O(1) per event;
//   - every global subscriber (SubscribeAll): WatchJobs streams, the
//     dispatcher.
//
// Slow subscribers. EventSubscriber::OnEvent must not block: it either takes
// the event into its own bounded buffer or returns false. A subscriber that
// returns false is marked lagging and gets no more events: its memory stays
// bounded however far it falls behind. It catches up on its own, from the
// ring (ResumeAll) or from the durable log (JobStore::Read...Blocking on an
// executor), and then calls ResumeJob / ResumeAll, which atomically (under the
// bus lock) either delivers what it still missed and marks it live again, or
// tells it to read the log once more. Because OnEvent, the ring and the
// lagging flags all change under one lock, no event after the subscriber's
// cursor is skipped. The store commits before it publishes, so a subscriber
// that read the log may afterwards be handed an event it already read: every
// subscriber drops events at or below its cursor (seq for one job, event_id
// for all), and then sees each event exactly once, in order.
//
// Thread-safety: every method is thread-safe. OnEvent runs with the bus lock
// held, on the thread that called OnCommit, ResumeJob or ResumeAll.
// Lock order: EventBus::mu_ before any lock a subscriber takes in OnEvent.
// A subscriber must therefore never call into the bus while holding its own
// lock, and OnEvent must not call into the bus at all.
//
// Ownership: the bus does not own subscribers. Unsubscribe() before a
// subscriber is destroyed; after Unsubscribe returns, no OnEvent call for it
// is running or will run. The bus must outlive every subscriber and the store
// it listens to.
#ifndef JOBWIRE_SERVER_EVENTS_EVENT_BUS_H_
#define JOBWIRE_SERVER_EVENTS_EVENT_BUS_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "server/core/job.h"

namespace jobwire {

class EventSubscriber {
 public:
  virtual ~EventSubscriber() = default;
  // Takes one event (or ignores it, returning true, when it does not match
  // the subscriber's interest). Returns false when the event cannot be taken
  // now; the subscriber is then lagging (see the class comment). Called with
  // the bus lock held: must not block and must not call into the bus.
  virtual bool OnEvent(const JobEvent& event) = 0;
};

class EventBus final : public CommitListener {
 public:
  struct Options {
    // Recent events kept in memory for subscribers that fall a little behind.
    size_t ring_capacity = 4096;
    // Bytes (ApproxBytes) those events may hold together; the oldest leave
    // first when either bound is reached, and an event larger than this is
    // not kept at all. Subscribers the ring no longer reaches back for read
    // the durable log (ResumeAll: kReadStore). 0: no byte bound. Each slot
    // may also keep up to kSlotReuseBytes of a former event's storage.
    size_t ring_max_bytes = 32 << 20;
  };

  // Storage of an evicted event that a ring slot keeps for reuse (so that
  // publishing small events allocates nothing); larger events are freed.
  static constexpr size_t kSlotReuseBytes = 2048;

  // Opaque handle of one subscription; owned by the bus.
  struct Subscription;

  enum class ResumeResult {
    kLive,       // caught up; OnEvent gets every later event
    kLagging,    // OnEvent refused an event again; resume later
    kReadStore,  // the ring no longer holds the cursor: read the log first
  };

  explicit EventBus(Options options);
  EventBus() : EventBus(Options()) {}
  ~EventBus() override;
  EventBus(const EventBus&) = delete;
  EventBus& operator=(const EventBus&) = delete;

  // CommitListener. Runs on the store's completion (or idle writer) thread;
  // never blocks beyond the bus lock and the subscribers' OnEvent.
  void OnCommit(const std::vector<JobEvent>& events) override;

  // Subscribes `subscriber` (not owned) to the events of `job_id`. With
  // `live`, every event of the job published after this call reaches
  // OnEvent; without, the subscription starts lagging: the subscriber reads
  // the job from the store first and then calls ResumeJob. Watchers start
  // lagging so that nothing arrives while they read their starting point.
  Subscription* SubscribeJob(const std::string& job_id,
                             EventSubscriber* subscriber, bool live);

  // Subscribes to every event, live or lagging as above. `*last_event_id`
  // (optional) receives the event_id of the last event published before the
  // subscription (0 when none): a live subscription is complete from there.
  Subscription* SubscribeAll(EventSubscriber* subscriber, bool live,
                             int64_t* last_event_id);

  // Removes the subscription and frees the handle. Idempotent for nullptr.
  void Unsubscribe(Subscription* subscription);

  // Both Resume methods return kLive at once for a subscription that is not
  // lagging. The bus knows only what it published: before the first Resume,
  // a subscriber whose cursor may be older than its subscription must read
  // the log up to its end (a read that returned fewer events than asked).
  //
  // For a lagging job subscription whose subscriber has taken every event up
  // to `after_seq` (from the log). kLive when no event of the job after
  // `after_seq` was published since the subscription started or the
  // subscriber lagged; otherwise kReadStore (read the log again).
  ResumeResult ResumeJob(Subscription* subscription, int64_t after_seq);

  // For a lagging global subscription whose subscriber has taken every event
  // up to `after_event_id`. Delivers the missed events from the ring through
  // OnEvent and returns kLive, or kLagging when OnEvent refused one (call
  // again later), or kReadStore when the ring no longer reaches back to
  // `after_event_id`.
  ResumeResult ResumeAll(Subscription* subscription, int64_t after_event_id);

  // The event_id of the last published event; 0 when none.
  int64_t last_event_id() const;
  // Events held in the ring; at most Options::ring_capacity.
  size_t ring_size() const;
  // ApproxBytes of the events held in the ring; at most
  // Options::ring_max_bytes (when not 0).
  size_t ring_bytes() const;
  // Open subscriptions (job and global).
  size_t subscription_count() const;

 private:
  struct JobTopic {
    // seq of the job's last published event since the topic was created.
    int64_t last_seq = 0;
    std::vector<Subscription*> subscriptions;
  };

  void PublishLocked(const JobEvent& event) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void AppendLocked(const JobEvent& event) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void PopOldestLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  const JobEvent& RingAtLocked(size_t i) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  static void DeliverLocked(Subscription* s, const JobEvent& event);

  const Options options_;
  mutable absl::Mutex mu_;
  // A circular buffer of at most ring_capacity slots holding ring_count_
  // events, oldest at ring_head_. It grows by push_back and wraps only once
  // it has ring_capacity slots, so until then ring_head_ + ring_count_ is at
  // most its size. Slots are overwritten by copy assignment, which reuses the
  // old event's storage (up to kSlotReuseBytes): publishing small events
  // allocates nothing in steady state. ring_sizes_ holds each slot's
  // ApproxBytes, ring_bytes_ their sum over the events held.
  std::vector<JobEvent> ring_ ABSL_GUARDED_BY(mu_);
  std::vector<size_t> ring_sizes_ ABSL_GUARDED_BY(mu_);
  size_t ring_head_ ABSL_GUARDED_BY(mu_) = 0;
  size_t ring_count_ ABSL_GUARDED_BY(mu_) = 0;
  size_t ring_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  // The ring holds every published event with event_id > covered_after_;
  // -1 until the first event.
  int64_t covered_after_ ABSL_GUARDED_BY(mu_) = -1;
  int64_t last_event_id_ ABSL_GUARDED_BY(mu_) = 0;
  absl::flat_hash_map<std::string, JobTopic> topics_ ABSL_GUARDED_BY(mu_);
  std::vector<Subscription*> global_ ABSL_GUARDED_BY(mu_);
  size_t subscription_count_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace jobwire

#endif  // JOBWIRE_SERVER_EVENTS_EVENT_BUS_H_
