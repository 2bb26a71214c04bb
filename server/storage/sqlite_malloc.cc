#include "server/storage/sqlite_malloc.h"

#include <sqlite3.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>

namespace jobwire {
namespace {

#if defined(__SANITIZE_ADDRESS__)
constexpr bool kSanitized = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr bool kSanitized = true;
#else
constexpr bool kSanitized = false;
#endif
#else
constexpr bool kSanitized = false;
#endif

// Every block starts with a header holding its usable size; SQLite needs
// 8-byte alignment, which malloc's 16 keeps.
constexpr size_t kHeader = 8;
// Classes of 16 bytes up to 1 KiB (records, text columns, cursors), then of
// 256 bytes up to 16 KiB (page buffers and scratch of a b-tree balance).
constexpr size_t kSmallGranule = 16;
constexpr size_t kSmallMax = 1024;
constexpr size_t kLargeGranule = 256;
constexpr size_t kMaxClassBytes = 16384;  // usable bytes of the largest class
constexpr size_t kSmallClasses = kSmallMax / kSmallGranule;
constexpr size_t kClasses =
    kSmallClasses + (kMaxClassBytes - kSmallMax) / kLargeGranule;
constexpr uint32_t kMaxCachedPerClass = 64;
// Per thread, whatever the classes.
constexpr size_t kMaxCachedBytes = 1 << 20;

// Usable bytes of class c (0-based): 16, 32, ... 1024, 1280, ... 16384.
size_t ClassBytes(size_t c) {
  if (c < kSmallClasses) return (c + 1) * kSmallGranule;
  return kSmallMax + (c - kSmallClasses + 1) * kLargeGranule;
}
// The smallest class that holds n > 0 bytes (n <= kMaxClassBytes).
size_t ClassOf(size_t n) {
  if (n <= kSmallMax) return (n - 1) / kSmallGranule;
  return kSmallClasses + (n - kSmallMax - 1) / kLargeGranule;
}

struct FreeBlock {
  FreeBlock* next;
};

// The calling thread's freed blocks, per class (raw pointers to the
// blocks' starts, header included). Plain data, so that reaching it costs no
// initialization check; Drainer gives the blocks back at thread exit.
struct ThreadCache {
  FreeBlock* head[kClasses];
  uint32_t count[kClasses];
  size_t bytes;     // usable bytes of the cached blocks
  bool registered;  // the thread's Drainer exists
  bool drained;     // the thread is exiting: no more caching
};
thread_local ThreadCache cache = {};

struct Drainer {
  ~Drainer() {
    for (size_t c = 0; c < kClasses; ++c) {
      while (cache.head[c] != nullptr) {
        FreeBlock* b = cache.head[c];
        cache.head[c] = b->next;
        std::free(b);
      }
      cache.count[c] = 0;
    }
    cache.bytes = 0;
    cache.drained = true;
  }
};
thread_local Drainer drainer;

void* ToUser(void* raw, size_t usable) {
  std::memcpy(raw, &usable, sizeof(usable));
  return static_cast<char*>(raw) + kHeader;
}
void* ToRaw(void* user) { return static_cast<char*>(user) - kHeader; }

int Size(void* user) {
  size_t usable;
  std::memcpy(&usable, ToRaw(user), sizeof(usable));
  return static_cast<int>(usable);
}

void* Malloc(int n) {
  const size_t want = n <= 0 ? 1 : static_cast<size_t>(n);
  if (want > kMaxClassBytes) {
    void* raw = std::malloc(want + kHeader);
    return raw == nullptr ? nullptr : ToUser(raw, want);
  }
  const size_t c = ClassOf(want);
  FreeBlock* b = cache.head[c];
  if (b != nullptr) {
    cache.head[c] = b->next;
    --cache.count[c];
    cache.bytes -= ClassBytes(c);
    return ToUser(b, ClassBytes(c));
  }
  void* raw = std::malloc(ClassBytes(c) + kHeader);
  return raw == nullptr ? nullptr : ToUser(raw, ClassBytes(c));
}

void Free(void* user) {
  if (user == nullptr) return;
  const size_t usable = static_cast<size_t>(Size(user));
  void* raw = ToRaw(user);
  if (usable <= kMaxClassBytes) {
    // A block of a class holds exactly its class's bytes.
    const size_t c = ClassOf(usable);
    if (!cache.registered) {
      cache.registered = true;
      static_cast<void>(&drainer);  // constructs it: drained at thread exit
    }
    if (!cache.drained && cache.count[c] < kMaxCachedPerClass &&
        cache.bytes + usable <= kMaxCachedBytes) {
      auto* b = static_cast<FreeBlock*>(raw);
      b->next = cache.head[c];
      cache.head[c] = b;
      ++cache.count[c];
      cache.bytes += usable;
      return;
    }
  }
  std::free(raw);
}

void* Realloc(void* user, int n) {
  if (user == nullptr) return Malloc(n);
  const size_t old = static_cast<size_t>(Size(user));
  const size_t want = n <= 0 ? 1 : static_cast<size_t>(n);
  if (want <= old && (old > kMaxClassBytes ? want > kMaxClassBytes
                                           : ClassOf(want) == ClassOf(old))) {
    return user;  // still the right class: keep the block
  }
  void* fresh = Malloc(n);
  if (fresh == nullptr) return nullptr;  // SQLite keeps the old block
  std::memcpy(fresh, user, old < want ? old : want);
  Free(user);
  return fresh;
}

int Roundup(int n) {
  if (n <= 0) return static_cast<int>(kSmallGranule);
  const size_t want = static_cast<size_t>(n);
  if (want > kMaxClassBytes) return n;
  return static_cast<int>(ClassBytes(ClassOf(want)));
}

int Init(void*) { return SQLITE_OK; }
void Shutdown(void*) {}

bool Install() {
  static const sqlite3_mem_methods kMethods = {
      &Malloc, &Free, &Realloc, &Size, &Roundup, &Init, &Shutdown, nullptr};
  const bool installed = !kSanitized && sqlite3_config(SQLITE_CONFIG_MALLOC,
                                                       &kMethods) == SQLITE_OK;
  sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
  return installed;
}

}  // namespace

bool InstallSqliteMalloc() {
  static const bool installed = Install();
  return installed;
}

}  // namespace jobwire
