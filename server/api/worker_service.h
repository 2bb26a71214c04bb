// WorkerServiceImpl: the jobwire.v1.WorkerService, one bidirectional stream
// per worker process (see docs/worker-protocol.md).
//
// Each Connect stream is a reactor (no thread per worker): it reads one
// message at a time and hands it to the Dispatcher, which fences it against
// the session's leases and writes through the store; it writes the
// dispatcher's assign / cancel / pause / drain messages and `rejected`
// answers from an outgoing queue, one write in flight; a burst of queued
// messages is coalesced into few socket writes without holding the last one
// back (server/api/write_coalescing.h). Nothing blocks in a reaction. A closed
// or cancelled stream releases the session's leases at once.
//
// Thread-safe. The dispatcher is not owned and must outlive the
// service. Shutdown() must run before grpc::Server::Shutdown.
#ifndef JOBWIRE_SERVER_API_WORKER_SERVICE_H_
#define JOBWIRE_SERVER_API_WORKER_SERVICE_H_

#include <grpcpp/grpcpp.h>

#include <cstddef>
#include <set>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "jobwire/v1/worker_service.grpc.pb.h"
#include "server/scheduling/dispatcher.h"

namespace jobwire {

class WorkerSessionReactor;

class WorkerServiceImpl final
    : public jobwire::v1::WorkerService::CallbackService {
 public:
  // A message over `max_request_bytes` as protobuf (--max-receive-message-
  // bytes) is refused with RESOURCE_EXHAUSTED: a report by `rejected`
  // naming its attempt, any other message by ending the stream.
  explicit WorkerServiceImpl(Dispatcher* dispatcher,
                             size_t max_request_bytes = 4 << 20);
  ~WorkerServiceImpl() override;

  grpc::ServerBidiReactor<jobwire::v1::ConnectRequest,
                          jobwire::v1::ConnectResponse>*
  Connect(grpc::CallbackServerContext* context) override;

  // Starts the graceful end of every session; returns at once (it is the
  // service's App shutdown hook). Refuses new sessions, stops assigning and
  // sends `drain` with `deadline` to every worker. A session whose jobs have
  // ended is finished with UNAVAILABLE; sessions still running jobs at the
  // deadline are cancelled by grpc::Server::Shutdown(deadline), which
  // releases their leases as "server shutting down" (jobs back to QUEUED,
  // not counted as a failed attempt). The App then calls
  // Dispatcher::ReleaseAllLeasesBlocking so those writes are durable before
  // the store closes. Idempotent.
  void Shutdown(absl::Time deadline);

  // Open sessions (for tests and server info).
  int SessionCount();

 private:
  friend class WorkerSessionReactor;
  void Register(WorkerSessionReactor* reactor);
  void Unregister(WorkerSessionReactor* reactor);

  Dispatcher* const dispatcher_;
  const size_t max_request_bytes_;
  absl::Mutex mu_;
  bool shutting_down_ ABSL_GUARDED_BY(mu_) = false;
  std::set<WorkerSessionReactor*> reactors_ ABSL_GUARDED_BY(mu_);
};

}  // namespace jobwire

#endif  // JOBWIRE_SERVER_API_WORKER_SERVICE_H_
