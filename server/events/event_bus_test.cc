#include "server/events/event_bus.h"

#include <atomic>
#include <thread>
#include <vector>

#include "absl/random/random.h"
#include "absl/synchronization/mutex.h"
#include "gtest/gtest.h"

namespace jobwire::test {
namespace {

JobEvent Event(int64_t id, const std::string& job, int64_t seq) {
  JobEvent e;
  e.event_id = id;
  e.job_id = job;
  e.seq = seq;
  return e;
}

// Collects events; refuses them once it holds `capacity`.
class Collector : public EventSubscriber {
 public:
  explicit Collector(size_t capacity = 1 << 20) : capacity_(capacity) {}
  bool OnEvent(const JobEvent& event) override {
    absl::MutexLock lock(&mu_);
    if (events_.size() >= capacity_) return false;
    events_.push_back(event);
    return true;
  }
  std::vector<int64_t> Ids() {
    absl::MutexLock lock(&mu_);
    std::vector<int64_t> ids;
    for (const JobEvent& e : events_) ids.push_back(e.event_id);
    return ids;
  }
  void Grow(size_t capacity) {
    absl::MutexLock lock(&mu_);
    capacity_ = capacity;
  }

 private:
  absl::Mutex mu_;
  size_t capacity_ ABSL_GUARDED_BY(mu_);
  std::vector<JobEvent> events_ ABSL_GUARDED_BY(mu_);
};

TEST(EventBusTest, JobSubscribersGetOnlyTheirJobAndGlobalSubscribersGetAll) {
  EventBus bus;
  Collector a, b, all;
  EventBus::Subscription* sa = bus.SubscribeJob("a", &a, /*live=*/true);
  EventBus::Subscription* sb = bus.SubscribeJob("b", &b, /*live=*/true);
  int64_t last = -1;
  EventBus::Subscription* sall = bus.SubscribeAll(&all, /*live=*/true, &last);
  EXPECT_EQ(last, 0);

  bus.OnCommit({Event(1, "a", 1), Event(2, "b", 1), Event(3, "a", 2)});

  EXPECT_EQ(a.Ids(), (std::vector<int64_t>{1, 3}));
  EXPECT_EQ(b.Ids(), (std::vector<int64_t>{2}));
  EXPECT_EQ(all.Ids(), (std::vector<int64_t>{1, 2, 3}));
  EXPECT_EQ(bus.last_event_id(), 3);
  EXPECT_EQ(bus.subscription_count(), 3u);
  bus.Unsubscribe(sa);
  bus.Unsubscribe(sb);
  bus.Unsubscribe(sall);
  EXPECT_EQ(bus.subscription_count(), 0u);
  bus.OnCommit({Event(4, "a", 3)});
  EXPECT_EQ(a.Ids().size(), 2u);
}

TEST(EventBusTest,
     LaggingGlobalSubscriberCatchesUpFromTheRingWithoutGapOrDuplicate) {
  EventBus bus(EventBus::Options{/*ring_capacity=*/8});
  Collector slow(/*capacity=*/2);
  EventBus::Subscription* s = bus.SubscribeAll(&slow, /*live=*/true, nullptr);
  bus.OnCommit({Event(1, "a", 1), Event(2, "a", 2), Event(3, "a", 3)});
  bus.OnCommit({Event(4, "b", 1)});
  EXPECT_EQ(slow.Ids(), (std::vector<int64_t>{1, 2}));  // lagging since 3

  slow.Grow(3);
  EXPECT_EQ(bus.ResumeAll(s, 2), EventBus::ResumeResult::kLagging);
  slow.Grow(100);
  EXPECT_EQ(bus.ResumeAll(s, 3), EventBus::ResumeResult::kLive);
  bus.OnCommit({Event(5, "a", 4)});
  EXPECT_EQ(slow.Ids(), (std::vector<int64_t>{1, 2, 3, 4, 5}));
  bus.Unsubscribe(s);
}

TEST(EventBusTest, ResumeAllAsksForTheStoreWhenTheRingNoLongerHoldsTheCursor) {
  EventBus bus(EventBus::Options{/*ring_capacity=*/2});
  Collector c;
  EventBus::Subscription* s = bus.SubscribeAll(&c, /*live=*/false, nullptr);
  bus.OnCommit({Event(10, "a", 1), Event(11, "a", 2), Event(12, "a", 3)});
  EXPECT_TRUE(c.Ids().empty());  // started lagging
  EXPECT_EQ(bus.ring_size(), 2u);
  EXPECT_EQ(bus.ResumeAll(s, 9), EventBus::ResumeResult::kReadStore);
  EXPECT_EQ(bus.ResumeAll(s, 10), EventBus::ResumeResult::kLive);
  EXPECT_EQ(c.Ids(), (std::vector<int64_t>{11, 12}));
  bus.Unsubscribe(s);
}

// An event carrying `bytes` of result payload (as a job's last event does).
JobEvent BigEvent(int64_t id, size_t bytes) {
  JobEvent e = Event(id, "big", id);
  e.result = JobResult{"", std::string(bytes, 'r')};
  return e;
}

TEST(EventBusTest, RingIsBoundedInBytesAndLaggersThenReadTheStore) {
  EventBus::Options options;
  options.ring_capacity = 1000;
  options.ring_max_bytes = 1 << 20;
  EventBus bus(options);
  Collector c;
  EventBus::Subscription* s = bus.SubscribeAll(&c, /*live=*/false, nullptr);
  // 40 events of 300 KB: 12 MB by count alone; the ring keeps the last three.
  for (int64_t id = 1; id <= 40; ++id) {
    bus.OnCommit({BigEvent(id, 300 * 1000)});
    EXPECT_LE(bus.ring_bytes(), options.ring_max_bytes);
  }
  EXPECT_EQ(bus.ring_size(), 3u);
  EXPECT_GE(bus.ring_bytes(), 3u * 300 * 1000);
  EXPECT_EQ(bus.ResumeAll(s, 36), EventBus::ResumeResult::kReadStore);
  EXPECT_EQ(bus.ResumeAll(s, 37), EventBus::ResumeResult::kLive);
  EXPECT_EQ(c.Ids(), (std::vector<int64_t>{38, 39, 40}));

  // Small events fill back in by count; evicted big ones free their bytes.
  for (int64_t id = 41; id <= 1040; ++id) bus.OnCommit({Event(id, "a", id)});
  EXPECT_EQ(bus.ring_size(), 1000u);
  EXPECT_LT(bus.ring_bytes(), 1000u * 2048);
  EXPECT_EQ(bus.ring_bytes(), 1000u * ApproxBytes(Event(1, "a", 1)));

  // An event above the whole budget is not kept: the ring then reaches back
  // to nothing before it, and the next small one starts it over.
  bus.OnCommit({BigEvent(1041, 2 << 20)});
  EXPECT_EQ(bus.ring_size(), 0u);
  EXPECT_EQ(bus.ring_bytes(), 0u);
  bus.OnCommit({Event(1042, "a", 1042)});
  EXPECT_EQ(bus.ring_size(), 1u);
  Collector late;
  EventBus::Subscription* t = bus.SubscribeAll(&late, /*live=*/false, nullptr);
  EXPECT_EQ(bus.ResumeAll(t, 1040), EventBus::ResumeResult::kReadStore);
  EXPECT_EQ(bus.ResumeAll(t, 1041), EventBus::ResumeResult::kLive);
  EXPECT_EQ(late.Ids(), (std::vector<int64_t>{1042}));
  bus.Unsubscribe(t);
  bus.Unsubscribe(s);
}

TEST(EventBusTest, ResumeJobIsLiveOnlyWhenNothingNewerWasPublished) {
  EventBus bus;
  Collector c;
  EventBus::Subscription* s = bus.SubscribeJob("a", &c, /*live=*/false);
  bus.OnCommit({Event(1, "a", 5)});
  EXPECT_TRUE(c.Ids().empty());
  EXPECT_EQ(bus.ResumeJob(s, 4), EventBus::ResumeResult::kReadStore);
  EXPECT_EQ(bus.ResumeJob(s, 5), EventBus::ResumeResult::kLive);
  bus.OnCommit({Event(2, "a", 6)});
  EXPECT_EQ(c.Ids(), (std::vector<int64_t>{2}));
  bus.Unsubscribe(s);
}

// A publisher commits while subscribers refuse events at random and catch up
// from the ring or, when it moved on, from the published log: each sees every
// event exactly once, in order.
// Four subscribers refusing 1% of events at random catch up from the ring or
// the "store" while a writer publishes; with `varied_sizes`, events carry
// 0 to 8 KB of log line so that the byte bound, not the count, evicts.
void CheckRandomLaggers(EventBus::Options options, bool varied_sizes) {
  constexpr int kEvents = 20000;
  EventBus bus(options);
  std::vector<JobEvent> log;  // what the "store" committed
  absl::Mutex log_mu;

  struct Flaky : EventSubscriber {
    absl::Mutex mu;
    absl::BitGen gen;
    std::vector<int64_t> ids ABSL_GUARDED_BY(mu);
    bool OnEvent(const JobEvent& e) override {
      absl::MutexLock lock(&mu);
      // Read from the log before it was published: drop the duplicate.
      if (!ids.empty() && e.event_id <= ids.back()) return true;
      if (absl::Bernoulli(gen, 0.01)) return false;
      ids.push_back(e.event_id);
      return true;
    }
    int64_t Cursor() {
      absl::MutexLock lock(&mu);
      return ids.empty() ? 0 : ids.back();
    }
  };
  std::vector<std::unique_ptr<Flaky>> subs(4);
  std::vector<EventBus::Subscription*> handles;
  for (auto& f : subs) {
    f = std::make_unique<Flaky>();
    handles.push_back(bus.SubscribeAll(f.get(), /*live=*/true, nullptr));
  }
  std::atomic<bool> done{false};
  std::thread writer([&] {
    for (int i = 1; i <= kEvents; ++i) {
      JobEvent e = Event(i, "j", i);
      if (varied_sizes)
        e.log_line.assign(static_cast<size_t>(i * 7919 % 8192), 'l');
      {
        absl::MutexLock lock(&log_mu);
        log.push_back(e);
      }
      bus.OnCommit({e});
    }
    done = true;
  });
  std::vector<std::thread> readers;
  for (size_t k = 0; k < subs.size(); ++k) {
    readers.emplace_back([&, k] {
      Flaky* f = subs[k].get();
      for (;;) {
        const bool finished = done;
        EventBus::ResumeResult r = bus.ResumeAll(handles[k], f->Cursor());
        if (r == EventBus::ResumeResult::kReadStore) {
          std::vector<JobEvent> missed;
          {
            absl::MutexLock lock(&log_mu);
            for (const JobEvent& e : log) {
              if (e.event_id > f->Cursor()) missed.push_back(e);
            }
          }
          absl::MutexLock lock(&f->mu);
          for (const JobEvent& e : missed) f->ids.push_back(e.event_id);
        } else if (r == EventBus::ResumeResult::kLive && finished) {
          return;
        }
      }
    });
  }
  writer.join();
  for (std::thread& t : readers) t.join();
  for (size_t k = 0; k < subs.size(); ++k) {
    bus.Unsubscribe(handles[k]);
    absl::MutexLock lock(&subs[k]->mu);
    ASSERT_EQ(subs[k]->ids.size(), static_cast<size_t>(kEvents));
    for (int i = 0; i < kEvents; ++i) ASSERT_EQ(subs[k]->ids[i], i + 1);
  }
  if (options.ring_max_bytes > 0) {
    EXPECT_LE(bus.ring_bytes(), options.ring_max_bytes);
  }
}

TEST(EventBusTest, RandomlyLaggingSubscribersSeeEveryEventOnceInOrder) {
  CheckRandomLaggers(EventBus::Options{/*ring_capacity=*/64}, false);
}

TEST(EventBusTest, RandomlyLaggingSubscribersOfAByteBoundRingSeeEveryEvent) {
  EventBus::Options options;
  options.ring_capacity = 4096;
  options.ring_max_bytes = 64 << 10;  // ~16 events of 4 KB on average
  CheckRandomLaggers(options, true);
}

}  // namespace
}  // namespace jobwire::test
