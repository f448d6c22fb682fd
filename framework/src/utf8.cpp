#include <coronet/utf8.hpp>

#include <cstdint>
#include <cstring>

namespace coronet {

bool valid_utf8(std::string_view text) noexcept
{
  auto* p = reinterpret_cast<const unsigned char*>(text.data());
  auto* end = p + text.size();
  while (p < end) {
    // ASCII runs, eight bytes at a time.
    while (end - p >= 8) {
      std::uint64_t word;
      std::memcpy(&word, p, 8);
      if (word & 0x8080808080808080ull)
        break;
      p += 8;
    }
    if (p == end)
      break;
    unsigned char c = *p;
    if (c < 0x80) {
      ++p;
      continue;
    }
    int length;
    unsigned char low = 0x80, high = 0xBF; // the range of the second byte
    if (c >= 0xC2 && c <= 0xDF) {
      length = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
      length = 3;
      if (c == 0xE0)
        low = 0xA0; // overlong
      else if (c == 0xED)
        high = 0x9F; // surrogates
    } else if (c >= 0xF0 && c <= 0xF4) {
      length = 4;
      if (c == 0xF0)
        low = 0x90; // overlong
      else if (c == 0xF4)
        high = 0x8F; // above U+10FFFF
    } else {
      return false;
    }
    if (end - p < length)
      return false;
    if (p[1] < low || p[1] > high)
      return false;
    for (int i = 2; i < length; ++i)
      if ((p[i] & 0xC0) != 0x80)
        return false;
    p += length;
  }
  return true;
}

} // namespace coronet
