// WatchSink: where a watch (WatchReactorCore, watch_reactors.h) writes its
// messages: the transport of one watch stream.
//
// A watch is one subscription on the EventBus joined with the durable log;
// how its messages reach the peer is the sink's business. Two faces
// implement it: the gRPC reactor of WatchJob/WatchJobs (watch_reactors.cc)
// and the HTTP face's Server-Sent Events writer (server/http/). So an SSE
// stream and a gRPC watch share the queue, the bounded buffer, catch-up
// from the log, heartbeats, stall checks and draining: one path.
//
// Contract, seen from the sink:
//  - The core calls WriteMessage with at most one write outstanding; the
//    sink answers each with WatchReactorCore::WriteDone(ok) once the peer's
//    transport took the message (ok) or failed (not ok), from any thread
//    but never from inside WriteMessage.
//  - The core calls FinishWatch exactly once and then never calls the sink
//    again. The sink may still call WriteDone for a write it started.
//  - The peer going away is reported with WatchReactorCore::Cancelled().
//  - When the sink has had FinishWatch and will call the core no more, it
//    calls WatchReactorCore::Done() exactly once; the core may then be
//    deleted.
//  - WriteMessage and FinishWatch are called with the core's lock held, on
//    any thread (gRPC, the store's commit thread, the Executor, the ticker):
//    they must not block and must not call back into the core.
#ifndef JOBWIRE_SERVER_API_WATCH_SINK_H_
#define JOBWIRE_SERVER_API_WATCH_SINK_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "server/core/job.h"

namespace jobwire {

// One message of a watch, converted to the face's format at write time
// (WatchMessageToProto in watch_reactors.h gives the proto).
struct WatchMessage {
  enum class Kind { kEvent, kSnapshot, kHeartbeat, kDraining, kReset };
  Kind kind = Kind::kEvent;
  JobEvent event;               // kEvent
  Job job;                      // kSnapshot
  absl::Time time;              // kHeartbeat: now; kDraining: the deadline
  int64_t oldest_retained = 0;  // kReset
  std::string reason;           // kReset
};

class WatchSink {
 public:
  virtual ~WatchSink() = default;
  // Starts writing `message`. `more_queued`: other messages wait behind it
  // (a transport may hold this one back to send them together, as long as
  // the last of a burst is never held).
  virtual void WriteMessage(const WatchMessage& message, bool more_queued) = 0;
  // Ends the stream: OK after the last event, else the error (CANCELLED,
  // UNAVAILABLE at shutdown, RESOURCE_EXHAUSTED for a stalled peer, or the
  // store's error when the start failed).
  virtual void FinishWatch(const absl::Status& status) = 0;
};

}  // namespace jobwire

#endif  // JOBWIRE_SERVER_API_WATCH_SINK_H_
