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

using coronet::detail::pooled_string;

void headers::add(std::string name, std::string value)
{
  if (fields_.capacity() == 0)
    fields_ = coronet::detail::take_pairs();
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
  coronet::detail::give_strings(fields_);
}

void headers::recycle() noexcept
{
  if (fields_.capacity() != 0)
    coronet::detail::give_pairs(std::move(fields_));
}

void headers::remove(std::string_view name)
{
  std::erase_if(fields_, [&](const field& f) { return iequals(f.first, name); });
}

} // namespace coronet::http
