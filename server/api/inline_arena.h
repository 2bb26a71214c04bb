// A protobuf Arena whose first block lives inside the object that holds it.
//
// A message built on it that fits in kBytes (with the arena's bookkeeping)
// costs no allocation beyond its holder's own: parsing or building it and
// freeing it is one malloc/free instead of one per submessage, map entry and
// string. Bigger messages spill into blocks the arena allocates.
//
// Not thread-safe beyond protobuf's own Arena rules; not copyable or movable
// (the arena points into this object).
#ifndef JOBWIRE_SERVER_API_INLINE_ARENA_H_
#define JOBWIRE_SERVER_API_INLINE_ARENA_H_

#include <google/protobuf/arena.h>

#include <cstddef>

namespace jobwire {

template <size_t kBytes>
class InlineArena {
 public:
  InlineArena() : arena_(Options(block_)) {}
  InlineArena(const InlineArena&) = delete;
  InlineArena& operator=(const InlineArena&) = delete;

  google::protobuf::Arena* get() { return &arena_; }

 private:
  static google::protobuf::ArenaOptions Options(char* block) {
    google::protobuf::ArenaOptions options;
    options.initial_block = block;
    options.initial_block_size = kBytes;
    return options;
  }

  // Declared before arena_, which is built on it.
  alignas(std::max_align_t) char block_[kBytes];
  google::protobuf::Arena arena_;
};

}  // namespace jobwire

#endif  // JOBWIRE_SERVER_API_INLINE_ARENA_H_
