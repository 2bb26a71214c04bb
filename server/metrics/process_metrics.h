// ProcessSample: the standard process_* metrics of the Prometheus client
// libraries (process_resident_memory_bytes, process_start_time_seconds, ...),
// read from /proc/self on Linux.
//
// Thread-safe (reads files only). Blocking: a few small /proc reads.
#ifndef JOBWIRE_SERVER_METRICS_PROCESS_METRICS_H_
#define JOBWIRE_SERVER_METRICS_PROCESS_METRICS_H_

#include <cstdint>

#include "absl/status/statusor.h"

namespace jobwire {

struct ProcessSample {
  double cpu_seconds = 0;         // user + system CPU time
  double start_time_seconds = 0;  // since the Unix epoch
  int64_t resident_memory_bytes = 0;
  int64_t virtual_memory_bytes = 0;
  int64_t open_fds = 0;
  int64_t max_fds = 0;  // the soft RLIMIT_NOFILE
};

// INTERNAL when /proc/self/stat or /proc/stat cannot be read or parsed
// (e.g. no /proc mounted).
absl::StatusOr<ProcessSample> ReadProcessSampleBlocking();

}  // namespace jobwire

#endif  // JOBWIRE_SERVER_METRICS_PROCESS_METRICS_H_
