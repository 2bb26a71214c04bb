// Building blocks of a SQLite VFS that wraps another one and changes a few
// of its file methods (wal_write_buffer.h; the tests' power_loss_vfs.h).
// Internal to storage/.
//
// A wrapped file is one block of the VFS's szOsFile bytes: the shim's own
// struct, which starts with a ShimFile (what SQLite sees, and a pointer to
// the real file), then the wrapped VFS's file right behind it. Every method
// the shim does not replace forwards to the real file; every VFS method but
// xOpen forwards to the wrapped VFS, kept in pAppData.
//
// Thread-safety: these functions keep no state.
#ifndef JOBWIRE_SERVER_STORAGE_SQLITE_VFS_SHIM_H_
#define JOBWIRE_SERVER_STORAGE_SQLITE_VFS_SHIM_H_

#include <sqlite3.h>

#include <cstddef>

namespace jobwire {

// The head of a shim's file struct (its first member).
struct ShimFile {
  sqlite3_file base;  // first: SQLite sees this
  sqlite3_file* real;
};

inline ShimFile* AsShim(sqlite3_file* f) {
  return reinterpret_cast<ShimFile*>(f);
}
inline sqlite3_file* RealFile(sqlite3_file* f) { return AsShim(f)->real; }
inline const sqlite3_io_methods& RealMethods(sqlite3_file* f) {
  return *RealFile(f)->pMethods;
}
inline sqlite3_vfs* WrappedVfs(sqlite3_vfs* vfs) {
  return static_cast<sqlite3_vfs*>(vfs->pAppData);
}

// File methods of `version` (1 to 3) that forward every call to the real
// file; a shim replaces the ones it changes.
sqlite3_io_methods ForwardingIoMethods(int version);

// Opens `name` on the wrapped VFS of `vfs` into the memory right after the
// shim's struct (`head`, of `head_size` bytes, a multiple of 8) and points
// head->real at it; head->base.pMethods stays null for the caller to set.
// Sets *version to the real file's methods version; SQLITE_CANTOPEN (the
// file closed) for one above 3, which a shim cannot forward.
int OpenRealFile(sqlite3_vfs* vfs, const char* name, ShimFile* head,
                 size_t head_size, int flags, int* out_flags, int* version);

// A VFS named `name` over `wrapped`, with files of `head_size` bytes before
// the wrapped VFS's own, whose methods all forward to `wrapped` but
// xOpen (`open`). Register it with sqlite3_vfs_register; it must live as
// long as the process (SQLite keeps the pointer).
sqlite3_vfs ForwardingVfs(sqlite3_vfs* wrapped, const char* name,
                          size_t head_size,
                          int (*open)(sqlite3_vfs*, const char*, sqlite3_file*,
                                      int, int*));

}  // namespace jobwire

#endif  // JOBWIRE_SERVER_STORAGE_SQLITE_VFS_SHIM_H_
