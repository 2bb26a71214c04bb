// StreamRegistry: the open streams of one service, for heartbeats, stall
// checks and shutdown.
//
// A stream registers itself when it starts and removes itself just before it
// is deleted. ForEach() calls a function on every registered stream with the
// registry lock held, so a stream cannot be deleted during the call.
// Thread-safe. Lock order: StreamRegistry::mu_ before any stream's own lock;
// a stream never calls into the registry while holding its own lock.
#ifndef JOBWIRE_SERVER_API_STREAM_REGISTRY_H_
#define JOBWIRE_SERVER_API_STREAM_REGISTRY_H_

#include <cstddef>
#include <functional>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace jobwire {

// What the service may ask of any of its open streams. Every method is
// non-blocking and may be called from any thread.
class ServiceStream {
 public:
  virtual ~ServiceStream() = default;
  // Periodic maintenance at `now` (from the service's Clock): heartbeats on
  // idle streams, RESOURCE_EXHAUSTED for a peer that stopped reading.
  virtual void Tick(absl::Time now) = 0;
  // The server is shutting down: tell the peer (a `draining` message where
  // the stream has one) and take no new work. The stream ends by `deadline`.
  virtual void Drain(absl::Time deadline) = 0;
  // Finishes the stream now with `status` (unless it already finished).
  virtual void Abort(const absl::Status& status) = 0;
  // Messages held in memory for the peer (queued plus in flight).
  virtual size_t BufferedMessages() = 0;
};

class StreamRegistry {
 public:
  void Add(ServiceStream* stream) {
    absl::MutexLock lock(&mu_);
    streams_.insert(stream);
  }
  void Remove(ServiceStream* stream) {
    absl::MutexLock lock(&mu_);
    streams_.erase(stream);
  }
  void ForEach(const std::function<void(ServiceStream*)>& fn) {
    absl::MutexLock lock(&mu_);
    for (ServiceStream* s : streams_) fn(s);
  }
  size_t size() {
    absl::MutexLock lock(&mu_);
    return streams_.size();
  }
  // Waits up to `timeout` (real time) until no stream is registered; returns
  // whether that happened.
  bool WaitUntilEmpty(absl::Duration timeout) {
    absl::MutexLock lock(&mu_);
    return mu_.AwaitWithTimeout(
        absl::Condition(
            +[](absl::flat_hash_set<ServiceStream*>* s) { return s->empty(); },
            &streams_),
        timeout);
  }

 private:
  absl::Mutex mu_;
  absl::flat_hash_set<ServiceStream*> streams_ ABSL_GUARDED_BY(mu_);
};

}  // namespace jobwire

#endif  // JOBWIRE_SERVER_API_STREAM_REGISTRY_H_
