#pragma once
// The lock behind channels and wait groups. Critical sections are a few
// pointer moves, so spinning beats parking the thread; after a short spin we
// yield so a preempted holder on a busy 2-core machine can finish.
#include <atomic>
#include <thread>

namespace coronet::detail {

class spinlock final {
public:
  void lock() noexcept
  {
    for (int spins = 0;; ++spins) {
      if (!locked_.exchange(true, std::memory_order_acquire))
        return;
      while (locked_.load(std::memory_order_relaxed)) {
        if (++spins > 64)
          std::this_thread::yield();
      }
    }
  }

  bool try_lock() noexcept { return !locked_.exchange(true, std::memory_order_acquire); }
  void unlock() noexcept { locked_.store(false, std::memory_order_release); }

private:
  std::atomic<bool> locked_{false};
};

} // namespace coronet::detail
