// Facts about the machine a benchmark ran on, for the lines it writes to
// BENCHMARKS.md. Read from /proc and uname; "unknown" where unavailable.
#ifndef JOBWIRE_TOOLS_BENCH_MACHINE_H_
#define JOBWIRE_TOOLS_BENCH_MACHINE_H_

#include <string>

namespace jobwire::bench {

// "2 CPUs (AMD EPYC), kernel 6.1.0-18-amd64".
std::string MachineDescription();

// The three load averages of /proc/loadavg, "4.98 5.24 5.68".
std::string LoadAverage();

// CPU time (user + system) process `pid` has used so far, in seconds, from
// /proc/PID/stat; -1 when it cannot be read.
double ProcessCpuSeconds(int pid);

}  // namespace jobwire::bench

#endif  // JOBWIRE_TOOLS_BENCH_MACHINE_H_
