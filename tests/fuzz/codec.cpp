// libFuzzer target for the request-body decompressor: the first byte
// chooses the coding (gzip, deflate, zstd, br) and the rest is the body.
// Must never crash or use memory past its limit: the output stays within
// it, and a refusal is http::error 413 (too large) or 400 (not valid).
#include "middleware/codec.hpp"

#include <coronet/http/error.hpp>

#include <cstdint>
#include <cstdlib>
#include <string_view>

namespace http = coronet::http;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
  if (size == 0)
    return 0;
  using http::detail::coding;
  static constexpr coding codings[] = {coding::gzip, coding::deflate, coding::zstd, coding::br};
  constexpr std::size_t limit = 256 * 1024;
  std::string_view body{reinterpret_cast<const char*>(data + 1), size - 1};
  try {
    auto out = http::detail::decompress(codings[data[0] % 4], body, limit);
    if (out.size() > limit)
      std::abort();
  } catch (const http::error& e) {
    auto c = http::code(e.status());
    if (c != 400 && c != 413)
      std::abort();
  }
  return 0;
}
