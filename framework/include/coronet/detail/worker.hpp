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
  // Teardown, instead of resume(): the runtime has stopped and will never
  // run it; let go of whatever it holds (a task's frames go back to their
  // io_context, which destroys them while every worker's is alive).
  virtual void discard() noexcept = 0;
  resumable* next_ready_ = nullptr;

protected:
  ~resumable() = default;
};

// A task parked on a coronet primitive (channel, select, wait group, task
// group). Its frames belong to the op it parked in, not to an io_context, so
// no io_context would ever destroy them: its worker lists it while it is
// parked, and the runtime's teardown abandons what is still listed.
class parked_task : public resumable {
public:
  // Teardown only: drops the task's frames without resuming it.
  virtual void abandon() noexcept = 0;

protected:
  ~parked_task() = default;

private:
  friend class parked_list;
  // Two pointers, as every byte here is a byte of each parked task: listed
  // means having a predecessor or being the head.
  parked_task* prev_parked_ = nullptr;
  parked_task* next_parked_ = nullptr;
};

// The tasks parked on one worker; only its thread touches it (and the
// runtime's teardown, once every worker has stopped).
class parked_list final {
public:
  void add(parked_task* t) noexcept
  {
    t->prev_parked_ = nullptr;
    t->next_parked_ = head_;
    if (head_)
      head_->prev_parked_ = t;
    head_ = t;
  }
  // Does nothing for a task that is not listed.
  void remove(parked_task* t) noexcept
  {
    if (!t->prev_parked_ && head_ != t)
      return;
    (t->prev_parked_ ? t->prev_parked_->next_parked_ : head_) = t->next_parked_;
    if (t->next_parked_)
      t->next_parked_->prev_parked_ = t->prev_parked_;
    t->prev_parked_ = t->next_parked_ = nullptr;
  }
  parked_task* take() noexcept
  {
    parked_task* t = head_;
    if (t)
      remove(t);
    return t;
  }

private:
  parked_task* head_ = nullptr;
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
  std::atomic<std::uint64_t> dropped{0};        // destroyed unfinished at teardown
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
  // The tasks parked here on coronet primitives.
  parked_list& parked() noexcept { return parked_; }
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
  // Teardown, after every worker has stopped: lets go of every task frame
  // this worker holds (woken, parked, or in its io_context's queues and
  // pending operations) without running anything. The io_contexts stay
  // alive, so a frame that owns another worker's I/O objects releases them
  // while their services exist. Returns how many it let go of outside the
  // io_context (0: nothing but what the io_context itself held).
  std::size_t drop_tasks();

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
  // An io_context whose handlers can be destroyed while its services (and
  // every I/O object's) stay alive: Asio's own teardown, split in two.
  class worker_context : public asio::io_context {
  public:
    using asio::io_context::io_context;
    void destroy_handlers() { shutdown(); }
  };

  // One thread runs this context, and every socket stays on the worker that
  // opened it, so per-descriptor locking is skipped (other threads only
  // post, which keeps its lock).
  worker_context context_{ASIO_CONCURRENCY_HINT_UNSAFE_IO};
  asio::any_io_executor executor_{context_.get_executor()};
  task_counters counters_;
  ready_queue ready_;
  parked_list parked_;

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
