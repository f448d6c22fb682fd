#pragma once
// Sleeping, timeouts and deadlines (Go's time.Sleep and context.WithTimeout).
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
#include <asio/experimental/deferred.hpp>
#include <asio/experimental/parallel_group.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>

#include <chrono>
#include <exception>
#include <system_error>
#include <type_traits>

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

} // namespace coronet
