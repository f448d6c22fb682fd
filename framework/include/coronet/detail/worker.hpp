#pragma once
// One worker = one thread running one io_context. Tasks woken by a channel or
// a wait group on their own worker go to a ready list that the worker's loop
// runs between Asio handlers, so a wake-up costs a pointer push instead of an
// Asio post. Wake-ups from another thread go to a second list under a
// spinlock; a worker with nothing to do spins on it for a few microseconds
// before it sleeps in the reactor (yielding the core to any runnable thread
// meanwhile; at most one spinner per CPU), and is nudged with an Asio post
// only when it is asleep.
#include <asio/any_io_executor.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>

#include <coronet/detail/spinlock.hpp>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <utility>

namespace coronet {
class runtime;
}

namespace coronet::detail {

// A parked operation that can be resumed on its home worker.
class resumable {
public:
  virtual void resume() = 0;
  resumable* next_ready_ = nullptr;

protected:
  ~resumable() = default;
};

// A FIFO of resumables linked through next_ready_ (they live in frames).
class ready_queue final {
public:
  bool empty() const noexcept { return head_ == nullptr; }
  void push(resumable* r) noexcept
  {
    r->next_ready_ = nullptr;
    (tail_ ? tail_->next_ready_ : head_) = r;
    tail_ = r;
  }
  resumable* pop() noexcept
  {
    resumable* r = head_;
    if (r && !(head_ = r->next_ready_))
      tail_ = nullptr;
    return r;
  }
  // Takes everything, leaving the queue empty.
  ready_queue take() noexcept { return std::exchange(*this, ready_queue{}); }

private:
  resumable* head_ = nullptr;
  resumable* tail_ = nullptr;
};

// Taken by the worker spinning on one CPU; a cache line each, so spinners on
// different CPUs never touch the same line.
struct alignas(64) spin_slot {
  std::atomic<bool> taken{false};
};

// Written only by the owning worker (plain load + store, no locked
// instruction); read by anyone through relaxed loads.
struct alignas(64) task_counters {
  std::atomic<std::uint64_t> spawned{0};
  std::atomic<std::uint64_t> completed{0};
  std::atomic<std::uint64_t> failed{0};
  std::atomic<std::uint64_t> spawned_remote{0}; // fetch_add from other threads

  static void bump(std::atomic<std::uint64_t>& c) noexcept
  {
    c.store(c.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  }
};

class worker final {
public:
  // `spin_slots`: one per CPU, shared by the runtime's workers.
  worker(coronet::runtime& owner, std::size_t index, std::chrono::microseconds spin, spin_slot* spin_slots,
    std::size_t cpus)
    : owner_(owner), index_(index), spin_(spin), spin_slots_(spin_slots), cpus_(cpus)
  {
  }
  worker(const worker&) = delete;
  worker& operator=(const worker&) = delete;

  asio::io_context& context() noexcept { return context_; }
  const asio::any_io_executor& executor() const noexcept { return executor_; }
  std::size_t index() const noexcept { return index_; }
  coronet::runtime& owner() const noexcept { return owner_; }
  task_counters& counters() noexcept { return counters_; }

  // The worker whose thread is calling, or nullptr off the runtime.
  static worker* current() noexcept { return current_; }
  bool is_current() const noexcept { return current_ == this; }

  void run(); // the thread's body
  // After the thread has ended: runs the tasks woken but not yet run, up to
  // their next suspension, on the calling thread. False when there were none.
  bool run_leftovers();

  // Resume `r` on this worker, never inline.
  void schedule(resumable* r)
  {
    if (!is_current()) {
      schedule_remote(r);
      return;
    }
    ready_.push(r);
  }

private:
  std::size_t run_ready();
  void schedule_remote(resumable* r);
  std::size_t run_remote();
  bool spin_for_remote(std::chrono::microseconds spin);

  coronet::runtime& owner_;
  std::size_t index_;
  // One thread runs this context, and every socket stays on the worker that
  // opened it, so per-descriptor locking is skipped (other threads only
  // post, which keeps its lock).
  asio::io_context context_{ASIO_CONCURRENCY_HINT_UNSAFE_IO};
  asio::any_io_executor executor_{context_.get_executor()};
  task_counters counters_;
  ready_queue ready_;

  std::chrono::microseconds spin_;
  static constexpr int max_fruitless_spins = 8;
  int fruitless_spins_ = 0; // spins in a row that found no remote work
  spin_slot* spin_slots_;
  std::size_t cpus_;
  // What other workers write, on a line of its own: the owner's own fields
  // above change on every turn of its loop.
  alignas(64) spinlock remote_lock_;
  ready_queue remote_; // guarded by remote_lock_
  std::atomic<bool> has_remote_{false};
  std::atomic<bool> sleeping_{false};
  static inline thread_local constinit worker* current_ = nullptr;
};

} // namespace coronet::detail
