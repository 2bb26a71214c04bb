// SQLite's memory allocator for jobwire. Internal to storage/.
//
// Debian's SQLite is built without lookaside memory (SQLITE_OMIT_LOOKASIDE),
// so every statement execution mallocs and frees a dozen small blocks (record
// buffers, text columns read into registers, cursors), about 60 per job on
// the store's writer, and glibc's per-thread cache holds only 7 blocks per
// size; b-tree balances take page-sized buffers, which glibc serves from its
// slower bins. This allocator keeps, per thread, a bounded stack of freed
// blocks for each size class up to 16 KiB, so that a statement's blocks are
// reused by the next statement; larger blocks go straight to malloc.
//
// Thread-safe: a block may be freed on another thread than the one that
// allocated it (it joins that thread's cache). Each thread caches at most 64
// blocks per class and 1 MiB in all, and gives them back to malloc when it
// exits.
#ifndef JOBWIRE_SERVER_STORAGE_SQLITE_MALLOC_H_
#define JOBWIRE_SERVER_STORAGE_SQLITE_MALLOC_H_

namespace jobwire {

// Installs the allocator and turns off SQLite's memory count
// (sqlite3_memory_used, which jobwire never reads; it takes a process-wide
// mutex on every allocation). SQLite allows this only before it initializes,
// i.e. before the first connection of the process: later calls, and calls in
// builds with AddressSanitizer (which must see every block), change nothing.
// Returns true when the allocator is installed. Idempotent.
bool InstallSqliteMalloc();

}  // namespace jobwire

#endif  // JOBWIRE_SERVER_STORAGE_SQLITE_MALLOC_H_
