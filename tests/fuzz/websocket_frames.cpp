// libFuzzer target for the WebSocket frame reader. The first byte chooses
// the side (a server reading masked client frames, or a client reading
// unmasked server frames), the message limit and how the rest arrives: in
// pieces of 1 to 16 bytes, as a slow peer sends them, or whole. The reader
// must never crash, read past its input, take more than it has, ask for
// less than it has, let a message grow past the limit or a text message
// that is not UTF-8 through, nor go on after a failure.
#include "websocket/frames.hpp"

#include <coronet/utf8.hpp>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace ws = coronet::http::ws;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
  if (size == 0)
    return 0;
  const std::uint8_t choice = data[0];
  const bool peer_masks = choice & 1;
  const std::size_t limit = (choice & 2) ? 64 : 1 << 16;
  const std::size_t piece = (choice >> 4) == 0 ? size : (choice >> 4);
  ws::frame_reader reader{limit, peer_masks};

  std::vector<char> in; // what arrived and is not yet taken
  std::size_t at = 1;
  bool failed = false;
  while (at < size && !failed) {
    auto n = std::min(piece, size - at);
    in.insert(in.end(), data + at, data + at + n);
    at += n;
    for (;;) {
      auto r = reader.next({in.data(), in.size()});
      if (r.kind == ws::frame_reader::result::need_more) {
        if (r.needed <= in.size())
          std::abort(); // asked for what it already has: would wait for ever
        break;
      }
      if (r.kind == ws::frame_reader::result::failure) {
        if (r.why.empty() || (r.code != 1002 && r.code != 1007 && r.code != 1009))
          std::abort();
        if (reader.next({in.data(), in.size()}).kind != ws::frame_reader::result::failure)
          std::abort();
        failed = true;
        break;
      }
      if (r.used == 0 || r.used > in.size())
        std::abort();
      switch (r.kind) {
      case ws::frame_reader::result::ping:
      case ws::frame_reader::result::pong:
        if (r.payload.size() > 125)
          std::abort();
        break;
      case ws::frame_reader::result::close:
        if (r.payload.size() > 123 || !coronet::valid_utf8(r.payload))
          std::abort();
        break;
      case ws::frame_reader::result::message: {
        bool binary = reader.binary();
        auto m = reader.take_message();
        if (m.size() > limit || (!binary && !coronet::valid_utf8(m)))
          std::abort();
        break;
      }
      default:
        if (reader.assembling() > limit)
          std::abort();
        break;
      }
      in.erase(in.begin(), in.begin() + static_cast<std::ptrdiff_t>(r.used));
    }
  }
  return 0;
}
