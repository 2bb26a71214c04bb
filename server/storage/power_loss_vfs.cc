#include "server/storage/power_loss_vfs.h"

#include <sqlite3.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <random>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "server/storage/sqlite_vfs_shim.h"

namespace jobwire::test {
namespace {

// What happened to a file since its last sync.
struct PendingOp {
  enum Kind { kWrite, kTruncate } kind = kWrite;
  sqlite3_int64 offset = 0;  // a write's offset, a truncate's size
  std::string data;          // a write's bytes
};

struct TrackedFile {
  std::string name;  // without the folder
  const char* kind;  // "db", "wal", "journal"
  bool exists = false;
  std::string durable;
  std::vector<PendingOp> pending;
  // Deleted, not yet durably: the durable image stays until a sync in the
  // folder; `pending` then belongs to the file made again under the name.
  bool delete_pending = false;
};

void Apply(const PendingOp& op, size_t keep, std::string& image) {
  if (op.kind == PendingOp::kTruncate) {
    image.resize(static_cast<size_t>(op.offset));
    return;
  }
  const size_t offset = static_cast<size_t>(op.offset);
  if (image.size() < offset + keep) image.resize(offset + keep);
  std::memcpy(image.data() + offset, op.data.data(), keep);
}

class State {
 public:
  void Arm(const PowerLossArm& arm) {
    absl::MutexLock lock(&mu_);
    armed_ = true;
    dir_ = arm.dir;
    files_.clear();
    cuts_.clear();
    rng_.seed(arm.seed);
    mean_ = std::max<int64_t>(1, arm.mean_ops_between_cuts);
    max_cuts_ = arm.max_cuts;
    ops_to_cut_ = NextGapLocked();
    wanted_.clear();
  }

  std::vector<PowerLossCut> Disarm() {
    absl::MutexLock lock(&mu_);
    armed_ = false;
    files_.clear();
    return std::move(cuts_);
  }

  int64_t CutsTaken() {
    absl::MutexLock lock(&mu_);
    return static_cast<int64_t>(cuts_.size());
  }

  // The tracked kind of `path` opened with `flags`, or null.
  const char* KindOf(const char* path, int flags) {
    if (path == nullptr) return nullptr;
    const char* kind = (flags & SQLITE_OPEN_MAIN_DB)        ? "db"
                       : (flags & SQLITE_OPEN_WAL)          ? "wal"
                       : (flags & SQLITE_OPEN_MAIN_JOURNAL) ? "journal"
                                                            : nullptr;
    absl::MutexLock lock(&mu_);
    if (kind == nullptr || !armed_ || !absl::StartsWith(path, dir_ + "/"))
      return nullptr;
    TrackedFile& f = files_[path];
    f.name = std::string(path).substr(dir_.size() + 1);
    f.kind = kind;
    return kind;
  }

  void Write(const std::string& path, const void* data, int amount,
             sqlite3_int64 offset) {
    absl::MutexLock lock(&mu_);
    TrackedFile* f = FindLocked(path);
    if (f == nullptr) return;
    MaybeCutLocked(*f, "write");
    PendingOp op;
    op.offset = offset;
    op.data.assign(static_cast<const char*>(data), static_cast<size_t>(amount));
    f->pending.push_back(std::move(op));
  }

  void Truncate(const std::string& path, sqlite3_int64 size) {
    absl::MutexLock lock(&mu_);
    TrackedFile* f = FindLocked(path);
    if (f == nullptr) return;
    MaybeCutLocked(*f, "truncate");
    PendingOp op;
    op.kind = PendingOp::kTruncate;
    op.offset = size;
    f->pending.push_back(std::move(op));
  }

  // False when `path` is not tracked (the real file must be synced).
  bool Sync(const std::string& path) {
    absl::MutexLock lock(&mu_);
    TrackedFile* f = FindLocked(path);
    if (f == nullptr) return false;
    MaybeCutLocked(*f, "sync");
    // fsync commits the folder's pending deletes with it (as a journaling
    // file system does), then this file's data and its name.
    for (auto& [name, other] : files_) {
      if (!other.delete_pending) continue;
      other.delete_pending = false;
      other.exists = false;
      other.durable.clear();
    }
    for (const PendingOp& op : f->pending)
      Apply(op, op.data.size(), f->durable);
    f->pending.clear();
    f->exists = true;
    return true;
  }

  void Delete(const char* path, bool sync_dir) {
    absl::MutexLock lock(&mu_);
    TrackedFile* f = path == nullptr ? nullptr : FindLocked(path);
    if (f == nullptr) return;
    f->pending.clear();
    f->delete_pending = true;
    if (sync_dir) {
      f->delete_pending = false;
      f->exists = false;
      f->durable.clear();
    }
  }

 private:
  TrackedFile* FindLocked(const std::string& path)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (!armed_) return nullptr;
    auto it = files_.find(path);
    return it == files_.end() ? nullptr : &it->second;
  }

  int64_t NextGapLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return 1 + static_cast<int64_t>(rng_() % static_cast<uint64_t>(2 * mean_));
  }

  void MaybeCutLocked(const TrackedFile& at, const char* op)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (static_cast<int64_t>(cuts_.size()) >= max_cuts_) return;
    if (ops_to_cut_ > 0) --ops_to_cut_;
    if (ops_to_cut_ > 0) return;
    std::string before = absl::StrCat(at.kind, " ", op);
    // Half of the cuts wait for an operation of a kind drawn at the gap's
    // end, so that rare ones (a checkpoint's sync of the database) get cuts
    // too.
    if (!wanted_.empty() && before != wanted_) return;
    ops_to_cut_ = NextGapLocked();
    static constexpr const char* kKinds[] = {"wal write", "wal sync",
                                             "db write", "db sync"};
    wanted_ = rng_() % 2 == 0 ? "" : kKinds[rng_() % 4];
    PowerLossCut cut;
    cut.index = ++cuts_started_;
    cut.before = std::move(before);
    cut.torn = rng_() % 2 == 1;
    for (const auto& [path, f] : files_) {
      if (absl::string_view(f.kind) == "wal") {
        for (const PendingOp& p : f.pending)
          cut.wal_pending_bytes += static_cast<int64_t>(p.data.size());
      }
      bool exists = f.exists;
      std::string image = f.durable;
      if (cut.torn) {
        bool deleted = false;
        if (f.delete_pending && rng_() % 2 == 1) {
          deleted = true;
          exists = false;
          image.clear();
        }
        if (!f.delete_pending || deleted) {
          for (const PendingOp& p : f.pending) {
            if (rng_() % 2 == 0) continue;
            size_t keep = p.data.size();
            if (p.kind == PendingOp::kWrite && rng_() % 4 == 0)
              keep = (rng_() % (keep / 512 + 1)) * 512;
            Apply(p, keep, image);
            exists = true;
          }
        }
      }
      if (exists) cut.files[f.name] = std::move(image);
    }
    cuts_.push_back(std::move(cut));
  }

 public:
  std::atomic<int64_t> cuts_started_{0};

 private:
  absl::Mutex mu_;
  bool armed_ ABSL_GUARDED_BY(mu_) = false;
  std::string dir_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, TrackedFile> files_ ABSL_GUARDED_BY(mu_);
  std::mt19937_64 rng_ ABSL_GUARDED_BY(mu_);
  int64_t mean_ ABSL_GUARDED_BY(mu_) = 1;
  int64_t max_cuts_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t ops_to_cut_ ABSL_GUARDED_BY(mu_) = 0;
  std::string wanted_ ABSL_GUARDED_BY(mu_);  // empty: any operation
  std::vector<PowerLossCut> cuts_ ABSL_GUARDED_BY(mu_);
};

State& TheState() {
  static State* state = new State();
  return *state;
}

// A tracked file: the Unix VFS's file right behind it, in the same block.
struct LossFile {
  ShimFile shim;  // first: SQLite sees shim.base
  std::string* path;
};
static_assert(sizeof(LossFile) % 8 == 0);  // keeps the real file aligned

const std::string& PathOf(sqlite3_file* f) {
  return *reinterpret_cast<LossFile*>(f)->path;
}

int LossClose(sqlite3_file* f) {
  const int rc = RealMethods(f).xClose(RealFile(f));
  auto* l = reinterpret_cast<LossFile*>(f);
  delete l->path;
  l->path = nullptr;
  return rc;
}

int LossWrite(sqlite3_file* f, const void* data, int amount,
              sqlite3_int64 offset) {
  TheState().Write(PathOf(f), data, amount, offset);
  return RealMethods(f).xWrite(RealFile(f), data, amount, offset);
}

int LossTruncate(sqlite3_file* f, sqlite3_int64 size) {
  TheState().Truncate(PathOf(f), size);
  return RealMethods(f).xTruncate(RealFile(f), size);
}

int LossSync(sqlite3_file* f, int flags) {
  // The image is the disk: a tracked file needs no real fsync.
  if (TheState().Sync(PathOf(f))) return SQLITE_OK;
  return RealMethods(f).xSync(RealFile(f), flags);
}

sqlite3_io_methods MethodsOfVersion(int version) {
  sqlite3_io_methods m = ForwardingIoMethods(version);
  m.xClose = LossClose;
  m.xWrite = LossWrite;
  m.xTruncate = LossTruncate;
  m.xSync = LossSync;
  return m;
}

const sqlite3_io_methods kMethods[] = {MethodsOfVersion(1), MethodsOfVersion(2),
                                       MethodsOfVersion(3)};

int LossOpen(sqlite3_vfs* vfs, const char* name, sqlite3_file* file, int flags,
             int* out_flags) {
  if (TheState().KindOf(name, flags) == nullptr)
    return WrappedVfs(vfs)->xOpen(WrappedVfs(vfs), name, file, flags,
                                  out_flags);
  auto* l = reinterpret_cast<LossFile*>(file);
  int version = 0;
  const int rc = OpenRealFile(vfs, name, &l->shim, sizeof(LossFile), flags,
                              out_flags, &version);
  if (rc != SQLITE_OK) return rc;
  l->path = new std::string(name);
  l->shim.base.pMethods = &kMethods[version - 1];
  return SQLITE_OK;
}

int LossDelete(sqlite3_vfs* vfs, const char* name, int sync_dir) {
  TheState().Delete(name, sync_dir != 0);
  return WrappedVfs(vfs)->xDelete(WrappedVfs(vfs), name, sync_dir);
}

bool Register() {
  sqlite3_vfs* unix_vfs = sqlite3_vfs_find("unix");
  if (unix_vfs == nullptr || unix_vfs->iVersion < 2) return false;
  static sqlite3_vfs vfs =
      ForwardingVfs(unix_vfs, kPowerLossVfs, sizeof(LossFile), LossOpen);
  vfs.xDelete = LossDelete;
  return sqlite3_vfs_register(&vfs, /*makeDflt=*/1) == SQLITE_OK;
}

}  // namespace

bool InstallPowerLossVfs() {
  static const bool registered = Register();
  return registered;
}

void ArmPowerLoss(const PowerLossArm& arm) { TheState().Arm(arm); }

std::vector<PowerLossCut> DisarmPowerLoss() { return TheState().Disarm(); }

int64_t PowerLossCutsStarted() { return TheState().cuts_started_.load(); }

int64_t PowerLossCutsTaken() { return TheState().CutsTaken(); }

absl::Status MaterializeCut(const PowerLossCut& cut, const std::string& dir) {
  for (const auto& [name, bytes] : cut.files) {
    const std::string path = absl::StrCat(dir, "/", name);
    std::FILE* out = std::fopen(path.c_str(), "wb");
    if (out == nullptr) return absl::InternalError("cannot create " + path);
    const bool ok =
        std::fwrite(bytes.data(), 1, bytes.size(), out) == bytes.size();
    if (std::fclose(out) != 0 || !ok)
      return absl::InternalError("cannot write " + path);
  }
  return absl::OkStatus();
}

}  // namespace jobwire::test
