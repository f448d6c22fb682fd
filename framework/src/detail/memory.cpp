#include <coronet/detail/memory.hpp>

#include <array>
#include <cstdlib>
#include <new>
#include <utility>

namespace coronet::detail {

namespace {

// Blocks of 16-byte steps (malloc's own granularity: an operation pending on
// an idle connection takes no more room than it did from malloc) up to
// 1 KiB; at most 32 kept per step and thread.
constexpr std::size_t step = 16;
constexpr std::size_t classes = 64;
constexpr std::size_t keep = 32;

struct free_block {
  free_block* next;
};

// Set once the thread's lists are destroyed (a trivial thread_local, still
// readable then): what is freed later goes straight back to the heap.
thread_local bool gone = false;

struct free_lists {
  std::array<free_block*, classes> head{};
  std::array<std::size_t, classes> count{};
  ~free_lists()
  {
    gone = true;
    for (auto* b : head)
      while (b) {
        auto* next = b->next;
        ::operator delete(b);
        b = next;
      }
  }
};

thread_local free_lists lists;

std::size_t class_of(std::size_t size) noexcept
{
  return (size + step - 1) / step - 1;
}

struct buffers {
  std::array<std::string, 16> kept;
  std::size_t count = 0;
  ~buffers() { gone = true; }
};

thread_local buffers spare;

} // namespace

std::string take_buffer(std::size_t at_least) noexcept
{
  if (gone || spare.count == 0)
    return {};
  // The most recently given back that is big enough, else the most recent.
  for (std::size_t i = spare.count; i-- > 0;)
    if (spare.kept[i].capacity() >= at_least) {
      std::swap(spare.kept[i], spare.kept[spare.count - 1]);
      break;
    }
  return std::move(spare.kept[--spare.count]);
}

void give_buffer(std::string&& b) noexcept
{
  if (gone || !holds_memory(b) || b.capacity() > 16 * 1024 || spare.count == spare.kept.size()) {
    std::string{}.swap(b);
    return;
  }
  b.clear();
  spare.kept[spare.count++] = std::move(b);
  b = std::string{};
}

std::string recycled_string(std::string_view text)
{
  std::string s;
  if (text.size() > s.capacity()) // else it fits inline
    s = take_buffer(text.size());
  s.assign(text);
  return s;
}

void* op_allocate(std::size_t size)
{
  if (size == 0 || size > step * classes)
    return ::operator new(size);
  auto c = class_of(size);
  if (gone)
    return ::operator new((c + 1) * step);
  if (auto* b = lists.head[c]) {
    lists.head[c] = b->next;
    --lists.count[c];
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
  if (gone || lists.count[c] >= keep) {
    ::operator delete(p);
    return;
  }
  auto* b = static_cast<free_block*>(p);
  b->next = lists.head[c];
  lists.head[c] = b;
  ++lists.count[c];
}

} // namespace coronet::detail
