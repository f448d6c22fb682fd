#pragma once
// The runtime: N worker threads, each running its own io_context. A task
// lives on one worker for its whole life; tasks on different workers talk
// through channels.
//
//   coronet::runtime rt{4};
//   rt.spawn(serve_forever());                  // round-robin worker
//   return rt.run_until_signal(main_task());    // SIGINT/SIGTERM: graceful stop
//
// Inside a task, `coronet::spawn(f())` is Go's `go f()`: the child starts on
// the current worker and runs at once until its first suspension, then the
// caller continues (a chain of tasks spawning tasks is queued past a small
// depth instead). A task that ends by exception is logged and counted as
// failed; nothing is lost silently.
//
// Lifetime across workers. An I/O object (socket, timer, stream, signal set)
// belongs to the worker whose executor made it, and is used and destroyed on
// that worker's thread while the runtime runs; a task on another worker may
// hold it (a client's pools of every worker, say), but must not be the one
// to use or destroy it there. Once the workers have stopped (stop(), or the
// end of run_until_signal) one thread may destroy anything. The destructor
// tears down in phases, so that whatever still holds I/O objects of several
// workers is released while every worker's io_context exists:
//   1. stop every worker and join its thread;
//   2. run the tasks woken but not yet run, up to their next suspension;
//   3. destroy every task frame left on every worker, without resuming it:
//      those parked on channels, selects, wait and task groups, those queued
//      in an io_context or waiting on its sockets and timers, and what they
//      own (again until a round finds nothing more);
//   4. only then destroy the io_contexts, the last worker first.
// A task still parked at the end therefore never runs again: destructors in
// its frames do, on the destroying thread. Let servers drain
// (run_until_signal) rather than destroying a runtime under running work.
#include <coronet/config.hpp>
#include <coronet/sync/channel.hpp>
#include <coronet/task.hpp>

#include <asio/any_io_executor.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/cancellation_state.hpp>
#include <asio/co_spawn.hpp>
#include <asio/thread_pool.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <future>
#include <memory>
#include <optional>
#include <stdexcept>
#include <thread>
#include <type_traits>
#include <variant>
#include <vector>

namespace coronet {

// [runtime]: read by runtime(const config&).
inline constexpr config_key runtime_keys[] = {
  {"runtime.threads", 0, "worker threads; 0 = one per hardware thread", 0, 1024},
  {"runtime.blocking_threads", 4, "threads for spawn_blocking", 1, 1024},
  {"runtime.spin_us", 20, "an idle worker waits this long for work from others before sleeping", 0, 100000},
};

namespace detail {
class worker;
void report_task_failure(std::exception_ptr e) noexcept;
}

// Task counters, as the article asks: spawned, completed, failed, alive.
struct task_stats {
  std::uint64_t spawned = 0;
  std::uint64_t completed = 0;
  std::uint64_t failed = 0;
  std::uint64_t dropped = 0; // destroyed unfinished by the runtime's teardown
  std::uint64_t alive() const noexcept { return spawned - completed - failed - dropped; }
};

class runtime final {
public:
  // threads == 0 means one worker per hardware thread. An idle worker spins
  // for `spin` waiting for wake-ups from other workers before it sleeps (0:
  // sleep at once), which keeps cross-worker hand-offs free of system calls;
  // at most one worker spins on a CPU.
  // Like Go, it raises the soft open-file limit to the hard one, so a server
  // is not refused connections at the usual 1024. A reactor that cannot
  // start (an io_uring build where this kernel or a seccomp profile refuses
  // the ring) throws std::runtime_error saying so.
  explicit runtime(std::size_t threads = config_default<std::size_t>(runtime_keys, "runtime.threads"),
    std::size_t blocking_threads = config_default<std::size_t>(runtime_keys, "runtime.blocking_threads"),
    std::chrono::microseconds spin = std::chrono::microseconds{
      config_default<std::int64_t>(runtime_keys, "runtime.spin_us")});
  // Reads runtime.threads, runtime.blocking_threads and runtime.spin_us.
  // The apps' constructor: a reactor that cannot start is logged
  // ("cannot start: ...") and the process exits with status 2, as for a
  // config error.
  explicit runtime(const config& cfg);
  ~runtime();
  runtime(const runtime&) = delete;
  runtime& operator=(const runtime&) = delete;

  std::size_t size() const noexcept { return workers_.size(); }
  asio::any_io_executor executor(std::size_t worker) const;
  // The executors in turn, for spreading work.
  asio::any_io_executor next_executor() noexcept;

  // Starts `t` on the next worker (round-robin) or on `worker`.
  void spawn(task<void> t);
  void spawn(std::size_t worker, task<void> t);

  // Runs `t` on worker 0 and blocks the calling thread (not a worker) until
  // it finishes; returns its value or rethrows its exception.
  template <class T>
  T block_on(task<T> t);

  // Runs `main` on worker 0 until it finishes. The first SIGINT/SIGTERM
  // requests a graceful stop (done() closes; servers stop accepting and
  // drain); a second one stops at once. SIGHUP runs the on_reload()
  // callbacks. Returns 0 when `main` finished normally, 2 when it threw a
  // config_error or startup_error (a bad config, a port in use), 1 when it
  // threw anything else (logged), 130 after a forced stop.
  // Like the end of Go's main, its return ends every task: the workers are
  // stopped (stop()) first, so what the caller destroys next (a client, the
  // state a router's handlers point to) is never in use on a worker. Signals
  // stay caught until the runtime is destroyed, and are ignored from then
  // on: the process is ending, and must end with main's status.
  int run_until_signal(task<void> main);

  // Stops every worker now and waits for their threads: no task runs after
  // it returns (nor can one be started), and objects that belong to the
  // workers may be destroyed on the calling thread. Idempotent; not from a
  // worker.
  void stop();

  // Called on SIGHUP (on worker 0; it should not block for long), e.g. to
  // load a rotated certificate. Callable from any thread.
  void on_reload(std::function<void()> f);

  // Graceful stop: closes done(). Idempotent, callable from any thread.
  void request_stop();
  bool stop_requested() const noexcept { return done_.closed(); }
  // Closed once a stop is requested: `co_await rt.done().receive()` returns
  // std::nullopt then, and it can be a select case (Go's ctx.Done()).
  const channel<std::monostate>& done() const noexcept { return done_; }

  task_stats stats() const noexcept;

  // Runs `f` on the blocking pool so it never stalls a worker; the awaiting
  // task resumes on its own worker with f's result or exception.
  template <class F>
  auto spawn_blocking(F f) -> task<std::invoke_result_t<F&>>;

  // The runtime whose worker is calling, or nullptr.
  static runtime* current() noexcept;
  // The index (0 .. size()-1) of the worker that is calling, if one is.
  static std::optional<std::size_t> current_worker() noexcept;

private:
  friend void spawn(task<void> t);
  friend void spawn(task<void> t, asio::cancellation_slot cancel);
  void start_on(detail::worker& w, task<void> t, asio::cancellation_slot cancel = {});
  void destroy_tasks();

  std::vector<std::unique_ptr<detail::worker>> workers_;
  std::vector<std::thread> threads_;
  std::atomic<std::size_t> next_{0};
  // One per CPU: whether a worker spins there (see worker::spin_for_remote).
  std::unique_ptr<detail::spin_slot[]> spin_slots_;
  channel<std::monostate> done_;
  std::mutex reload_mutex_;
  std::vector<std::function<void()>> reloaders_;
  // run_until_signal's, on worker 0: kept until teardown so that a signal
  // arriving as the process ends is still caught rather than killing it.
  struct signal_watch;
  std::unique_ptr<signal_watch> signals_;
  asio::thread_pool blocking_;
};

// Go's `go f()`: starts `t` on the calling worker. Throws std::logic_error off
// the runtime (use runtime::spawn there).
void spawn(task<void> t);
// The same, cancellable: emitting the slot's signal (terminal) cancels what
// the task is waiting for, and its later waits throw operation_aborted. The
// signal must outlive the task (a parameter of the task itself will do).
void spawn(task<void> t, asio::cancellation_slot cancel);

// Go's runtime.Gosched(): lets every task already woken on this worker run,
// then continues. Off a coronet worker it posts to the task's executor.
task<void> yield();

// runtime::spawn_blocking on the calling worker's runtime.
template <class F>
auto spawn_blocking(F f) -> task<std::invoke_result_t<F&>>
{
  runtime* rt = runtime::current();
  if (!rt)
    throw std::logic_error("coronet::spawn_blocking called outside a runtime worker");
  return rt->spawn_blocking(std::move(f));
}

template <class T>
T runtime::block_on(task<T> t)
{
  if (current())
    throw std::logic_error("runtime::block_on called from a worker: it would deadlock");
  std::promise<T> done;
  auto result = done.get_future();
  // The exception is handed over by move, after its catch block ended, so
  // the worker drops no reference to it once the caller can see it.
  auto body = [](task<T> t, std::promise<T>& done) -> task<void> {
    std::exception_ptr error;
    try {
      // A local, so that the task's frame (which may still hold the
      // exception) is gone before the handover.
      task<T> local = std::move(t);
      if constexpr (std::is_void_v<T>) {
        co_await std::move(local);
        done.set_value();
      } else {
        done.set_value(co_await std::move(local));
      }
      co_return;
    } catch (...) {
      error = std::current_exception();
    }
    done.set_exception(std::move(error));
  };
  spawn(0, body(std::move(t), done));
  return result.get();
}

template <class F>
auto runtime::spawn_blocking(F f) -> task<std::invoke_result_t<F&>>
{
  using R = std::invoke_result_t<F&>;
  using value = std::conditional_t<std::is_void_v<R>, std::monostate, R>;
  auto initiate = [this, f = std::move(f)](auto handler) mutable {
    asio::post(blocking_, [f = std::move(f), handler = std::move(handler)]() mutable {
      std::exception_ptr error;
      std::optional<value> result;
      try {
        if constexpr (std::is_void_v<R>) {
          f();
          result.emplace();
        } else {
          result.emplace(f());
        }
      } catch (...) {
        error = std::current_exception();
      }
      auto home = asio::get_associated_executor(handler);
      asio::post(home, [handler = std::move(handler), error = std::move(error),
                         result = std::move(result)]() mutable {
        std::move(handler)(std::move(error), std::move(result));
      });
    });
  };
  auto result = co_await asio::async_initiate<const asio::use_awaitable_t<>&,
    void(std::exception_ptr, std::optional<value>)>(std::move(initiate), asio::use_awaitable);
  if constexpr (!std::is_void_v<R>)
    co_return std::move(*result);
}

} // namespace coronet
