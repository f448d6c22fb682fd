#pragma once
// ASCII text as protocols and config files write it: tokens compared without
// case, blanks trimmed, comma-separated lists.
#include <string>
#include <string_view>
#include <vector>

namespace coronet {

// Equal ignoring ASCII case (header names, tokens; no locale).
bool iequals(std::string_view a, std::string_view b) noexcept;

// The items of a comma-separated value, blanks trimmed and empty ones
// dropped: "a, b,,c" -> a b c.
std::vector<std::string_view> list_items(std::string_view value);

// The same items as strings of their own.
std::vector<std::string> list_of(std::string_view value);

// `v` without the spaces and tabs around it.
std::string_view trim_blanks(std::string_view v) noexcept;

} // namespace coronet
