#include "server/events/event_bus.h"

#include <algorithm>
#include <utility>

namespace jobwire {

struct EventBus::Subscription {
  EventSubscriber* subscriber = nullptr;
  std::string job_id;  // empty for a global subscription
  bool lagging = false;
};

EventBus::EventBus(Options options) : options_(options) {}

EventBus::~EventBus() {
  absl::MutexLock lock(&mu_);
  for (auto& [id, topic] : topics_) {
    for (Subscription* s : topic.subscriptions) delete s;
  }
  for (Subscription* s : global_) delete s;
}

void EventBus::OnCommit(const std::vector<JobEvent>& events) {
  absl::MutexLock lock(&mu_);
  for (const JobEvent& event : events) PublishLocked(event);
}

void EventBus::DeliverLocked(Subscription* s, const JobEvent& event) {
  if (s->lagging) return;
  if (!s->subscriber->OnEvent(event)) s->lagging = true;
}

void EventBus::PopOldestLocked() {
  JobEvent& oldest = ring_[ring_head_];
  covered_after_ = oldest.event_id;
  ring_bytes_ -= ring_sizes_[ring_head_];
  if (ring_sizes_[ring_head_] > kSlotReuseBytes) oldest = JobEvent();
  ring_sizes_[ring_head_] = 0;
  --ring_count_;
  ring_head_ = ring_count_ == 0 ? 0 : (ring_head_ + 1) % ring_.size();
}

void EventBus::AppendLocked(const JobEvent& event) {
  const size_t size = ApproxBytes(event);
  const size_t max_bytes = options_.ring_max_bytes;
  if (options_.ring_capacity == 0 || (max_bytes > 0 && size > max_bytes)) {
    // Not kept: the ring now covers nothing before or at this event.
    while (ring_count_ > 0) PopOldestLocked();
    covered_after_ = event.event_id;
    return;
  }
  if (covered_after_ < 0) covered_after_ = event.event_id - 1;
  while (ring_count_ > 0 &&
         (ring_count_ == options_.ring_capacity ||
          (max_bytes > 0 && ring_bytes_ + size > max_bytes))) {
    PopOldestLocked();
  }
  const size_t tail = ring_head_ + ring_count_;
  if (tail == ring_.size() && ring_.size() < options_.ring_capacity) {
    ring_.push_back(event);
    ring_sizes_.push_back(size);
  } else {
    const size_t at = tail % ring_.size();
    ring_[at] = event;
    ring_sizes_[at] = size;
  }
  ++ring_count_;
  ring_bytes_ += size;
}

const JobEvent& EventBus::RingAtLocked(size_t i) const {
  return ring_[(ring_head_ + i) % ring_.size()];
}

void EventBus::PublishLocked(const JobEvent& event) {
  AppendLocked(event);
  last_event_id_ = std::max(last_event_id_, event.event_id);

  auto it = topics_.find(event.job_id);
  if (it != topics_.end()) {
    JobTopic& topic = it->second;
    topic.last_seq = std::max(topic.last_seq, event.seq);
    for (Subscription* s : topic.subscriptions) DeliverLocked(s, event);
  }
  for (Subscription* s : global_) DeliverLocked(s, event);
}

EventBus::Subscription* EventBus::SubscribeJob(const std::string& job_id,
                                               EventSubscriber* subscriber,
                                               bool live) {
  auto* s = new Subscription{subscriber, job_id, !live};
  absl::MutexLock lock(&mu_);
  topics_[job_id].subscriptions.push_back(s);
  ++subscription_count_;
  return s;
}

EventBus::Subscription* EventBus::SubscribeAll(EventSubscriber* subscriber,
                                               bool live,
                                               int64_t* last_event_id) {
  auto* s = new Subscription{subscriber, "", !live};
  absl::MutexLock lock(&mu_);
  global_.push_back(s);
  ++subscription_count_;
  if (last_event_id != nullptr) *last_event_id = last_event_id_;
  return s;
}

void EventBus::Unsubscribe(Subscription* subscription) {
  if (subscription == nullptr) return;
  {
    absl::MutexLock lock(&mu_);
    std::vector<Subscription*>* list = &global_;
    auto topic = topics_.end();
    if (!subscription->job_id.empty()) {
      topic = topics_.find(subscription->job_id);
      list = &topic->second.subscriptions;
    }
    list->erase(std::remove(list->begin(), list->end(), subscription),
                list->end());
    if (topic != topics_.end() && list->empty()) topics_.erase(topic);
    --subscription_count_;
  }
  delete subscription;
}

EventBus::ResumeResult EventBus::ResumeJob(Subscription* subscription,
                                           int64_t after_seq) {
  absl::MutexLock lock(&mu_);
  if (!subscription->lagging) return ResumeResult::kLive;
  auto it = topics_.find(subscription->job_id);
  if (it != topics_.end() && it->second.last_seq > after_seq) {
    return ResumeResult::kReadStore;
  }
  subscription->lagging = false;
  return ResumeResult::kLive;
}

EventBus::ResumeResult EventBus::ResumeAll(Subscription* subscription,
                                           int64_t after_event_id) {
  absl::MutexLock lock(&mu_);
  if (!subscription->lagging) return ResumeResult::kLive;
  if (last_event_id_ <= after_event_id) {
    subscription->lagging = false;
    return ResumeResult::kLive;
  }
  if (covered_after_ < 0 || after_event_id < covered_after_) {
    return ResumeResult::kReadStore;
  }
  // The ring in publishing order is RingAtLocked(0 ... ring_count_ - 1).
  const size_t n = ring_count_;
  // The first position whose event_id is above after_event_id.
  size_t lo = 0;
  size_t hi = n;
  while (lo < hi) {
    const size_t mid = lo + (hi - lo) / 2;
    if (RingAtLocked(mid).event_id <= after_event_id) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  for (size_t i = lo; i < n; ++i) {
    if (!subscription->subscriber->OnEvent(RingAtLocked(i))) {
      return ResumeResult::kLagging;
    }
  }
  subscription->lagging = false;
  return ResumeResult::kLive;
}

int64_t EventBus::last_event_id() const {
  absl::MutexLock lock(&mu_);
  return last_event_id_;
}

size_t EventBus::ring_size() const {
  absl::MutexLock lock(&mu_);
  return ring_count_;
}

size_t EventBus::ring_bytes() const {
  absl::MutexLock lock(&mu_);
  return ring_bytes_;
}

size_t EventBus::subscription_count() const {
  absl::MutexLock lock(&mu_);
  return subscription_count_;
}

}  // namespace jobwire
