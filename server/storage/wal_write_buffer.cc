#include "server/storage/wal_write_buffer.h"

#include <sqlite3.h>

#include <algorithm>
#include <atomic>
#include <new>
#include <string>

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
  sqlite3_file base;  // first: SQLite sees this
  sqlite3_file* real;
  std::string* gathered;  // bytes not yet written, from offset `start`
  sqlite3_int64 start;
};

GatherFile* Cast(sqlite3_file* f) { return reinterpret_cast<GatherFile*>(f); }
sqlite3_file* Real(sqlite3_file* f) { return Cast(f)->real; }
const sqlite3_io_methods& RealMethods(sqlite3_file* f) {
  return *Real(f)->pMethods;
}

int Flush(GatherFile* g) {
  const std::string& buf = *g->gathered;
  int rc = SQLITE_OK;
  for (size_t done = 0; done < buf.size() && rc == SQLITE_OK;) {
    const size_t n = std::min(buf.size() - done, kMaxWrite);
    rc = g->real->pMethods->xWrite(g->real, buf.data() + done,
                                   static_cast<int>(n),
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
  const int rc = RealMethods(f).xClose(g->real);
  delete g->gathered;
  g->gathered = nullptr;
  return flushed != SQLITE_OK ? flushed : rc;
}

int GatherRead(sqlite3_file* f, void* out, int amount, sqlite3_int64 offset) {
  if (int rc = Flush(Cast(f)); rc != SQLITE_OK) return rc;
  return RealMethods(f).xRead(Real(f), out, amount, offset);
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
  return RealMethods(f).xTruncate(Real(f), size);
}

int GatherSync(sqlite3_file* f, int flags) {
  if (int rc = Flush(Cast(f)); rc != SQLITE_OK) return rc;
  return RealMethods(f).xSync(Real(f), flags);
}

int GatherFileSize(sqlite3_file* f, sqlite3_int64* size) {
  if (int rc = Flush(Cast(f)); rc != SQLITE_OK) return rc;
  return RealMethods(f).xFileSize(Real(f), size);
}

int GatherLock(sqlite3_file* f, int lock) {
  return RealMethods(f).xLock(Real(f), lock);
}

int GatherUnlock(sqlite3_file* f, int lock) {
  return RealMethods(f).xUnlock(Real(f), lock);
}

int GatherCheckReservedLock(sqlite3_file* f, int* out) {
  return RealMethods(f).xCheckReservedLock(Real(f), out);
}

// Any file control may touch the file (a size hint extends it, a sync
// syncs): the gathered bytes go first.
int GatherFileControl(sqlite3_file* f, int op, void* arg) {
  if (int rc = Flush(Cast(f)); rc != SQLITE_OK) return rc;
  return RealMethods(f).xFileControl(Real(f), op, arg);
}

int GatherSectorSize(sqlite3_file* f) {
  return RealMethods(f).xSectorSize(Real(f));
}

int GatherDeviceCharacteristics(sqlite3_file* f) {
  return RealMethods(f).xDeviceCharacteristics(Real(f));
}

int GatherShmMap(sqlite3_file* f, int region, int size, int extend,
                 void volatile** out) {
  return RealMethods(f).xShmMap(Real(f), region, size, extend, out);
}

int GatherShmLock(sqlite3_file* f, int offset, int n, int flags) {
  return RealMethods(f).xShmLock(Real(f), offset, n, flags);
}

void GatherShmBarrier(sqlite3_file* f) { RealMethods(f).xShmBarrier(Real(f)); }

int GatherShmUnmap(sqlite3_file* f, int delete_flag) {
  return RealMethods(f).xShmUnmap(Real(f), delete_flag);
}

int GatherFetch(sqlite3_file* f, sqlite3_int64 offset, int amount, void** out) {
  if (int rc = Flush(Cast(f)); rc != SQLITE_OK) return rc;
  return RealMethods(f).xFetch(Real(f), offset, amount, out);
}

int GatherUnfetch(sqlite3_file* f, sqlite3_int64 offset, void* page) {
  return RealMethods(f).xUnfetch(Real(f), offset, page);
}

// Methods of the version the default VFS's WAL file has (3 on Unix), so
// SQLite calls no method the real file lacks.
sqlite3_io_methods MethodsOfVersion(int version) {
  sqlite3_io_methods m{};
  m.iVersion = version;
  m.xClose = GatherClose;
  m.xRead = GatherRead;
  m.xWrite = GatherWrite;
  m.xTruncate = GatherTruncate;
  m.xSync = GatherSync;
  m.xFileSize = GatherFileSize;
  m.xLock = GatherLock;
  m.xUnlock = GatherUnlock;
  m.xCheckReservedLock = GatherCheckReservedLock;
  m.xFileControl = GatherFileControl;
  m.xSectorSize = GatherSectorSize;
  m.xDeviceCharacteristics = GatherDeviceCharacteristics;
  if (version >= 2) {
    m.xShmMap = GatherShmMap;
    m.xShmLock = GatherShmLock;
    m.xShmBarrier = GatherShmBarrier;
    m.xShmUnmap = GatherShmUnmap;
  }
  if (version >= 3) {
    m.xFetch = GatherFetch;
    m.xUnfetch = GatherUnfetch;
  }
  return m;
}

const sqlite3_io_methods kMethods[] = {MethodsOfVersion(1), MethodsOfVersion(2),
                                       MethodsOfVersion(3)};

sqlite3_vfs* Base(sqlite3_vfs* vfs) {
  return static_cast<sqlite3_vfs*>(vfs->pAppData);
}

int GatherOpen(sqlite3_vfs* vfs, const char* name, sqlite3_file* file,
               int flags, int* out_flags) {
  sqlite3_vfs* base = Base(vfs);
  // Every other file is the default VFS's own, in the same memory.
  if ((flags & SQLITE_OPEN_WAL) == 0)
    return base->xOpen(base, name, file, flags, out_flags);
  GatherFile* g = Cast(file);
  g->base.pMethods = nullptr;
  g->real = reinterpret_cast<sqlite3_file*>(g + 1);
  g->real->pMethods = nullptr;
  const int rc = base->xOpen(base, name, g->real, flags, out_flags);
  if (rc != SQLITE_OK) {
    if (g->real->pMethods != nullptr) g->real->pMethods->xClose(g->real);
    return rc;
  }
  const int version = g->real->pMethods->iVersion;
  if (version < 1 || version > 3) {  // a newer SQLite: leave its file alone
    g->real->pMethods->xClose(g->real);
    return SQLITE_CANTOPEN;
  }
  g->gathered = new (std::nothrow) std::string();
  if (g->gathered == nullptr) {
    g->real->pMethods->xClose(g->real);
    return SQLITE_NOMEM;
  }
  g->start = 0;
  g->base.pMethods = &kMethods[version - 1];
  return SQLITE_OK;
}

int GatherDelete(sqlite3_vfs* vfs, const char* name, int sync_dir) {
  return Base(vfs)->xDelete(Base(vfs), name, sync_dir);
}

int GatherAccess(sqlite3_vfs* vfs, const char* name, int flags, int* out) {
  return Base(vfs)->xAccess(Base(vfs), name, flags, out);
}

int GatherFullPathname(sqlite3_vfs* vfs, const char* name, int size,
                       char* out) {
  return Base(vfs)->xFullPathname(Base(vfs), name, size, out);
}

void* GatherDlOpen(sqlite3_vfs* vfs, const char* name) {
  return Base(vfs)->xDlOpen(Base(vfs), name);
}

void GatherDlError(sqlite3_vfs* vfs, int size, char* out) {
  Base(vfs)->xDlError(Base(vfs), size, out);
}

void (*GatherDlSym(sqlite3_vfs* vfs, void* handle, const char* symbol))(void) {
  return Base(vfs)->xDlSym(Base(vfs), handle, symbol);
}

void GatherDlClose(sqlite3_vfs* vfs, void* handle) {
  Base(vfs)->xDlClose(Base(vfs), handle);
}

int GatherRandomness(sqlite3_vfs* vfs, int size, char* out) {
  return Base(vfs)->xRandomness(Base(vfs), size, out);
}

int GatherSleep(sqlite3_vfs* vfs, int micros) {
  return Base(vfs)->xSleep(Base(vfs), micros);
}

int GatherCurrentTime(sqlite3_vfs* vfs, double* out) {
  return Base(vfs)->xCurrentTime(Base(vfs), out);
}

int GatherGetLastError(sqlite3_vfs* vfs, int size, char* out) {
  return Base(vfs)->xGetLastError(Base(vfs), size, out);
}

int GatherCurrentTimeInt64(sqlite3_vfs* vfs, sqlite3_int64* out) {
  return Base(vfs)->xCurrentTimeInt64(Base(vfs), out);
}

bool Register() {
  sqlite3_vfs* base = sqlite3_vfs_find(nullptr);
  if (base == nullptr || base->iVersion < 2) return false;
  static sqlite3_vfs vfs{};
  vfs.iVersion = 2;
  // The real file follows GatherFile, which keeps it 8-byte aligned.
  static_assert(sizeof(GatherFile) % 8 == 0);
  vfs.szOsFile = static_cast<int>(sizeof(GatherFile)) + base->szOsFile;
  vfs.mxPathname = base->mxPathname;
  vfs.zName = kWalWriteBufferVfs;
  vfs.pAppData = base;
  vfs.xOpen = GatherOpen;
  vfs.xDelete = GatherDelete;
  vfs.xAccess = GatherAccess;
  vfs.xFullPathname = GatherFullPathname;
  vfs.xDlOpen = GatherDlOpen;
  vfs.xDlError = GatherDlError;
  vfs.xDlSym = GatherDlSym;
  vfs.xDlClose = GatherDlClose;
  vfs.xRandomness = GatherRandomness;
  vfs.xSleep = GatherSleep;
  vfs.xCurrentTime = GatherCurrentTime;
  vfs.xGetLastError = GatherGetLastError;
  vfs.xCurrentTimeInt64 = GatherCurrentTimeInt64;
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
