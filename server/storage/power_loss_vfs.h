// PowerLossVfs: a SQLite VFS that shows what a power cut would leave on
// disk, at many points of a real store's run. Test-only.
//
// It wraps SQLite's Unix VFS and becomes the process's default VFS, so every
// connection of a store sits on it, the writer's too: the WAL write buffer
// (wal_write_buffer.h) registers over whatever VFS is the default when it
// first registers, so InstallPowerLossVfs() must run before any store opens
// (the test checks that the buffer sits on this VFS).
//
// For each file under the armed folder (the database, its -wal and a
// rollback -journal; never the -shm, which is memory), it keeps the durable
// image, what the file's last xSync covered, and the writes, truncates and
// deletes since then. Writes still reach the real file, so the store runs as
// usual; a sync makes the pending operations durable in the image and does
// not call fsync (the image is the disk; the real file's fate does not
// matter). A new file is durable from its first sync (the Unix VFS syncs
// the directory then); a delete is durable at the next sync in the folder.
//
// A cut is taken just before a random write, truncate or sync to a tracked
// file (a gap of 1 to 2 * mean_ops_between_cuts operations from the
// previous one; for half of the cuts, the first operation after the gap of
// a kind drawn among WAL write, WAL sync, database write and database sync,
// so that rare ones get cuts too), on the thread doing it, under the lock
// that orders every tracked operation: it copies every durable image, and, in
// half of the cuts ("torn"), also a random subset of the pending operations,
// each write kept whole or as a prefix cut at a 512-byte boundary (what a disk
// may persist of writes not yet synced, which it may reorder). So a cut lands
// anywhere: in a commit's WAL writes, between them and the fdatasync, inside a
// checkpoint's copy of WAL pages into the database, or between a
// checkpoint's writes and its sync. The run goes on after a cut (a cut is a
// snapshot, not a stop): every snapshot is exactly what power lost at that
// instant leaves.
//
// Ordering: PowerLossCutsStarted() rises when a cut begins, under the same
// lock as the syncs. A write whose `done` ran OK when it read k-1 or
// less had its sync finish before cut k began (if the store is right), so
// cut k must hold it.
//
// Thread-safe. One armed folder at a time; files elsewhere pass straight to
// the Unix VFS.
#ifndef JOBWIRE_SERVER_STORAGE_POWER_LOSS_VFS_H_
#define JOBWIRE_SERVER_STORAGE_POWER_LOSS_VFS_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace jobwire::test {

inline constexpr char kPowerLossVfs[] = "jobwire-power-loss";

struct PowerLossCut {
  int64_t index = 0;  // 1-based, in the order the cuts began
  // The operation it came just before: "<file> <op>", file one of "db",
  // "wal", "journal"; op one of "write", "truncate", "sync".
  std::string before;
  bool torn = false;  // a random subset of the pending writes kept
  // Bytes pending (written, not synced) in the -wal at the cut.
  int64_t wal_pending_bytes = 0;
  // File name (no folder) -> durable bytes; a file absent here is absent.
  std::map<std::string, std::string> files;
};

struct PowerLossArm {
  std::string dir;  // absolute folder whose files are tracked
  int64_t mean_ops_between_cuts = 30;
  uint64_t seed = 1;
  int64_t max_cuts = 25;  // no cut after this many
};

// Registers the VFS as SQLite's default (once per process; thread-safe).
// False when SQLite refuses.
bool InstallPowerLossVfs();

// Starts tracking `arm.dir` (its files must not exist yet) and cutting.
void ArmPowerLoss(const PowerLossArm& arm);
// Stops tracking and cutting; returns the cuts taken since ArmPowerLoss.
std::vector<PowerLossCut> DisarmPowerLoss();
// Cuts begun since the process started (never goes back).
int64_t PowerLossCutsStarted();
// Cuts taken since ArmPowerLoss.
int64_t PowerLossCutsTaken();

// Writes the cut's files into `dir` (an existing, empty folder).
absl::Status MaterializeCut(const PowerLossCut& cut, const std::string& dir);

}  // namespace jobwire::test

#endif  // JOBWIRE_SERVER_STORAGE_POWER_LOSS_VFS_H_
