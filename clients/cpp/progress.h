// Progress over many jobs: aggregate counts (succeeded, failed, cancelled,
// running, total, rate, ETA) from one WatchJobs stream, what people reach
// for a progress bar for. The C++ shape of Python's watch_progress, Go's
// WatchProgress and TypeScript's watchProgress.
//
//   jobwire::sdk::Client client;
//   absl::Status s = jobwire::sdk::WatchProgress(
//       &client, "labels.batch = \"b1\"",
//       [](const jobwire::sdk::Progress& p) {
//         std::cout << p.ToString() << "\n";  // "3/10 ended: ..."
//         return true;                         // false stops early (OK)
//       });
//
// WatchProgress takes a cursor first (GetServerInfo's last_event_id), lists
// the jobs the filter matches, then follows them, and any that match later,
// on one WatchJobs stream from that cursor, skipping by seq what the list
// already saw, until every one has ended. So nothing that happens between
// the list and the stream is missed, and the stream replays only what came
// after the cursor. Its callback gets a Progress at the start and after
// each change of a followed job's state. The stream resumes after breaks
// and server restarts as Client::WatchJobs does.
//
// JobsProgress is the bookkeeping underneath, for a caller that learns of
// its jobs itself (the CLI's `submit-batch --watch` follows the ids its
// SubmitJobs replies name, from a cursor taken before its first submit):
// fill one, then FollowProgress. Memory: one small entry per followed job.
//
// Not thread-safe: a JobsProgress belongs to one watch; the functions block
// their caller (they run the watch on the calling thread).
#ifndef JOBWIRE_CLIENTS_CPP_PROGRESS_H_
#define JOBWIRE_CLIENTS_CPP_PROGRESS_H_

#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/time/time.h"
#include "clients/cpp/client.h"

namespace jobwire::sdk {

// The followed jobs at one moment.
struct Progress {
  int64_t total = 0;
  int64_t succeeded = 0;
  int64_t failed = 0;
  int64_t cancelled = 0;
  int64_t running = 0;
  // Jobs ended per second since the watch began (those that ended while
  // watched), and the time left at that rate (none: unknown, or done).
  double rate = 0;
  std::optional<absl::Duration> eta;

  int64_t ended() const { return succeeded + failed + cancelled; }
  bool done() const { return ended() == total; }
  // "3/10 ended: 2 succeeded, 1 failed, 0 cancelled; 4 running; 0.5/s;
  // ETA 14s" (ETA "-" when unknown).
  std::string ToString() const;
};

// The latest known state of each followed job, and the counts over them,
// kept up to date as events come (each call is O(1)).
class JobsProgress {
 public:
  // `fixed`: follow only the jobs Add()ed; otherwise Observe() adds any job
  // it is told of. `start`: when the watch began (the rate's time base).
  JobsProgress(bool fixed, absl::Time start);

  // Follows job `id`, whose state is not known yet: it counts in total, as
  // not ended, until an Observe(). No-op when already followed.
  void Add(const std::string& id);
  // Job `id` is in `state` as of its event `seq`. Returns false, changing
  // nothing, for an older or equal seq than the one known (a replay of what
  // a list saw), or for a job a fixed JobsProgress does not follow. The
  // rate counts the jobs seen to go from a known unended state to an ended
  // one.
  bool Observe(const std::string& id, v1::Job::State state, int64_t seq);
  // What a WatchJobs event says of its job's state, if anything
  // (snapshot, state_changed), as Observe.
  bool Observe(const v1::JobEvent& event);

  // Whether event `seq` of job `id` is news: later than the job's known
  // state, of a followed job (or, unless fixed, of a job not seen yet).
  bool News(const std::string& id, int64_t seq) const;
  bool Follows(const std::string& id) const { return jobs_.contains(id); }
  // Every followed job has ended (true when none is followed).
  bool AllEnded() const { return not_ended_ == 0; }
  int64_t size() const { return static_cast<int64_t>(jobs_.size()); }
  Progress Get(absl::Time now) const;

 private:
  struct Known {
    v1::Job::State state;
    int64_t seq;
  };
  void Count(v1::Job::State state, int delta);

  const bool fixed_;
  const absl::Time start_;
  absl::flat_hash_map<std::string, Known> jobs_;
  std::array<int64_t, 8> by_state_{};  // indexed by v1::Job::State
  int64_t not_ended_ = 0;
  int64_t ended_here_ = 0;  // ended while watched: the rate
};

// Called with each Progress; returning false stops the watch (OK).
using ProgressFn = std::function<bool(const Progress&)>;

struct WatchProgressOptions {
  // The clock of the rate and ETA.
  std::function<absl::Time()> clock = absl::Now;
  // Give up with UNAVAILABLE once attempts to resume the stream have failed
  // for this long.
  absl::Duration give_up_after = absl::InfiniteDuration();
  // Given each event of a followed job that is news (JobsProgress::News:
  // progress and log events too), before the ProgressFn; may be empty.
  std::function<void(const v1::JobEvent&)> on_event;
};

// The jobs `filter` matches (AIP-160, as ListJobs; "" for every job), and
// any that match later, until all have ended: OK, or the error that ended
// the watch (INVALID_ARGUMENT for a bad filter). `fn` gets one Progress
// after the list and one after each change.
absl::Status WatchProgress(Client* client, const std::string& filter,
                           const ProgressFn& fn,
                           const WatchProgressOptions& options = {});

// Follows what `progress` follows on one WatchJobs stream of `filter` from
// `after_event_id` (a cursor taken before the followed jobs' states were
// learned or they were submitted) until all have ended or `fn` says stop.
// `fn` gets a Progress first, then one after each change.
absl::Status FollowProgress(Client* client, const std::string& filter,
                            int64_t after_event_id, JobsProgress* progress,
                            const ProgressFn& fn,
                            const WatchProgressOptions& options = {});

}  // namespace jobwire::sdk

#endif  // JOBWIRE_CLIENTS_CPP_PROGRESS_H_
