#include "server/storage/wal_write_buffer.h"

#include <sqlite3.h>

#include <algorithm>
#include <atomic>
#include <new>
#include <string>

#include "server/storage/sqlite_vfs_shim.h"

namespace jobwire {
namespace {

// Gathered bytes beyond this are written at once.
constexpr size_t kMaxGathered = 1 << 20;
// The most one xWrite of the Unix VFS writes: it masks the length with
// 0x1ffff (seekAndWriteFd) and reports a shorter write as SQLITE_FULL.
constexpr size_t kMaxWrite = 120 * 1024;

std::atomic<int64_t> writes_gathered{0};
std::atomic<int64_t> writes_issued{0};

// A WAL file: the default VFS's file right behind it, in the same block.
struct GatherFile {
  ShimFile shim;          // first: SQLite sees shim.base
  std::string* gathered;  // bytes not yet written, from offset `start`
  sqlite3_int64 start;
};
static_assert(sizeof(GatherFile) % 8 == 0);  // keeps the real file aligned

GatherFile* Cast(sqlite3_file* f) { return reinterpret_cast<GatherFile*>(f); }

int Flush(GatherFile* g) {
  const std::string& buf = *g->gathered;
  sqlite3_file* real = g->shim.real;
  int rc = SQLITE_OK;
  for (size_t done = 0; done < buf.size() && rc == SQLITE_OK;) {
    const size_t n = std::min(buf.size() - done, kMaxWrite);
    rc = real->pMethods->xWrite(real, buf.data() + done, static_cast<int>(n),
                                g->start + static_cast<sqlite3_int64>(done));
    writes_issued.fetch_add(1, std::memory_order_relaxed);
    done += n;
  }
  g->gathered->clear();
  return rc;
}

int GatherClose(sqlite3_file* f) {
  GatherFile* g = Cast(f);
  const int flushed = Flush(g);
  const int rc = RealMethods(f).xClose(RealFile(f));
  delete g->gathered;
  g->gathered = nullptr;
  return flushed != SQLITE_OK ? flushed : rc;
}

int GatherRead(sqlite3_file* f, void* out, int amount, sqlite3_int64 offset) {
  if (int rc = Flush(Cast(f)); rc != SQLITE_OK) return rc;
  return RealMethods(f).xRead(RealFile(f), out, amount, offset);
}

int GatherWrite(sqlite3_file* f, const void* data, int amount,
                sqlite3_int64 offset) {
  GatherFile* g = Cast(f);
  writes_gathered.fetch_add(1, std::memory_order_relaxed);
  std::string& buf = *g->gathered;
  if (!buf.empty() &&
      offset != g->start + static_cast<sqlite3_int64>(buf.size())) {
    if (int rc = Flush(g); rc != SQLITE_OK) return rc;
  }
  if (buf.empty()) g->start = offset;
  buf.append(static_cast<const char*>(data), static_cast<size_t>(amount));
  return buf.size() >= kMaxGathered ? Flush(g) : SQLITE_OK;
}

int GatherTruncate(sqlite3_file* f, sqlite3_int64 size) {
  if (int rc = Flush(Cast(f)); rc != SQLITE_OK) return rc;
  return RealMethods(f).xTruncate(RealFile(f), size);
}

int GatherSync(sqlite3_file* f, int flags) {
  if (int rc = Flush(Cast(f)); rc != SQLITE_OK) return rc;
  return RealMethods(f).xSync(RealFile(f), flags);
}

int GatherFileSize(sqlite3_file* f, sqlite3_int64* size) {
  if (int rc = Flush(Cast(f)); rc != SQLITE_OK) return rc;
  return RealMethods(f).xFileSize(RealFile(f), size);
}

// Any file control may touch the file (a size hint extends it, a sync
// syncs): the gathered bytes go first.
int GatherFileControl(sqlite3_file* f, int op, void* arg) {
  if (int rc = Flush(Cast(f)); rc != SQLITE_OK) return rc;
  return RealMethods(f).xFileControl(RealFile(f), op, arg);
}

int GatherFetch(sqlite3_file* f, sqlite3_int64 offset, int amount, void** out) {
  if (int rc = Flush(Cast(f)); rc != SQLITE_OK) return rc;
  return RealMethods(f).xFetch(RealFile(f), offset, amount, out);
}

// Methods of the version the default VFS's WAL file has (3 on Unix), so
// SQLite calls no method the real file lacks; the rest forward to it.
sqlite3_io_methods MethodsOfVersion(int version) {
  sqlite3_io_methods m = ForwardingIoMethods(version);
  m.xClose = GatherClose;
  m.xRead = GatherRead;
  m.xWrite = GatherWrite;
  m.xTruncate = GatherTruncate;
  m.xSync = GatherSync;
  m.xFileSize = GatherFileSize;
  m.xFileControl = GatherFileControl;
  if (version >= 3) m.xFetch = GatherFetch;
  return m;
}

const sqlite3_io_methods kMethods[] = {MethodsOfVersion(1), MethodsOfVersion(2),
                                       MethodsOfVersion(3)};

int GatherOpen(sqlite3_vfs* vfs, const char* name, sqlite3_file* file,
               int flags, int* out_flags) {
  // Every other file is the default VFS's own, in the same memory.
  if ((flags & SQLITE_OPEN_WAL) == 0)
    return WrappedVfs(vfs)->xOpen(WrappedVfs(vfs), name, file, flags,
                                  out_flags);
  GatherFile* g = Cast(file);
  int version = 0;
  const int rc = OpenRealFile(vfs, name, &g->shim, sizeof(GatherFile), flags,
                              out_flags, &version);
  if (rc != SQLITE_OK) return rc;
  g->gathered = new (std::nothrow) std::string();
  if (g->gathered == nullptr) {
    g->shim.real->pMethods->xClose(g->shim.real);
    return SQLITE_NOMEM;
  }
  g->start = 0;
  g->shim.base.pMethods = &kMethods[version - 1];
  return SQLITE_OK;
}

bool Register() {
  sqlite3_vfs* base = sqlite3_vfs_find(nullptr);
  if (base == nullptr || base->iVersion < 2) return false;
  static sqlite3_vfs vfs =
      ForwardingVfs(base, kWalWriteBufferVfs, sizeof(GatherFile), GatherOpen);
  return sqlite3_vfs_register(&vfs, /*makeDflt=*/0) == SQLITE_OK;
}

}  // namespace

bool RegisterWalWriteBufferVfs() {
  static const bool registered = Register();
  return registered;
}

WalWriteBufferStats GetWalWriteBufferStats() {
  WalWriteBufferStats s;
  s.writes_gathered = writes_gathered.load(std::memory_order_relaxed);
  s.writes_issued = writes_issued.load(std::memory_order_relaxed);
  return s;
}

}  // namespace jobwire
