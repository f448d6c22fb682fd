#pragma once
// A coronet task is an Asio awaitable: any Asio operation can be awaited in
// it with asio::use_awaitable, and coronet adds no coroutine type of its own.
#include <asio/awaitable.hpp>
#include <asio/use_awaitable.hpp>

namespace coronet {

template <class T = void>
using task = asio::awaitable<T>;

} // namespace coronet
