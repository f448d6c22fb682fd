#include <coronet/http/headers.hpp>

#include <coronet/detail/memory.hpp>

#include <algorithm>
#include <cctype>
#include <string>

namespace coronet::http {

std::optional<std::string_view> headers::get(std::string_view name) const noexcept
{
  for (auto& [k, v] : fields_)
    if (iequals(k, name))
      return std::string_view{v};
  return std::nullopt;
}

std::size_t headers::count(std::string_view name) const noexcept
{
  return static_cast<std::size_t>(
    std::count_if(fields_.begin(), fields_.end(), [&](const field& f) { return iequals(f.first, name); }));
}

namespace {

// This thread's spare header storage (see headers.hpp).
struct header_pool {
  static constexpr std::size_t max_strings = 256;
  static constexpr std::size_t max_string_bytes = 1024;
  static constexpr std::size_t max_vectors = 64;
  static constexpr std::size_t max_vector_fields = 64;
  std::vector<std::string> strings;
  std::vector<std::vector<headers::field>> vectors;
  header_pool()
  {
    strings.reserve(max_strings);
    vectors.reserve(max_vectors);
  }
  ~header_pool();
};

// Set once the thread's pool is destroyed (a trivial thread_local, still
// readable then): headers that outlive it free their storage as usual.
thread_local bool pool_gone = false;

header_pool::~header_pool()
{
  pool_gone = true;
}

header_pool* pool() noexcept
{
  if (pool_gone)
    return nullptr;
  thread_local header_pool p;
  return &p;
}

} // namespace

namespace detail {

// `value` in a string that may come from the pool: only a value too long
// for a short string's inline room needs one.
std::string pooled_string(std::string_view value)
{
  std::string s;
  if (value.size() > s.capacity()) {
    if (auto* p = pool(); p && !p->strings.empty()) {
      s = std::move(p->strings.back());
      p->strings.pop_back();
    }
  }
  s.assign(value);
  return s;
}

namespace {

void give_string(std::string&& s) noexcept
{
  auto* p = pool();
  if (!p || !coronet::detail::holds_memory(s) || s.capacity() > header_pool::max_string_bytes ||
      p->strings.size() >= header_pool::max_strings)
    return;
  s.clear();
  p->strings.push_back(std::move(s)); // within the capacity reserved: no allocation
}

} // namespace

void give_strings(std::vector<std::pair<std::string, std::string>>& pairs) noexcept
{
  for (auto& [name, value] : pairs) {
    give_string(std::move(name));
    give_string(std::move(value));
  }
  pairs.clear();
}

} // namespace detail

using detail::pooled_string;

void headers::add(std::string name, std::string value)
{
  if (fields_.capacity() == 0) {
    if (auto* p = pool(); p && !p->vectors.empty()) {
      fields_ = std::move(p->vectors.back());
      p->vectors.pop_back();
    }
  }
  fields_.emplace_back(std::move(name), std::move(value));
}

void headers::add_copy(std::string_view name, std::string_view value)
{
  add(pooled_string(name), pooled_string(value));
}

void headers::set(std::string_view name, std::string value)
{
  remove(name);
  add(pooled_string(name), std::move(value));
}

void headers::set_copy(std::string_view name, std::string_view value)
{
  remove(name);
  add_copy(name, value);
}

void headers::clear() noexcept
{
  detail::give_strings(fields_);
}

void headers::recycle() noexcept
{
  if (fields_.capacity() == 0)
    return;
  clear();
  auto* p = pool();
  if (p && fields_.capacity() <= header_pool::max_vector_fields && p->vectors.size() < header_pool::max_vectors)
    p->vectors.push_back(std::move(fields_));
  fields_ = {};
}

void headers::remove(std::string_view name)
{
  std::erase_if(fields_, [&](const field& f) { return iequals(f.first, name); });
}

} // namespace coronet::http
