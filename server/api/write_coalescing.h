// WriteCoalescer: chooses the grpc::WriteOptions of each write of a server
// stream that keeps one write in flight and queues the rest, so that a burst
// of queued messages leaves in few transport writes while a lone message is
// never held back.
//
// How gRPC 1.51's chttp2 transport treats the buffer hint: a message written
// with WriteOptions::set_buffer_hint() completes at once (OnWriteDone comes
// without a socket write) and stays in the transport's buffer until an
// unhinted write (or Finish) on the stream flushes it, or until more than
// the transport's write_buffer_size (64 KiB) is buffered. So Next() hints a
// write only when more messages are queued behind it: the last of a burst
// flushes all of them in one sendmsg. Two exceptions, each an unhinted write:
//  - the stream's first write, which carries the initial metadata: chttp2
//    sends hinted initial metadata only when something else flushes, and the
//    write's completion waits for it, so OnWriteDone would not come;
//  - every kMaxRun-th write of a burst, so the head of a long burst does not
//    wait for the whole tail to be serialised.
//
// The caller must keep the promise the hint relies on: after a hinted write
// completes it writes again or calls Finish (it hinted because a message was
// queued). Not thread-safe: use under the stream's lock, one Next() per
// StartWrite.
#ifndef JOBWIRE_SERVER_API_WRITE_COALESCING_H_
#define JOBWIRE_SERVER_API_WRITE_COALESCING_H_

#include <grpcpp/impl/call_op_set.h>

namespace jobwire {

class WriteCoalescer {
 public:
  // At most this many messages per transport write.
  static constexpr int kMaxRun = 64;

  // Options for the write about to start; `more_queued` says whether other
  // messages wait behind it.
  grpc::WriteOptions Next(bool more_queued) {
    grpc::WriteOptions options;
    if (started_ && more_queued && ++run_ < kMaxRun) {
      options.set_buffer_hint();
    } else {
      run_ = 0;
    }
    started_ = true;
    return options;
  }

 private:
  bool started_ = false;  // the first write (initial metadata) has started
  int run_ = 0;           // hinted writes since the last flushing one
};

}  // namespace jobwire

#endif  // JOBWIRE_SERVER_API_WRITE_COALESCING_H_
