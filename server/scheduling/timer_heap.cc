#include "server/scheduling/timer_heap.h"

#include <utility>

namespace jobwire {

void TimerHeap::Push(Timer timer) {
  heap_.push(Entry{std::move(timer), next_seq_++});
}

std::vector<Timer> TimerHeap::PopDue(absl::Time now) {
  std::vector<Timer> due;
  while (!heap_.empty() && heap_.top().timer.when <= now) {
    due.push_back(heap_.top().timer);
    heap_.pop();
  }
  return due;
}

absl::Time TimerHeap::NextDeadline() const {
  return heap_.empty() ? absl::InfiniteFuture() : heap_.top().timer.when;
}

}  // namespace jobwire
