#pragma once
// UTF-8 validation as RFC 3629 defines it: no overlong forms, no surrogates,
// nothing above U+10FFFF.
#include <string_view>

namespace coronet {

bool valid_utf8(std::string_view text) noexcept;

} // namespace coronet
