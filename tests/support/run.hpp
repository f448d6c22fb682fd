#pragma once
// Test helpers. Coroutines in tests take what they use as parameters, never
// as lambda captures: a capturing lambda dies before its coroutine does.
#include <coronet/runtime.hpp>
#include <coronet/task.hpp>

namespace coronet::test {

// Lets every other ready task on this worker run, `times` times over.
inline task<void> yield(int times = 1)
{
  for (int i = 0; i < times; ++i)
    co_await coronet::yield();
}

} // namespace coronet::test
