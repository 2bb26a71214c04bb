// A SQLite VFS that gathers a transaction's writes to the WAL and writes them
// with one pwrite when SQLite syncs the WAL. Internal to storage/.
//
// SQLite writes every WAL frame with two pwrites (its 24-byte header, then
// the page), so a durable commit of N pages costs 2N system calls before its
// fdatasync: about 20 for a one-job submit, 50 for a group commit of 17.
// This VFS wraps the default one; for WAL files only, consecutive appends are
// kept in memory and written as one pwrite when SQLite next syncs, reads,
// sizes or truncates the file, writes elsewhere than at the end of what is
// gathered, closes it, or when 1 MiB is gathered (in writes of at most
// 120 KiB, the most the Unix VFS writes at once). The file's contents after
// any of those are exactly what direct writes would have left; only the
// moment data reaches the kernel moves, to just before the sync.
//
// Sound only for a connection whose every commit syncs the WAL
// (PRAGMA synchronous = FULL or EXTRA): SQLite publishes a commit's frames to
// other connections (the wal-index) after the commit's sync, so they never
// see a frame that is still gathered. With NORMAL or OFF a commit does not
// sync and other connections would read frames that are not in the file:
// never open such a connection with this VFS.
//
// A write error surfaces at the flush, from xSync (or the read, truncate...),
// with SQLite's code for it (SQLITE_FULL, SQLITE_IOERR_WRITE): the commit
// fails and nothing is acknowledged.
//
// Thread-safety: as SQLite's own file objects (one connection uses a file at
// a time); the counters are atomic.
#ifndef JOBWIRE_SERVER_STORAGE_WAL_WRITE_BUFFER_H_
#define JOBWIRE_SERVER_STORAGE_WAL_WRITE_BUFFER_H_

#include <cstdint>

namespace jobwire {

// The VFS's name, for sqlite3_open_v2 (SQLiteCpp: Database's aVfs).
inline constexpr char kWalWriteBufferVfs[] = "jobwire-wal-gather";

// Registers the VFS over SQLite's default VFS (not as the default). Returns
// false when SQLite has no default VFS or refuses. Idempotent, thread-safe.
bool RegisterWalWriteBufferVfs();

// Process-wide totals since start, for tests and benchmarks.
struct WalWriteBufferStats {
  int64_t writes_gathered = 0;  // xWrite calls to WAL files
  int64_t writes_issued = 0;    // pwrites they became
};
WalWriteBufferStats GetWalWriteBufferStats();

}  // namespace jobwire

#endif  // JOBWIRE_SERVER_STORAGE_WAL_WRITE_BUFFER_H_
