#pragma once
// Content codings both ways, without the middleware around them (so the
// decompressor can be fuzzed alone): which coding a name means, and a
// bounded decompressor for request bodies.
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace coronet::http::detail {

enum class coding { identity, gzip, deflate, zstd, br };

std::string_view name_of(coding c) noexcept;
// "gzip" (or "x-gzip"), "deflate", "zstd", "br", any case; std::nullopt for another.
std::optional<coding> coding_named(std::string_view name) noexcept;

// Decompresses `in`, throwing http::error 413 as soon as the output passes
// `limit` (a zip bomb is never inflated whole) and 400 for a body that is
// not valid in that coding (cut short included).
std::string decompress(coding c, std::string_view in, std::size_t limit);

} // namespace coronet::http::detail
