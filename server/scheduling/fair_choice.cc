#include "server/scheduling/fair_choice.h"

#include <algorithm>

namespace jobwire {

size_t FairChoice::Choose(const std::vector<Candidate>& eligible) {
  if (eligible.size() == 1) return 0;
  int64_t total = 0;
  size_t best = 0;
  int64_t best_credit = 0;
  for (size_t i = 0; i < eligible.size(); ++i) {
    const int64_t w = std::max<int32_t>(1, eligible[i].weight);
    total += w;
    int64_t& c = credit_[eligible[i].queue];
    c += w;
    if (i == 0 || c > best_credit) {
      best = i;
      best_credit = c;
    }
  }
  credit_[eligible[best].queue] -= total;
  // Queues that were not eligible keep no credit: an idle queue banks nothing.
  if (credit_.size() > eligible.size()) {
    for (auto it = credit_.begin(); it != credit_.end();) {
      bool present =
          std::any_of(eligible.begin(), eligible.end(),
                      [&](const Candidate& c) { return c.queue == it->first; });
      it = present ? std::next(it) : credit_.erase(it);
    }
  }
  return best;
}

}  // namespace jobwire
