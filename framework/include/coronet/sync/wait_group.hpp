#pragma once
// wait_group: Go's sync.WaitGroup. Safe across workers.
//
//   coronet::task<> run_one(job j, coronet::wait_group& wg)
//   {
//     co_await run(j);
//     wg.done();
//   }
//   ...
//   coronet::wait_group wg;
//   for (auto& j : jobs) {
//     wg.add(1);
//     coronet::spawn(run_one(j, wg)); // parameters, not lambda captures
//   }
//   co_await wg.wait();
//
// done() below zero is a programming error and throws std::logic_error (Go
// panics). wait() returns at once when the count is zero; any number of tasks
// may wait. A parked wait() can be cancelled (timeout, task group).
#include <coronet/detail/intrusive_list.hpp>
#include <coronet/detail/parked_op.hpp>
#include <coronet/detail/spinlock.hpp>
#include <coronet/task.hpp>

#include <atomic>
#include <cstdint>

namespace coronet {

class wait_group final {
public:
  wait_group() = default;
  wait_group(const wait_group&) = delete;
  wait_group& operator=(const wait_group&) = delete;
  ~wait_group();

  void add(std::int64_t n = 1);
  void done();
  task<void> wait();
  std::int64_t count() const noexcept { return count_.load(std::memory_order_acquire); }

private:
  class waiter;
  void release_waiters();

  std::atomic<std::int64_t> count_{0};
  detail::spinlock lock_;
  detail::intrusive_list<waiter> waiters_;
};

class wait_group::waiter final : public detail::parked_op {
public:
  explicit waiter(wait_group& g) : group_(g) {}
  ~waiter();
  waiter* prev_ = nullptr;
  waiter* next_ = nullptr;
  bool linked_ = false;

private:
  void unpark() override;
  wait_group& group_;
};

} // namespace coronet
