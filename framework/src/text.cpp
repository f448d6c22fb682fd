#include <coronet/text.hpp>

#include <algorithm>

namespace coronet {

bool iequals(std::string_view a, std::string_view b) noexcept
{
  // ASCII only, as header names and tokens are (no locale, no libc call).
  auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + ('a' - 'A')) : c; };
  return a.size() == b.size() &&
         std::equal(a.begin(), a.end(), b.begin(), [&](char x, char y) { return x == y || lower(x) == lower(y); });
}

std::string_view trim_blanks(std::string_view v) noexcept
{
  auto first = v.find_first_not_of(" \t");
  if (first == std::string_view::npos)
    return {};
  return v.substr(first, v.find_last_not_of(" \t") - first + 1);
}

std::vector<std::string_view> list_items(std::string_view value)
{
  std::vector<std::string_view> items;
  while (!value.empty()) {
    auto comma = value.find(',');
    if (auto item = trim_blanks(value.substr(0, comma)); !item.empty())
      items.push_back(item);
    if (comma == std::string_view::npos)
      break;
    value.remove_prefix(comma + 1);
  }
  return items;
}

std::vector<std::string> list_of(std::string_view value)
{
  std::vector<std::string> out;
  for (auto item : list_items(value))
    out.emplace_back(item);
  return out;
}

} // namespace coronet
