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

void EventBus::PublishLocked(const JobEvent& event) {
  if (options_.ring_capacity > 0) {
    if (covered_after_ < 0) covered_after_ = event.event_id - 1;
    if (ring_.size() < options_.ring_capacity) {
      ring_.push_back(event);
    } else {
      JobEvent& oldest = ring_[ring_head_];
      covered_after_ = oldest.event_id;
      oldest = event;
      ring_head_ = (ring_head_ + 1) % ring_.size();
    }
  } else {
    covered_after_ = event.event_id;
  }
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
  // The ring in publishing order is ring_[ring_head_...] then ring_[0...].
  const size_t n = ring_.size();
  auto at = [&](size_t i) -> const JobEvent& {
    mu_.AssertHeld();
    return ring_[(ring_head_ + i) % n];
  };
  // The first position whose event_id is above after_event_id.
  size_t lo = 0;
  size_t hi = n;
  while (lo < hi) {
    const size_t mid = lo + (hi - lo) / 2;
    if (at(mid).event_id <= after_event_id) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  for (size_t i = lo; i < n; ++i) {
    if (!subscription->subscriber->OnEvent(at(i))) {
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
  return ring_.size();
}

size_t EventBus::subscription_count() const {
  absl::MutexLock lock(&mu_);
  return subscription_count_;
}

}  // namespace jobwire
