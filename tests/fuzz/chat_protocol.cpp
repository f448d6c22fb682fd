// libFuzzer target for the chat's line protocol: the bytes a TCP client
// sends, cut into lines (in pieces of 1 to 15 bytes or whole, as the first
// byte says, with a small or the default line limit), each line read as a
// command. Must never crash; a line handed on is never longer than the limit
// (plus a '\r') nor holds a '\n'; what parse() accepts is what the rooms rely
// on: text in UTF-8, names of allowed characters and length.
#include "chat/protocol.hpp"

#include <coronet/utf8.hpp>

#include <cstdint>
#include <cstdlib>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
  if (size == 0)
    return 0;
  chat::settings cfg;
  if (data[0] & 1) {
    cfg.max_line_bytes = 16;
    cfg.max_nick_bytes = 4;
    cfg.max_room_bytes = 6;
  }
  const std::size_t piece = (data[0] >> 4) == 0 ? size : (data[0] >> 4);
  std::string_view rest{reinterpret_cast<const char*>(data + 1), size - 1};
  chat::line_reader lines{cfg.max_line_bytes};
  while (!rest.empty()) {
    auto chunk = rest.substr(0, piece);
    rest.remove_prefix(chunk.size());
    lines.feed(chunk);
    for (auto e = lines.next(); e != chat::line_reader::event::none; e = lines.next()) {
      if (e == chat::line_reader::event::too_long)
        continue;
      auto line = lines.line();
      if (line.size() > cfg.max_line_bytes + 1 || line.find('\n') != std::string_view::npos)
        std::abort();
      using kind = chat::command::kind;
      auto c = chat::parse(line, cfg);
      switch (c.what) {
      case kind::blank:
        break;
      case kind::bad_line:
      case kind::unknown:
        if (c.error.empty())
          std::abort();
        break;
      case kind::say:
        if (c.arg.empty() || c.arg.front() == '/' || !coronet::valid_utf8(c.arg))
          std::abort();
        break;
      case kind::nick:
      case kind::join:
        if (c.error.empty() != chat::valid_name(c.arg, c.what == kind::nick ? cfg.max_nick_bytes : cfg.max_room_bytes))
          std::abort();
        break;
      default:
        break;
      }
    }
  }
  return 0;
}
