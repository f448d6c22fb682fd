#pragma once
// The per-thread memory a worker's requests draw from: one resource with one
// teardown rule, so that a keep-alive request costs no heap allocation.
//
// - strings by size class: small (at most 1 KiB: header values, route
//   parameters; 256 kept) and large (at most 16 KiB: request bodies, write
//   buffers, answers built from a literal; 16 kept);
// - vectors of string pairs (header fields; 64 kept, of at most 64 fields);
// - spare objects of a kind (a request parser with its buffers), kept
//   constructed: spares<T, Max>;
// - one 64 KiB read scratch;
// - blocks for Asio's operations (a socket read, a wait, a timer's handler),
//   by 16-byte size class up to 1 KiB, bound to each operation with
//   asio::bind_allocator(op_allocator<void>{}, token).
//
// Asio has a per-thread cache of its own, but it lives in the context that
// run()/poll_one() push for the length of one call and frees what it holds
// when the call returns; the worker loop calls poll_one() for each batch of
// handlers, so an operation freed by its completion in there was gone by
// the next request, which allocated again. This memory lasts as long as the
// thread: a keep-alive request reuses the last one's.
//
// The teardown rule: everything here belongs to one thread_local object.
// Once it is destroyed (the thread is ending), what is given back is freed
// and what is asked for comes from the heap.
#include <cstddef>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace coronet::detail {

// Whether `s` holds heap memory (more than a short string's inline room):
// a string that does not is worth replacing by a pooled one.
inline bool holds_memory(const std::string& s) noexcept
{
  return s.capacity() > std::string{}.capacity();
}

// A kept string of at least `at_least` bytes' capacity (a large one when 0:
// a buffer), the one given back last among those big enough; else empty.
std::string take_string(std::size_t at_least = 0) noexcept;
// Back to its size class (cleared), or freed when that class is full.
void give_string(std::string&& s) noexcept;

// `text` in a string of its own, from the pool when it needs heap room: a
// header value, a route parameter or a body made from a literal costs no
// allocation.
std::string pooled_string(std::string_view text);

using string_pairs = std::vector<std::pair<std::string, std::string>>;
// Each string back to the pool; `pairs` is left empty, its capacity kept.
void give_strings(string_pairs& pairs) noexcept;
// A kept vector (empty, with capacity), or an empty one.
string_pairs take_pairs() noexcept;
void give_pairs(string_pairs&& pairs) noexcept;

// Where a worker's connections read what does not fit their own buffer
// (pipelined batches, big requests), parsed at once, before the next read.
std::span<char> read_scratch() noexcept;

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

// Spare objects of one kind, per thread (see spares below).
std::size_t spare_kind(void (*destroy)(void*), std::size_t max) noexcept;
void* take_spare(std::size_t kind) noexcept;
bool give_spare(std::size_t kind, void* object) noexcept; // false: full, or the thread is ending

// Up to Max objects of type T kept constructed for reuse on each thread:
//   auto p = spares<request_parser, 256>::take();   // nullptr: make one
//   spares<request_parser, 256>::give(std::move(p)); // kept, or freed
template <class T, std::size_t Max>
struct spares {
  static std::unique_ptr<T> take() noexcept { return std::unique_ptr<T>(static_cast<T*>(take_spare(kind()))); }
  static void give(std::unique_ptr<T> object) noexcept
  {
    if (give_spare(kind(), object.get()))
      (void)object.release();
  }

private:
  static std::size_t kind() noexcept
  {
    static const std::size_t k = spare_kind([](void* p) { delete static_cast<T*>(p); }, Max);
    return k;
  }
};

} // namespace coronet::detail
