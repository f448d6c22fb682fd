#include "websocket/frames.hpp"

#include <coronet/websocket/websocket.hpp>
#include <coronet/utf8.hpp>

#include <algorithm>
#include <optional>

namespace coronet::http::ws {

bool valid_close_code(std::uint16_t code) noexcept
{
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999);
}

frame_reader::result frame_reader::fail(std::uint16_t code, std::string_view why) noexcept
{
  failed_ = true;
  result r;
  r.kind = result::failure;
  r.code = code;
  r.why = why;
  return r;
}

// The first bytes of a frame: FIN, opcode, mask bit, the payload length
// (7 bits, or 16 or 64 after them) and, when masked, the key.
std::optional<frame_reader::result> frame_reader::read_header(std::span<const char> in, frame_header& h) noexcept
{
  result more;
  if (in.size() < 2) {
    more.needed = 2;
    return more;
  }
  const auto b0 = static_cast<std::uint8_t>(in[0]);
  const auto b1 = static_cast<std::uint8_t>(in[1]);
  h.fin = b0 & 0x80;
  h.op = b0 & 0x0F;
  h.masked = b1 & 0x80;
  h.length = b1 & 0x7F;
  h.size = 2;
  if (b0 & 0x70)
    return fail(close_code::protocol_error, "reserved bits set");
  if (h.masked != peer_masks_)
    return fail(close_code::protocol_error, peer_masks_ ? "client frames must be masked" : "server frames must not be masked");
  if (h.length >= 126) {
    const std::size_t extra = h.length == 126 ? 2 : 8;
    if (in.size() < 2 + extra) {
      more.needed = 2 + extra;
      return more;
    }
    h.length = 0;
    for (std::size_t i = 0; i < extra; ++i)
      h.length = h.length << 8 | static_cast<std::uint8_t>(in[2 + i]);
    h.size += extra;
    if (h.length >> 63)
      return fail(close_code::protocol_error, "frame length out of range");
  }
  if (h.masked)
    h.size += 4;
  return std::nullopt;
}

// Whether the frame may come now (RFC 6455 5.4, 5.5): checked before its
// payload is awaited, so a frame too big is never buffered.
std::optional<frame_reader::result> frame_reader::check(const frame_header& h) noexcept
{
  const bool control = h.op & 0x08;
  if (control) {
    if (h.op != opcode::close && h.op != opcode::ping && h.op != opcode::pong)
      return fail(close_code::protocol_error, "unknown opcode");
    if (!h.fin || h.length > 125)
      return fail(close_code::protocol_error, "control frames must be short and unfragmented");
    return std::nullopt;
  }
  if (h.op == opcode::continuation && !in_message_)
    return fail(close_code::protocol_error, "continuation frame without a message");
  if ((h.op == opcode::text || h.op == opcode::binary) && in_message_)
    return fail(close_code::protocol_error, "new message inside a fragmented one");
  if (h.op != opcode::continuation && h.op != opcode::text && h.op != opcode::binary)
    return fail(close_code::protocol_error, "unknown opcode");
  if (h.length > max_message_ - std::min(max_message_, message_.size()))
    return fail(close_code::message_too_big, "message too big");
  return std::nullopt;
}

frame_reader::result frame_reader::next(std::span<char> in)
{
  if (failed_)
    return fail(close_code::protocol_error, "the connection already failed");
  frame_header h;
  if (auto early = read_header(in, h))
    return *early;
  if (auto refused = check(h))
    return *refused;
  if (in.size() < h.size || in.size() - h.size < h.length) {
    result more;
    more.needed = h.size + static_cast<std::size_t>(h.length);
    return more;
  }
  char* payload = in.data() + h.size;
  const auto n = static_cast<std::size_t>(h.length);
  if (h.masked) {
    const char* mask = payload - 4;
    for (std::size_t i = 0; i < n; ++i)
      payload[i] = static_cast<char>(payload[i] ^ mask[i & 3]);
  }
  result r;
  r.used = h.size + n;
  const std::string_view body{payload, n};
  return h.op & 0x08 ? control_frame(h.op, body, r) : data_frame(h, body, r);
}

frame_reader::result frame_reader::control_frame(std::uint8_t op, std::string_view body, result& r) noexcept
{
  if (op == opcode::ping || op == opcode::pong) {
    r.kind = op == opcode::ping ? result::ping : result::pong;
    r.payload = body;
    return r;
  }
  if (body.size() == 1)
    return fail(close_code::protocol_error, "close frame of one byte");
  r.kind = result::close;
  r.code = close_code::no_status;
  if (body.size() >= 2) {
    r.code = static_cast<std::uint16_t>(static_cast<std::uint8_t>(body[0]) << 8 | static_cast<std::uint8_t>(body[1]));
    r.payload = body.substr(2);
    if (!valid_close_code(r.code))
      return fail(close_code::protocol_error, "invalid close code");
    if (!valid_utf8(r.payload))
      return fail(close_code::invalid_payload, "close reason is not UTF-8");
  }
  return r;
}

frame_reader::result frame_reader::data_frame(const frame_header& h, std::string_view body, result& r)
{
  if (h.op != opcode::continuation) {
    in_message_ = true;
    binary_ = h.op == opcode::binary;
  }
  message_.append(body);
  if (!h.fin) {
    r.kind = result::fragment;
    return r;
  }
  in_message_ = false;
  if (!binary_ && !valid_utf8(message_))
    return fail(close_code::invalid_payload, "text message is not UTF-8");
  r.kind = result::message;
  return r;
}

void frame_reader::shrink()
{
  if (message_.capacity() > 64 * 1024)
    std::string{}.swap(message_);
}

} // namespace coronet::http::ws
