// The raw SQLite floor under durable submits: what a benchmark compares the
// store (store_bench) or a whole server (submit_bench's batch case) with, in
// the same run and on the same disk.
//
// RawInserts writes job rows straight through SQLiteCpp with the schema the
// store migrates to (WAL, synchronous=FULL, a fresh database in a temporary
// directory under `dir`, removed afterwards): `per_txn` jobs per
// transaction, each with one prepared single-row INSERT per table. With
// `full`, each job also gets what a submit writes beside it: its label row
// and its `submitted` event row. Not thread-safe across calls on one
// TempDb; each call makes its own. Exits the process when the database
// cannot be made (a benchmark has nothing to measure then).
#ifndef JOBWIRE_TOOLS_BENCH_RAW_FLOOR_H_
#define JOBWIRE_TOOLS_BENCH_RAW_FLOOR_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "server/core/job.h"

namespace jobwire::bench {

// A fresh directory `parent`/jobwire-bench-XXXXXX holding one database
// path(); the directory and the database's files are removed on
// destruction.
class TempDb {
 public:
  explicit TempDb(const std::string& parent);
  ~TempDb();
  TempDb(const TempDb&) = delete;
  TempDb& operator=(const TempDb&) = delete;

  std::string path() const { return dir_ + "/bench.db"; }

 private:
  std::string dir_;
};

struct RawResult {
  std::string name;
  int64_t jobs = 0;
  double seconds = 0;
  // The duration of each COMMIT (with synchronous=FULL, the fsync of the
  // WAL): the disk's floor under any durable ack.
  std::vector<absl::Duration> commits;
  double rate() const { return seconds > 0 ? jobs / seconds : 0; }
};

// The job every raw and store case writes: queue "bench", one label, small
// args.
Job SampleJob();

// Writes for `seconds` (see the file comment).
RawResult RawInserts(const std::string& dir, double seconds, int per_txn,
                     bool full);

}  // namespace jobwire::bench

#endif  // JOBWIRE_TOOLS_BENCH_RAW_FLOOR_H_
