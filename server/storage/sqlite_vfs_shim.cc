#include "server/storage/sqlite_vfs_shim.h"

namespace jobwire {
namespace {

int Close(sqlite3_file* f) { return RealMethods(f).xClose(RealFile(f)); }

int Read(sqlite3_file* f, void* out, int amount, sqlite3_int64 offset) {
  return RealMethods(f).xRead(RealFile(f), out, amount, offset);
}

int Write(sqlite3_file* f, const void* data, int amount, sqlite3_int64 offset) {
  return RealMethods(f).xWrite(RealFile(f), data, amount, offset);
}

int Truncate(sqlite3_file* f, sqlite3_int64 size) {
  return RealMethods(f).xTruncate(RealFile(f), size);
}

int Sync(sqlite3_file* f, int flags) {
  return RealMethods(f).xSync(RealFile(f), flags);
}

int FileSize(sqlite3_file* f, sqlite3_int64* size) {
  return RealMethods(f).xFileSize(RealFile(f), size);
}

int Lock(sqlite3_file* f, int lock) {
  return RealMethods(f).xLock(RealFile(f), lock);
}

int Unlock(sqlite3_file* f, int lock) {
  return RealMethods(f).xUnlock(RealFile(f), lock);
}

int CheckReservedLock(sqlite3_file* f, int* out) {
  return RealMethods(f).xCheckReservedLock(RealFile(f), out);
}

int FileControl(sqlite3_file* f, int op, void* arg) {
  return RealMethods(f).xFileControl(RealFile(f), op, arg);
}

int SectorSize(sqlite3_file* f) {
  return RealMethods(f).xSectorSize(RealFile(f));
}

int DeviceCharacteristics(sqlite3_file* f) {
  return RealMethods(f).xDeviceCharacteristics(RealFile(f));
}

int ShmMap(sqlite3_file* f, int region, int size, int extend,
           void volatile** out) {
  return RealMethods(f).xShmMap(RealFile(f), region, size, extend, out);
}

int ShmLock(sqlite3_file* f, int offset, int n, int flags) {
  return RealMethods(f).xShmLock(RealFile(f), offset, n, flags);
}

void ShmBarrier(sqlite3_file* f) { RealMethods(f).xShmBarrier(RealFile(f)); }

int ShmUnmap(sqlite3_file* f, int delete_flag) {
  return RealMethods(f).xShmUnmap(RealFile(f), delete_flag);
}

int Fetch(sqlite3_file* f, sqlite3_int64 offset, int amount, void** out) {
  return RealMethods(f).xFetch(RealFile(f), offset, amount, out);
}

int Unfetch(sqlite3_file* f, sqlite3_int64 offset, void* page) {
  return RealMethods(f).xUnfetch(RealFile(f), offset, page);
}

int Delete(sqlite3_vfs* vfs, const char* name, int sync_dir) {
  return WrappedVfs(vfs)->xDelete(WrappedVfs(vfs), name, sync_dir);
}

int Access(sqlite3_vfs* vfs, const char* name, int flags, int* out) {
  return WrappedVfs(vfs)->xAccess(WrappedVfs(vfs), name, flags, out);
}

int FullPathname(sqlite3_vfs* vfs, const char* name, int size, char* out) {
  return WrappedVfs(vfs)->xFullPathname(WrappedVfs(vfs), name, size, out);
}

void* DlOpen(sqlite3_vfs* vfs, const char* name) {
  return WrappedVfs(vfs)->xDlOpen(WrappedVfs(vfs), name);
}

void DlError(sqlite3_vfs* vfs, int size, char* out) {
  WrappedVfs(vfs)->xDlError(WrappedVfs(vfs), size, out);
}

void (*DlSym(sqlite3_vfs* vfs, void* handle, const char* symbol))(void) {
  return WrappedVfs(vfs)->xDlSym(WrappedVfs(vfs), handle, symbol);
}

void DlClose(sqlite3_vfs* vfs, void* handle) {
  WrappedVfs(vfs)->xDlClose(WrappedVfs(vfs), handle);
}

int Randomness(sqlite3_vfs* vfs, int size, char* out) {
  return WrappedVfs(vfs)->xRandomness(WrappedVfs(vfs), size, out);
}

int Sleep(sqlite3_vfs* vfs, int micros) {
  return WrappedVfs(vfs)->xSleep(WrappedVfs(vfs), micros);
}

int CurrentTime(sqlite3_vfs* vfs, double* out) {
  return WrappedVfs(vfs)->xCurrentTime(WrappedVfs(vfs), out);
}

int GetLastError(sqlite3_vfs* vfs, int size, char* out) {
  return WrappedVfs(vfs)->xGetLastError(WrappedVfs(vfs), size, out);
}

int CurrentTimeInt64(sqlite3_vfs* vfs, sqlite3_int64* out) {
  return WrappedVfs(vfs)->xCurrentTimeInt64(WrappedVfs(vfs), out);
}

}  // namespace

sqlite3_io_methods ForwardingIoMethods(int version) {
  sqlite3_io_methods m{};
  m.iVersion = version;
  m.xClose = Close;
  m.xRead = Read;
  m.xWrite = Write;
  m.xTruncate = Truncate;
  m.xSync = Sync;
  m.xFileSize = FileSize;
  m.xLock = Lock;
  m.xUnlock = Unlock;
  m.xCheckReservedLock = CheckReservedLock;
  m.xFileControl = FileControl;
  m.xSectorSize = SectorSize;
  m.xDeviceCharacteristics = DeviceCharacteristics;
  if (version >= 2) {
    m.xShmMap = ShmMap;
    m.xShmLock = ShmLock;
    m.xShmBarrier = ShmBarrier;
    m.xShmUnmap = ShmUnmap;
  }
  if (version >= 3) {
    m.xFetch = Fetch;
    m.xUnfetch = Unfetch;
  }
  return m;
}

int OpenRealFile(sqlite3_vfs* vfs, const char* name, ShimFile* head,
                 size_t head_size, int flags, int* out_flags, int* version) {
  sqlite3_vfs* wrapped = WrappedVfs(vfs);
  head->base.pMethods = nullptr;
  head->real = reinterpret_cast<sqlite3_file*>(reinterpret_cast<char*>(head) +
                                               head_size);
  head->real->pMethods = nullptr;
  const int rc = wrapped->xOpen(wrapped, name, head->real, flags, out_flags);
  if (rc != SQLITE_OK) {
    if (head->real->pMethods != nullptr)
      head->real->pMethods->xClose(head->real);
    return rc;
  }
  *version = head->real->pMethods->iVersion;
  if (*version < 1 || *version > 3) {  // a newer SQLite: leave its file alone
    head->real->pMethods->xClose(head->real);
    return SQLITE_CANTOPEN;
  }
  return SQLITE_OK;
}

sqlite3_vfs ForwardingVfs(sqlite3_vfs* wrapped, const char* name,
                          size_t head_size,
                          int (*open)(sqlite3_vfs*, const char*, sqlite3_file*,
                                      int, int*)) {
  sqlite3_vfs vfs{};
  vfs.iVersion = 2;
  vfs.szOsFile = static_cast<int>(head_size) + wrapped->szOsFile;
  vfs.mxPathname = wrapped->mxPathname;
  vfs.zName = name;
  vfs.pAppData = wrapped;
  vfs.xOpen = open;
  vfs.xDelete = Delete;
  vfs.xAccess = Access;
  vfs.xFullPathname = FullPathname;
  vfs.xDlOpen = DlOpen;
  vfs.xDlError = DlError;
  vfs.xDlSym = DlSym;
  vfs.xDlClose = DlClose;
  vfs.xRandomness = Randomness;
  vfs.xSleep = Sleep;
  vfs.xCurrentTime = CurrentTime;
  vfs.xGetLastError = GetLastError;
  vfs.xCurrentTimeInt64 = CurrentTimeInt64;
  return vfs;
}

}  // namespace jobwire
