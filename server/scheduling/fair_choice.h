// FairChoice: weighted fair choice among the queues that have work now.
//
// Smooth weighted round robin: each turn, every eligible queue gains its
// weight in credit; the richest is chosen and pays the eligible total. While
// two queues both have work, one of weight 3 gets three turns for every turn
// of a weight-1 queue, spread out (A A B A, not A A A B); a queue without
// work is simply not eligible and costs nothing, and it does not bank credit
// while idle. Not thread-safe: one instance per worker session, guarded by
// the Dispatcher's mutex.
#ifndef JOBWIRE_SERVER_SCHEDULING_FAIR_CHOICE_H_
#define JOBWIRE_SERVER_SCHEDULING_FAIR_CHOICE_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace jobwire {

class FairChoice {
 public:
  struct Candidate {
    std::string queue;
    int32_t weight = 1;  // values < 1 count as 1
  };

  // Chooses one of `eligible` (non-empty) and returns its index.
  size_t Choose(const std::vector<Candidate>& eligible);

 private:
  std::map<std::string, int64_t> credit_;
};

}  // namespace jobwire

#endif  // JOBWIRE_SERVER_SCHEDULING_FAIR_CHOICE_H_
