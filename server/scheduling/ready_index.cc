#include "server/scheduling/ready_index.h"

namespace jobwire {

void ReadyIndex::Add(const ReadyJob& job) {
  Remove(job.id);
  queues_[job.queue][job.kind].insert(Key{job.priority, job.id});
  where_.emplace(job.id, job);
}

bool ReadyIndex::Remove(const std::string& job_id) {
  auto it = where_.find(job_id);
  if (it == where_.end()) return false;
  const ReadyJob& job = it->second;
  auto q = queues_.find(job.queue);
  auto k = q->second.find(job.kind);
  k->second.erase(Key{job.priority, job.id});
  if (k->second.empty()) q->second.erase(k);
  if (q->second.empty()) queues_.erase(q);
  where_.erase(it);
  return true;
}

bool ReadyIndex::Contains(const std::string& job_id) const {
  return where_.count(job_id) > 0;
}

std::optional<ReadyJob> ReadyIndex::Peek(
    const std::string& queue,
    const std::function<bool(const std::string& kind)>& accepts) const {
  auto q = queues_.find(queue);
  if (q == queues_.end()) return std::nullopt;
  const Key* best = nullptr;
  for (const auto& [kind, keys] : q->second) {
    if (!accepts(kind)) continue;
    const Key& top = *keys.begin();
    if (best == nullptr || top < *best) best = &top;
  }
  if (best == nullptr) return std::nullopt;
  return where_.at(best->id);
}

int64_t ReadyIndex::QueueSize(const std::string& queue) const {
  auto q = queues_.find(queue);
  if (q == queues_.end()) return 0;
  int64_t n = 0;
  for (const auto& [kind, keys] : q->second) n += keys.size();
  return n;
}

int64_t ReadyIndex::Rank(const std::string& job_id) const {
  auto it = where_.find(job_id);
  if (it == where_.end()) return -1;
  const Key self{it->second.priority, job_id};
  int64_t rank = 0;
  for (const auto& [kind, keys] : queues_.at(it->second.queue)) {
    for (const Key& k : keys) {
      if (!(k < self)) break;
      ++rank;
    }
  }
  return rank;
}

std::vector<std::string> ReadyIndex::NonEmptyQueues() const {
  std::vector<std::string> out;
  out.reserve(queues_.size());
  for (const auto& [name, kinds] : queues_) out.push_back(name);
  return out;
}

}  // namespace jobwire
