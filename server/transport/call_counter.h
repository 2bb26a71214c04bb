// CallCounter: how many calls a grpc::Server has in progress.
//
// Registered with ServerBuilder::experimental().SetInterceptorCreators, it
// gives every call an interceptor that counts the call from its start
// until gRPC destroys it (when the call is done). App::Stop reads the count
// to end a shutdown early: once no call is open, the grace period has
// nothing left to protect, and the idle connections that remain (a client
// that never closes them after the server's GOAWAY, such as grpcio's
// synchronous client when no call of its own waits) would otherwise hold
// grpc::Server::Shutdown until the deadline.
//
// Thread-safe. The factory is handed to the builder; keep `count()`'s
// shared counter to read it.
#ifndef JOBWIRE_SERVER_TRANSPORT_CALL_COUNTER_H_
#define JOBWIRE_SERVER_TRANSPORT_CALL_COUNTER_H_

#include <grpcpp/support/server_interceptor.h>

#include <atomic>
#include <memory>

namespace jobwire {

class CallCounter final
    : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit CallCounter(std::shared_ptr<std::atomic<int>> count)
      : count_(std::move(count)) {}

  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override;

 private:
  const std::shared_ptr<std::atomic<int>> count_;
};

}  // namespace jobwire

#endif  // JOBWIRE_SERVER_TRANSPORT_CALL_COUNTER_H_
