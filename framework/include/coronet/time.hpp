#pragma once
// Sleeping, timeouts and deadlines (Go's time.Sleep and context.WithTimeout),
// and the one wait the framework's own code makes for an event with a time
// limit (wakeup, below).
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
