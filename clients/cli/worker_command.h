// `jobwire worker`: runs a shell command once per job it gets from the server.
//
//   jobwire worker --queue Q [--queue Q2:weight] [--kind K] [--slots N]
//                  [--grace 30s] [--server ADDR] --exec 'COMMAND'
//
// COMMAND runs through /bin/sh -c with the job's args as JSON on stdin and
// JOBWIRE_JOB_ID / JOBWIRE_ATTEMPT in its environment. Stdout lines
// `progress DONE/TOTAL [message]` become progress reports; exit 0 completes
// the job (a last stdout line that is a JSON object becomes the result);
// any other exit fails the attempt (retryable) with the tail of stderr as
// the message. SIGTERM or SIGINT drains: no new jobs, running ones get up to
// --grace to finish, then they are stopped and failed as retryable.
#ifndef JOBWIRE_CLIENTS_CLI_WORKER_COMMAND_H_
#define JOBWIRE_CLIENTS_CLI_WORKER_COMMAND_H_

namespace jobwire::cli {

// Runs the command with `argv` holding the arguments after "worker".
// Returns the process exit code: 0 after a clean drain, 1 when the stream
// to the server broke, 2 for bad flags.
int RunWorkerCommand(int argc, char** argv);

}  // namespace jobwire::cli

#endif  // JOBWIRE_CLIENTS_CLI_WORKER_COMMAND_H_
