#pragma once
// Test helpers. Coroutines in tests take what they use as parameters, never
// as lambda captures: a capturing lambda dies before its coroutine does.
#include <coronet/runtime.hpp>
#include <coronet/task.hpp>

#include <asio/post.hpp>
#include <asio/this_coro.hpp>

namespace coronet::test {

// Lets every other ready task on this worker run once.
inline task<void> yield(int times = 1)
{
  for (int i = 0; i < times; ++i)
    co_await asio::post(co_await asio::this_coro::executor, asio::use_awaitable);
}

} // namespace coronet::test
