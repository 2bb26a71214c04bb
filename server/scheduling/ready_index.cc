#include "server/scheduling/ready_index.h"

namespace jobwire {

void ReadyIndex::Add(ReadyJob job) {
  auto [it, inserted] = where_.try_emplace(std::move(job.id));
  if (!inserted) Unlink(*it);
  Entry& e = it->second;
  e.queue = std::move(job.queue);
  e.kind = std::move(job.kind);
  e.priority = job.priority;
  e.ready_since = job.ready_since;
  Link(*it);
}

bool ReadyIndex::Rekey(const std::string& job_id, const std::string& queue,
                       const std::string& kind, int32_t priority) {
  auto it = where_.find(job_id);
  if (it == where_.end()) return false;
  Unlink(*it);
  Entry& e = it->second;
  e.queue = queue;
  e.kind = kind;
  e.priority = priority;
  Link(*it);
  return true;
}

bool ReadyIndex::Remove(const std::string& job_id) {
  auto it = where_.find(job_id);
  if (it == where_.end()) return false;
  Unlink(*it);
  where_.erase(it);
  return true;
}

void ReadyIndex::Link(const Jobs::value_type& job) {
  const Entry& e = job.second;
  queues_[e.queue][e.kind].insert(Key{e.priority, job.first});
}

void ReadyIndex::Unlink(const Jobs::value_type& job) {
  const Entry& e = job.second;
  auto q = queues_.find(e.queue);
  auto k = q->second.find(e.kind);
  k->second.erase(Key{e.priority, job.first});
  if (k->second.empty()) q->second.erase(k);
  if (q->second.empty()) queues_.erase(q);
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
  auto it = where_.find(best->id);
  const Entry& e = it->second;
  return ReadyJob{it->first, e.queue, e.kind, e.priority, e.ready_since};
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
  const Key self{it->second.priority, it->first};
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
