// HealthServiceImpl: jobwire's own grpc.health.v1.Health, on the callback API.
//
// It is built from proto/grpc/health/v1/health.proto (not gRPC's built-in
// default health service), so server reflection can describe it and grpcurl
// can call it without .proto files.
//
// Known services are "" (the server as a whole) and the names passed to
// the constructor; each has a status, SERVING at start. Check answers a
// service's status or NOT_FOUND for an unknown one. Watch streams the status
// now and at every change (SERVICE_UNKNOWN for an unknown name, which may
// appear later), newest value wins when the client reads slowly.
//
// Shutdown(deadline) (the app's shutdown hook) sets every service
// NOT_SERVING for good, sends that to each watcher, and then finishes every
// Watch stream with UNAVAILABLE; Watch calls after it get NOT_SERVING and
// end at once.
//
// Thread-safe. Handlers never block: Check finishes inline (an in-memory
// lookup); each Watch is a WatchReactor with one write in flight.
#ifndef JOBWIRE_SERVER_API_HEALTH_SERVICE_H_
#define JOBWIRE_SERVER_API_HEALTH_SERVICE_H_

#include <cstddef>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "grpc/health/v1/health.grpc.pb.h"

namespace jobwire {

class HealthServiceImpl final
    : public grpc::health::v1::Health::CallbackService {
 public:
  using ServingStatus = grpc::health::v1::HealthCheckResponse::ServingStatus;

  // `services`: fully qualified service names, e.g. "jobwire.v1.JobService".
  // A request over `max_request_bytes` as protobuf (--max-receive-message-
  // bytes) gets RESOURCE_EXHAUSTED (CheckRequestBytes, unary_methods.h).
  explicit HealthServiceImpl(const std::vector<std::string>& services,
                             size_t max_request_bytes = 4 << 20);
  ~HealthServiceImpl() override;

  // Sets one service's status ("" is the whole server) and tells its
  // watchers. Ignored after Shutdown. Adds the name if it is new.
  void SetServingStatus(const std::string& service, ServingStatus status);

  // Every known service NOT_SERVING, then finishes all Watch streams.
  // Returns promptly; idempotent.
  void Shutdown(absl::Time deadline);

  // The number of open Watch streams (for tests and GetServerInfo).
  int watchers() const;

  grpc::ServerUnaryReactor* Check(
      grpc::CallbackServerContext* context,
      const grpc::health::v1::HealthCheckRequest* request,
      grpc::health::v1::HealthCheckResponse* response) override;

  grpc::ServerWriteReactor<grpc::health::v1::HealthCheckResponse>* Watch(
      grpc::CallbackServerContext* context,
      const grpc::health::v1::HealthCheckRequest* request) override;

 private:
  class WatchReactor;

  ServingStatus StatusLocked(const std::string& service) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Called by a reactor in OnDone.
  void RemoveWatcher(WatchReactor* reactor);

  // Lock order: mu_ is never held while a reactor's own lock is taken for a
  // write; reactors are referenced (WatchReactor::Ref) under mu_ and used
  // after mu_ is released.
  const size_t max_request_bytes_;
  mutable absl::Mutex mu_;
  std::map<std::string, ServingStatus> statuses_ ABSL_GUARDED_BY(mu_);
  std::set<WatchReactor*> watchers_ ABSL_GUARDED_BY(mu_);
  bool shut_down_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace jobwire

#endif  // JOBWIRE_SERVER_API_HEALTH_SERVICE_H_
