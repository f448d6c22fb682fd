#pragma once
// Sleeping, timeouts and deadlines (Go's time.Sleep and context.WithTimeout),
// and the framework's one timer: every wait with a time limit ends here.
// Socket deadlines and select's after() are alarms (Go's time.AfterFunc),
// the framework's waits for an event are wakeups, and a handler runs under
// its request's deadline (http.request_timeout_ms, X-Request-Timeout-Ms)
// through with_deadline. No other code holds an Asio timer (a layout test
// checks).
//
//   co_await coronet::sleep_for(50ms);
//   auto user = co_await coronet::with_timeout(fetch_user(id), 200ms);
//   auto page = co_await coronet::with_deadline(render(), request_deadline);
//
// When the time runs out, the awaited operation is cancelled (through Asio's
// per-operation cancellation: a parked channel op, timer or socket operation
// inside it is aborted) and coronet::timeout_error is thrown. An operation
// that had already produced its result when the timer fired still returns it,
// so no value taken from a channel is lost to a timeout.
#include <coronet/error.hpp>
#include <coronet/task.hpp>

#include <asio/co_spawn.hpp>
#include <asio/error.hpp>
#include <asio/experimental/deferred.hpp>
#include <asio/experimental/parallel_group.hpp>
#include <asio/steady_timer.hpp>
#include <asio/redirect_error.hpp>
#include <asio/this_coro.hpp>

#include <chrono>
#include <exception>
#include <functional>
#include <memory>
#include <system_error>
#include <type_traits>
#include <utility>

namespace coronet {

using clock = std::chrono::steady_clock;

inline task<void> sleep_for(clock::duration d)
{
  asio::steady_timer timer{co_await asio::this_coro::executor, d};
  co_await timer.async_wait(asio::use_awaitable);
}

inline task<void> sleep_until(clock::time_point t)
{
  asio::steady_timer timer{co_await asio::this_coro::executor, t};
  co_await timer.async_wait(asio::use_awaitable);
}

// Awaits `op` until `deadline`; T must be default-constructible (Asio's
// co_spawn needs it) or void.
template <class T>
task<T> with_deadline(task<T> op, clock::time_point deadline)
{
  namespace x = asio::experimental;
  auto executor = co_await asio::this_coro::executor;
  asio::steady_timer timer{executor, deadline};
  auto group = x::make_parallel_group(asio::co_spawn(executor, std::move(op), x::deferred),
    timer.async_wait(x::deferred));
  if constexpr (std::is_void_v<T>) {
    auto [order, error, timer_ec] = co_await group.async_wait(x::wait_for_one(), asio::use_awaitable);
    (void)timer_ec;
    if (order[0] == 1 && error)
      throw timeout_error();
    if (error)
      std::rethrow_exception(error);
  } else {
    auto [order, error, value, timer_ec] =
      co_await group.async_wait(x::wait_for_one(), asio::use_awaitable);
    (void)timer_ec;
    if (order[0] == 1 && error)
      throw timeout_error();
    if (error)
      std::rethrow_exception(error);
    co_return std::move(value);
  }
}

template <class T>
task<T> with_timeout(task<T> op, clock::duration timeout)
{
  return with_deadline(std::move(op), clock::now() + timeout);
}

// Runs a function when a time comes, on the executor it was made with (Go's
// time.AfterFunc). Moving the time later costs nothing until the earlier
// time comes and finds it later: a keep-alive connection moves its read
// deadline on every request, and re-arming a timer each time would cost a
// timer queue update each. The function is not called after stop(), nor
// once the alarm is gone.
//
//   alarm a{executor, [&] { expire(); }};
//   a.ring_at(clock::now() + 5s);   // earlier than set: the timer is re-armed
//   a.ring_at(clock::now() + 9s);   // later: noted; the timer is moved when it fires
//   a.stop();                       // no ring (lazily: the timer fires and finds nothing)
class alarm final {
public:
  alarm(const asio::any_io_executor& executor, std::function<void()> ring);
  ~alarm();
  alarm(alarm&&) noexcept = default; // a moved-from alarm may only be destroyed or assigned
  alarm& operator=(alarm&&) noexcept = default;

  void ring_at(clock::time_point at);
  void stop() noexcept;
  // When it will ring; time_point::max() when it will not.
  clock::time_point at() const noexcept;

private:
  struct state;
  std::shared_ptr<state> state_; // shared with the timer's handler, which may outlive the alarm
};

// A task parked until another task of its worker wakes it, or a deadline
// passes: Go's `select { case <-ready: case <-time.After(d): }` without a
// channel (and its allocation). The framework waits this way for an
// admission slot, an HTTP/2 peer's flow-control window, an HTTP/2
// response and its writer's next frame.
//
//   wakeup w{executor};                        // the waiter's; the waker keeps a pointer
//   if (!co_await w.wait_until(deadline)) ...  // false: the deadline passed first
//   w.wake();                                  // the other side, on the same worker
//
// A wake with nobody waiting is kept: the next wait returns at once. A
// cancelled waiter gets operation_aborted, as from any wait.
class wakeup final {
public:
  explicit wakeup(const asio::any_io_executor& executor) : timer_(executor, clock::time_point::max()) {}
  wakeup(const wakeup&) = delete;
  wakeup& operator=(const wakeup&) = delete;

  task<bool> wait_until(clock::time_point deadline)
  {
    if (!woken_) {
      timer_.expires_at(deadline);
      waiting_ = true;
      std::error_code ec;
      co_await timer_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      waiting_ = false;
      if (!woken_ && ec == asio::error::operation_aborted)
        throw std::system_error(ec, "wait cancelled");
    }
    co_return std::exchange(woken_, false);
  }

  void wake() noexcept
  {
    woken_ = true;
    if (waiting_)
      timer_.cancel();
  }

  bool waiting() const noexcept { return waiting_; }

private:
  asio::steady_timer timer_;
  bool waiting_ = false;
  bool woken_ = false;
};

} // namespace coronet
