#include <coronet/detail/memory.hpp>

#include <array>
#include <atomic>
#include <cstdlib>
#include <new>
#include <utility>

namespace coronet::detail {

namespace {

// Operation blocks: 16-byte steps (malloc's own granularity: an operation
// pending on an idle connection takes no more room than it did from
// malloc) up to 1 KiB; at most 32 kept per step.
constexpr std::size_t step = 16;
constexpr std::size_t classes = 64;
constexpr std::size_t keep_blocks = 32;

// Strings: the two size classes.
constexpr std::size_t small_bytes = 1024, small_kept = 256;
constexpr std::size_t large_bytes = 16 * 1024, large_kept = 16;
constexpr std::size_t pairs_kept = 64, pairs_fields = 64;

// Spare objects: kinds registered once per type, for every thread.
constexpr std::size_t max_kinds = 8;
struct kind_info {
  void (*destroy)(void*) = nullptr;
  std::size_t max = 0;
};
std::array<kind_info, max_kinds> kinds;
std::atomic<std::size_t> kind_count{0};

struct free_block {
  free_block* next;
};

// Set once the thread's memory is destroyed (a trivial thread_local, still
// readable then): what is given back later goes straight to the heap.
thread_local bool gone = false;

struct thread_memory;
// The thread's memory once made. A trivial thread_local, so that the hot
// path reads it without the initialisation check a thread_local object with
// a constructor costs on every access (measured: 360 instructions a request).
thread_local thread_memory* current = nullptr;

struct thread_memory {
  std::array<free_block*, classes> block_head{};
  std::array<std::size_t, classes> block_count{};
  std::vector<std::string> small, large;
  std::vector<string_pairs> pairs;
  std::array<std::vector<void*>, max_kinds> spare;

  thread_memory()
  {
    small.reserve(small_kept); // the lists never grow past these: giving back never allocates
    large.reserve(large_kept);
    pairs.reserve(pairs_kept);
  }
  ~thread_memory()
  {
    gone = true;
    current = nullptr;
    for (auto* b : block_head)
      while (b) {
        auto* next = b->next;
        ::operator delete(b);
        b = next;
      }
    for (std::size_t k = 0; k < max_kinds; ++k)
      for (void* object : spare[k])
        kinds[k].destroy(object);
  }
};

// This thread's memory, made on first use; nullptr once the thread is ending.
thread_memory* memory() noexcept
{
  if (current) [[likely]]
    return current;
  if (gone)
    return nullptr;
  thread_local thread_memory m;
  current = &m;
  return current;
}

std::size_t class_of(std::size_t size) noexcept
{
  return (size + step - 1) / step - 1;
}

// The last string of `from` with at least `at_least` bytes' room, if any
// (the one given back last nearly always is: the fast path).
inline std::string take_from(std::vector<std::string>& from, std::size_t at_least) noexcept
{
  std::size_t i = from.size();
  while (i > 0 && from[i - 1].capacity() < at_least)
    --i;
  if (i == 0)
    return {};
  if (i != from.size())
    std::swap(from[i - 1], from.back());
  std::string s = std::move(from.back());
  from.pop_back();
  return s;
}

// `s` back to its size class in `m`, or freed when there is none (or no room).
inline void put(thread_memory* m, std::string& s) noexcept
{
  if (!holds_memory(s))
    return; // nothing on the heap: nothing to keep
  std::vector<std::string>* to = nullptr;
  if (m)
    to = s.capacity() <= small_bytes ? &m->small : s.capacity() <= large_bytes ? &m->large : nullptr;
  if (!to || to->size() == to->capacity()) {
    std::string{}.swap(s);
    return;
  }
  s.clear();
  to->push_back(std::move(s)); // within the capacity reserved: no allocation
  s = std::string{};
}

} // namespace

std::string take_string(std::size_t at_least) noexcept
{
  auto* m = memory();
  if (!m)
    return {};
  if (at_least == 0) // a buffer: the one given back last
    return take_from(m->large, 0);
  if (at_least <= small_bytes)
    if (auto s = take_from(m->small, at_least); holds_memory(s))
      return s;
  return take_from(m->large, at_least);
}

void give_string(std::string&& s) noexcept
{
  put(memory(), s);
}

std::string pooled_string(std::string_view text)
{
  std::string s;
  if (text.size() > s.capacity()) // else it fits inline
    s = take_string(text.size());
  s.assign(text);
  return s;
}

void give_strings(string_pairs& pairs) noexcept
{
  auto* m = memory();
  for (auto& [name, value] : pairs) {
    put(m, name);
    put(m, value);
  }
  pairs.clear();
}

string_pairs take_pairs() noexcept
{
  auto* m = memory();
  if (!m || m->pairs.empty())
    return {};
  string_pairs v = std::move(m->pairs.back());
  m->pairs.pop_back();
  return v;
}

void give_pairs(string_pairs&& pairs) noexcept
{
  give_strings(pairs);
  auto* m = memory();
  if (m && pairs.capacity() > 0 && pairs.capacity() <= pairs_fields && m->pairs.size() < pairs_kept)
    m->pairs.push_back(std::move(pairs));
  pairs = {};
}

std::span<char> read_scratch() noexcept
{
  // Trivial, so it needs no teardown: usable until the thread's very end.
  thread_local std::array<char, 64 * 1024> scratch;
  return scratch;
}

void* op_allocate(std::size_t size)
{
  if (size == 0 || size > step * classes)
    return ::operator new(size);
  auto c = class_of(size);
  auto* m = memory();
  if (m && m->block_head[c]) {
    auto* b = m->block_head[c];
    m->block_head[c] = b->next;
    --m->block_count[c];
    return b;
  }
  return ::operator new((c + 1) * step);
}

void op_deallocate(void* p, std::size_t size) noexcept
{
  if (size == 0 || size > step * classes) {
    ::operator delete(p);
    return;
  }
  auto c = class_of(size);
  auto* m = memory();
  if (!m || m->block_count[c] >= keep_blocks) {
    ::operator delete(p);
    return;
  }
  auto* b = static_cast<free_block*>(p);
  b->next = m->block_head[c];
  m->block_head[c] = b;
  ++m->block_count[c];
}

std::size_t spare_kind(void (*destroy)(void*), std::size_t max) noexcept
{
  auto k = kind_count.fetch_add(1);
  if (k >= max_kinds)
    std::abort(); // a programming error: raise max_kinds
  kinds[k] = kind_info{destroy, max};
  return k;
}

void* take_spare(std::size_t kind) noexcept
{
  auto* m = memory();
  if (!m)
    return nullptr;
  auto& list = m->spare[kind];
  if (list.empty())
    return nullptr;
  void* object = list.back();
  list.pop_back();
  return object;
}

bool give_spare(std::size_t kind, void* object) noexcept
{
  auto* m = memory();
  if (!m)
    return false;
  auto& list = m->spare[kind];
  if (list.capacity() == 0) {
    try {
      list.reserve(kinds[kind].max); // once per thread and kind: giving back never allocates after
    } catch (const std::bad_alloc&) {
      return false;
    }
  }
  if (list.size() >= kinds[kind].max)
    return false;
  list.push_back(object);
  return true;
}

} // namespace coronet::detail
