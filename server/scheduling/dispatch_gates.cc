#include "server/scheduling/dispatch_gates.h"

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace jobwire {

DispatchGates::DispatchGates(
    const std::map<std::string, int32_t>& queue_concurrency,
    const std::map<std::string, int32_t>& queue_weights) {
  for (const auto& [name, limit] : queue_concurrency) {
    queues_[name].concurrency_limit = std::max(0, limit);
  }
  for (const auto& [name, weight] : queue_weights) {
    queues_[name].weight = std::max(1, weight);
  }
  for (auto& [name, row] : queues_) row.name = name;
}

void DispatchGates::SetDispatchPause(bool paused, const std::string& reason) {
  dispatch_paused_ = paused;
  dispatch_pause_reason_ = paused ? reason : "";
}

std::string DispatchGates::DispatchPauseSetting(bool paused,
                                                const std::string& reason) {
  return paused ? absl::StrCat("1:", reason) : "0";
}

bool DispatchGates::LoadDispatchPauseSetting(
    const std::optional<std::string>& value) {
  if (!value.has_value() || !absl::StartsWith(*value, "1")) return false;
  dispatch_paused_ = true;
  dispatch_pause_reason_ = std::string(absl::StripPrefix(*value, "1:"));
  return true;
}

QueueRow DispatchGates::Settings(const std::string& queue) const {
  auto it = queues_.find(queue);
  if (it != queues_.end()) return it->second;
  QueueRow row;
  row.name = queue;
  return row;
}

QueueRow DispatchGates::EffectiveSettings(const std::string& queue,
                                          absl::Time now) const {
  QueueRow row = Settings(queue);
  if (!QueuePaused(queue, now)) {
    row.paused = false;  // a timed pause that ended
    row.resume_time = absl::InfinitePast();
  }
  return row;
}

bool DispatchGates::QueuePaused(const std::string& queue,
                                absl::Time now) const {
  auto it = queues_.find(queue);
  if (it == queues_.end() || !it->second.paused) return false;
  return it->second.resume_time == absl::InfinitePast() ||
         it->second.resume_time > now;
}

bool DispatchGates::QueueOpen(const std::string& queue, absl::Time now,
                              int32_t running) const {
  auto it = queues_.find(queue);
  if (it == queues_.end()) return true;
  if (QueuePaused(queue, now)) return false;
  if (it->second.concurrency_limit <= 0) return true;
  return running < it->second.concurrency_limit;
}

int32_t DispatchGates::Weight(const std::string& queue,
                              int32_t worker_weight) const {
  if (worker_weight > 0) return worker_weight;
  auto it = queues_.find(queue);
  return it == queues_.end() ? 1 : std::max(1, it->second.weight);
}

std::optional<absl::Time> DispatchGates::Apply(const QueueRow& row) {
  queues_[row.name] = row;
  stored_.insert(row.name);
  if (row.paused && row.resume_time != absl::InfinitePast()) {
    return row.resume_time;
  }
  return std::nullopt;
}

bool DispatchGates::EndTimedPause(const std::string& queue, absl::Time now) {
  auto it = queues_.find(queue);
  if (it == queues_.end() || !it->second.paused ||
      it->second.resume_time == absl::InfinitePast() ||
      it->second.resume_time > now) {
    return false;
  }
  it->second.paused = false;
  it->second.resume_time = absl::InfinitePast();
  return true;
}

}  // namespace jobwire
