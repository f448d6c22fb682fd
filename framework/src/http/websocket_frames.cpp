#include "websocket_frames.hpp"

#include <coronet/http/websocket.hpp>
#include <coronet/utf8.hpp>

#include <algorithm>

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

frame_reader::result frame_reader::next(std::span<char> in)
{
  if (failed_)
    return fail(close_code::protocol_error, "the connection already failed");
  result r;
  if (in.size() < 2) {
    r.needed = 2;
    return r;
  }
  const auto b0 = static_cast<std::uint8_t>(in[0]);
  const auto b1 = static_cast<std::uint8_t>(in[1]);
  const bool fin = b0 & 0x80;
  const std::uint8_t op = b0 & 0x0F;
  const bool masked = b1 & 0x80;
  std::uint64_t length = b1 & 0x7F;
  std::size_t header = 2;
  if (b0 & 0x70)
    return fail(close_code::protocol_error, "reserved bits set");
  if (masked != peer_masks_)
    return fail(close_code::protocol_error, peer_masks_ ? "client frames must be masked" : "server frames must not be masked");
  if (length >= 126) {
    const std::size_t extra = length == 126 ? 2 : 8;
    if (in.size() < 2 + extra) {
      r.needed = 2 + extra;
      return r;
    }
    length = 0;
    for (std::size_t i = 0; i < extra; ++i)
      length = length << 8 | static_cast<std::uint8_t>(in[2 + i]);
    header += extra;
    if (length >> 63)
      return fail(close_code::protocol_error, "frame length out of range");
  }
  const bool control = op & 0x08;
  if (control) {
    if (op != opcode::close && op != opcode::ping && op != opcode::pong)
      return fail(close_code::protocol_error, "unknown opcode");
    if (!fin || length > 125)
      return fail(close_code::protocol_error, "control frames must be short and unfragmented");
  } else if (op == opcode::continuation) {
    if (!in_message_)
      return fail(close_code::protocol_error, "continuation frame without a message");
  } else if (op == opcode::text || op == opcode::binary) {
    if (in_message_)
      return fail(close_code::protocol_error, "new message inside a fragmented one");
  } else {
    return fail(close_code::protocol_error, "unknown opcode");
  }
  // Checked before the payload is awaited: a frame too big is never buffered.
  if (!control && length > max_message_ - std::min(max_message_, message_.size()))
    return fail(close_code::message_too_big, "message too big");
  if (masked)
    header += 4;
  if (in.size() < header || in.size() - header < length) {
    r.needed = header + static_cast<std::size_t>(length);
    return r;
  }
  char* payload = in.data() + header;
  const auto n = static_cast<std::size_t>(length);
  if (masked) {
    const char* mask = payload - 4;
    for (std::size_t i = 0; i < n; ++i)
      payload[i] = static_cast<char>(payload[i] ^ mask[i & 3]);
  }
  r.used = header + n;
  const std::string_view body{payload, n};

  if (control) {
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

  if (op != opcode::continuation) {
    in_message_ = true;
    binary_ = op == opcode::binary;
  }
  message_.append(body);
  if (!fin) {
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
