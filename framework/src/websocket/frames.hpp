#pragma once
// The WebSocket frame reader (RFC 6455 section 5), apart from any socket:
// it takes the bytes received so far and says what they make — a whole
// message, a ping, a pong, a close, a protocol failure with its close code,
// or how many bytes it needs first. The session (websocket.cpp) reads the
// socket; the fuzz target (tests/fuzz/websocket_frames.cpp) feeds it bytes.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace coronet::http::ws {

enum opcode : std::uint8_t { continuation = 0, text = 1, binary = 2, close = 8, ping = 9, pong = 10 };

// Close codes a peer may send (RFC 6455 section 7.4 and the IANA registry).
bool valid_close_code(std::uint16_t code) noexcept;

class frame_reader {
public:
  // `peer_masks`: the peer is a client, whose frames must be masked (a
  // server's must not be).
  frame_reader(std::size_t max_message_bytes, bool peer_masks) noexcept
    : max_message_(max_message_bytes), peer_masks_(peer_masks)
  {
  }

  struct result {
    // fragment: a frame of a message not yet whole was taken; read on.
    enum kind_t { need_more, fragment, message, ping, pong, close, failure } kind = need_more;
    std::size_t used = 0;       // bytes of the input taken (every kind but need_more and failure)
    std::size_t needed = 0;     // need_more: the input must hold this many bytes
    std::string_view payload;   // ping, pong: the payload (unmasked in the input); close: the reason
    std::uint16_t code = 0;     // close: the peer's code (no_status for none); failure: the code to close with
    std::string_view why;       // failure: what was wrong
  };

  // Reads the input's first frame. Masked payloads are unmasked in place;
  // a data frame's payload is moved into the message being assembled. After
  // a failure the reader is done: the connection must be closed.
  result next(std::span<char> in);

  // The message after a `message` result; the reader starts a new one.
  std::string take_message() { return std::move(message_); }
  bool binary() const noexcept { return binary_; }
  // Bytes of a fragmented message assembled so far.
  std::size_t assembling() const noexcept { return message_.size(); }
  // Gives a big message buffer's memory back.
  void shrink();

private:
  struct frame_header {
    bool fin = false;
    std::uint8_t op = 0;
    bool masked = false;
    std::uint64_t length = 0; // of the payload
    std::size_t size = 0;     // of the header, the mask key included
  };
  // Each returns a result to give back at once (need_more, failure), or
  // std::nullopt to go on.
  std::optional<result> read_header(std::span<const char> in, frame_header& h) noexcept;
  std::optional<result> check(const frame_header& h) noexcept;
  result control_frame(std::uint8_t op, std::string_view body, result& r) noexcept;
  result data_frame(const frame_header& h, std::string_view body, result& r);
  result fail(std::uint16_t code, std::string_view why) noexcept;

  std::size_t max_message_;
  bool peer_masks_;
  bool in_message_ = false;
  bool binary_ = false;
  bool failed_ = false;
  std::string message_;
};

} // namespace coronet::http::ws
