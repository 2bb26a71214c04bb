#include "server/transport/call_counter.h"

#include <utility>

namespace jobwire {
namespace {

// Lives exactly as long as its call; changes nothing in it.
class CountingInterceptor final : public grpc::experimental::Interceptor {
 public:
  explicit CountingInterceptor(std::shared_ptr<std::atomic<int>> count)
      : count_(std::move(count)) {
    count_->fetch_add(1, std::memory_order_relaxed);
  }
  ~CountingInterceptor() override {
    count_->fetch_sub(1, std::memory_order_release);
  }
  void Intercept(
      grpc::experimental::InterceptorBatchMethods* methods) override {
    methods->Proceed();
  }

 private:
  const std::shared_ptr<std::atomic<int>> count_;
};

}  // namespace

grpc::experimental::Interceptor* CallCounter::CreateServerInterceptor(
    grpc::experimental::ServerRpcInfo* /*info*/) {
  return new CountingInterceptor(count_);
}

}  // namespace jobwire
