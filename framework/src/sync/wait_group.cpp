#include <coronet/sync/wait_group.hpp>

#include <mutex>
#include <stdexcept>
#include <string>

namespace coronet {

wait_group::~wait_group()
{
  // Waiters still parked here belong to frames being torn down at shutdown.
  std::lock_guard lock{lock_};
  while (waiters_.pop_front()) {
  }
}

void wait_group::add(std::int64_t n)
{
  std::int64_t now = count_.fetch_add(n, std::memory_order_acq_rel) + n;
  if (now < 0) {
    count_.fetch_sub(n, std::memory_order_acq_rel);
    throw std::logic_error("wait_group: negative counter (add " + std::to_string(n) + ")");
  }
  if (now == 0)
    release_waiters();
}

void wait_group::done()
{
  std::int64_t now = count_.fetch_sub(1, std::memory_order_acq_rel) - 1;
  if (now < 0) {
    count_.fetch_add(1, std::memory_order_acq_rel);
    throw std::logic_error("wait_group: done() called more often than add()");
  }
  if (now == 0)
    release_waiters();
}

void wait_group::release_waiters()
{
  std::lock_guard lock{lock_};
  while (waiter* w = waiters_.pop_front())
    if (w->try_claim(0))
      w->wake();
}

task<void> wait_group::wait()
{
  if (count() == 0)
    co_return;
  waiter parked{*this};
  co_await parked.park([&] {
    // Checked again under the lock: done() takes it after reaching zero, so
    // either we see zero here or done() sees us parked.
    std::lock_guard lock{lock_};
    if (count() == 0) {
      parked.try_claim(0);
      parked.wake();
    } else {
      waiters_.push_back(&parked);
    }
  });
  parked.rethrow_if_failed();
}

wait_group::waiter::~waiter()
{
  if (linked_) {
    std::lock_guard lock{group_.lock_};
    group_.waiters_.remove(this);
  }
}

void wait_group::waiter::unpark()
{
  std::lock_guard lock{group_.lock_};
  group_.waiters_.remove(this);
}

} // namespace coronet
