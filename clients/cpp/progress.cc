#include "clients/cpp/progress.h"

#include <cmath>
#include <utility>

#include "absl/strings/str_format.h"

namespace jobwire::sdk {

std::string Progress::ToString() const {
  return absl::StrFormat(
      "%d/%d ended: %d succeeded, %d failed, %d cancelled; %d running; "
      "%.1f/s; ETA %s",
      ended(), total, succeeded, failed, cancelled, running, rate,
      eta.has_value() ? absl::FormatDuration(*eta) : std::string("-"));
}

JobsProgress::JobsProgress(bool fixed, absl::Time start)
    : fixed_(fixed), start_(start) {}

void JobsProgress::Count(v1::Job::State state, int delta) {
  const auto index = static_cast<size_t>(state);
  if (index < by_state_.size()) by_state_[index] += delta;
  if (!IsTerminal(state)) not_ended_ += delta;
}

void JobsProgress::Add(const std::string& id) {
  auto [it, added] =
      jobs_.try_emplace(id, Known{v1::Job::STATE_UNSPECIFIED, 0});
  if (added) Count(v1::Job::STATE_UNSPECIFIED, +1);
}

bool JobsProgress::Observe(const std::string& id, v1::Job::State state,
                           int64_t seq) {
  auto it = jobs_.find(id);
  if (it == jobs_.end()) {
    if (fixed_) return false;
    jobs_.emplace(id, Known{state, seq});
    Count(state, +1);
    return true;
  }
  Known& known = it->second;
  if (seq <= known.seq) return false;
  // The rate counts jobs seen to end; a job whose first known state is an
  // ended one (Add()ed, then listed) ended before the watch.
  if (IsTerminal(state) && !IsTerminal(known.state) &&
      known.state != v1::Job::STATE_UNSPECIFIED) {
    ++ended_here_;
  }
  Count(known.state, -1);
  Count(state, +1);
  known = Known{state, seq};
  return true;
}

bool JobsProgress::Observe(const v1::JobEvent& event) {
  if (event.has_state_changed()) {
    return Observe(event.job_id(), event.state_changed().to(), event.seq());
  }
  if (event.has_snapshot()) {
    return Observe(event.job_id(), event.snapshot().state(), event.seq());
  }
  return false;
}

bool JobsProgress::News(const std::string& id, int64_t seq) const {
  auto it = jobs_.find(id);
  if (it == jobs_.end()) return !fixed_;
  return seq > it->second.seq;
}

Progress JobsProgress::Get(absl::Time now) const {
  Progress p;
  p.total = size();
  p.succeeded = by_state_[v1::Job::STATE_SUCCEEDED];
  p.failed = by_state_[v1::Job::STATE_FAILED];
  p.cancelled = by_state_[v1::Job::STATE_CANCELLED];
  p.running = by_state_[v1::Job::STATE_RUNNING];
  const double seconds = absl::ToDoubleSeconds(now - start_);
  p.rate = seconds > 0 ? static_cast<double>(ended_here_) / seconds : 0;
  if (p.rate > 0 && !p.done()) {
    p.eta = absl::Seconds(static_cast<int64_t>(
        std::ceil(static_cast<double>(p.total - p.ended()) / p.rate)));
  }
  return p;
}

absl::Status FollowProgress(Client* client, const std::string& filter,
                            int64_t after_event_id, JobsProgress* progress,
                            const ProgressFn& fn,
                            const WatchProgressOptions& options) {
  if (!fn(progress->Get(options.clock())) || progress->AllEnded()) {
    return absl::OkStatus();
  }
  Client::WatchOptions watch;
  watch.give_up_after = options.give_up_after;
  return client->WatchJobs(
      filter, after_event_id,
      [&](const v1::JobEvent& event) {
        if (!progress->News(event.job_id(), event.seq())) return true;
        if (options.on_event) options.on_event(event);
        if (!progress->Observe(event)) return true;  // no state in it
        return fn(progress->Get(options.clock())) && !progress->AllEnded();
      },
      watch);
}

absl::Status WatchProgress(Client* client, const std::string& filter,
                           const ProgressFn& fn,
                           const WatchProgressOptions& options) {
  // The cursor before the list: every change after the list is on the
  // stream, and what the list already saw is skipped by seq.
  absl::StatusOr<v1::ServerInfo> info = client->GetServerInfo();
  if (!info.ok()) return info.status();
  JobsProgress progress(/*fixed=*/false, options.clock());
  absl::Status listed = client->ListJobs(filter, [&](const v1::Job& job) {
    progress.Observe(job.id(), job.state(), job.last_seq());
    return true;
  });
  if (!listed.ok()) return listed;
  return FollowProgress(client, filter, info->last_event_id(), &progress, fn,
                        options);
}

}  // namespace jobwire::sdk
