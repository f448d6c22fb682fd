#pragma once
// Memory for Asio's operations (a socket read, a wait, a timer's handler)
// from a per-thread free list by size, bound to each operation with
// asio::bind_allocator(op_allocator<void>{}, token).
//
// Asio has a per-thread cache of its own, but it lives in the context that
// run()/poll_one() push for the length of one call and frees what it holds
// when the call returns; the worker loop calls poll_one() for each batch of
// handlers, so an operation freed by its completion in there was gone by
// the next request, which allocated again. These lists last as long as the
// thread: a keep-alive request reuses the last one's blocks.
#include <cstddef>
#include <string>
#include <string_view>

namespace coronet::detail {

// Whether `s` holds heap memory (more than a short string's inline room):
// a string that does not is worth replacing by a recycled one.
inline bool holds_memory(const std::string& s) noexcept
{
  return s.capacity() > std::string{}.capacity();
}

// Write buffers: an idle connection holds none; one with something to send
// takes one that another connection of this thread gave back, with its
// capacity, and gives it back once it is written. Up to 16 per thread are
// kept, each of at most 16 KiB.
// The one of at least `at_least` bytes given back last, if any.
std::string take_buffer(std::size_t at_least = 0) noexcept;
void give_buffer(std::string&& b) noexcept;

// A copy of `text` in a buffer that a response already sent on this thread
// gave back: a body built from a literal or a view costs no allocation.
std::string recycled_string(std::string_view text);

void* op_allocate(std::size_t size);
void op_deallocate(void* p, std::size_t size) noexcept;

template <class T>
struct op_allocator {
  using value_type = T;
  op_allocator() noexcept = default;
  template <class U>
  op_allocator(const op_allocator<U>&) noexcept
  {
  }
  T* allocate(std::size_t n) { return static_cast<T*>(op_allocate(n * sizeof(T))); }
  void deallocate(T* p, std::size_t n) noexcept { op_deallocate(p, n * sizeof(T)); }
  template <class U>
  bool operator==(const op_allocator<U>&) const noexcept
  {
    return true;
  }
};

} // namespace coronet::detail
