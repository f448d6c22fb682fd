#pragma once
// WebSocket (RFC 6455) on the HTTP server: a route that upgrades, and a
// connection that sends and receives whole messages.
//
//   task<void> echo(http::websocket& ws)
//   {
//     while (auto m = co_await ws.receive())
//       co_await ws.send(std::move(*m));
//   }
//   router.get("/ws", http::accept_websocket(http::websocket_options::from(cfg), echo));
//
// The handshake is checked: a request that is not a WebSocket upgrade gets
// 426 with `Upgrade: websocket`, another version than 13 gets 426 with
// `Sec-WebSocket-Version: 13`, a malformed key or a missing
// `Connection: Upgrade` gets 400.
//
// Then the protocol is enforced as the RFC asks of a server: client frames
// must be masked, reserved bits and opcodes are refused, control frames are
// short and unfragmented, fragments are joined into one message, text must
// be UTF-8, close codes must be valid. A violation closes with 1002 (1007
// for bad UTF-8, 1009 for a message over max_message_bytes). Pings are
// answered, and a silent peer is pinged and then dropped.
//
// Sending goes through a bounded queue written by a task of its own, so a
// slow reader applies backpressure: send() waits while the queue is full,
// try_send() says false instead (drop the message, or drop the client), and
// a peer that takes nothing for write_timeout is disconnected.
//
// When the runtime stops, the connection is closed with 1001.
#include <coronet/config.hpp>
#include <coronet/http/request.hpp>
#include <coronet/http/response.hpp>
#include <coronet/http/router.hpp>
#include <coronet/sync/channel.hpp>
#include <coronet/task.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace coronet::http {

struct upgraded;

inline constexpr config_key ws_keys[] = {
  {"ws.max_message_bytes", 1048576, "a bigger WebSocket message -> close 1009", 1},
  {"ws.send_queue_messages", 64, "messages waiting to go out; then send() waits", 1},
  {"ws.write_timeout_ms", 10000, "a peer that reads nothing this long is dropped", 1},
  {"ws.idle_timeout_ms", 60000, "a silent peer is pinged at half this, dropped at the full time", 1},
  {"ws.close_timeout_ms", 5000, "how long to wait for the peer's close frame", 1},
};

struct websocket_options {
  std::size_t max_message_bytes = config_default<std::size_t>(ws_keys, "ws.max_message_bytes");
  std::size_t send_queue_messages = config_default<std::size_t>(ws_keys, "ws.send_queue_messages");
  std::chrono::milliseconds write_timeout{config_default<std::int64_t>(ws_keys, "ws.write_timeout_ms")};
  std::chrono::milliseconds idle_timeout{config_default<std::int64_t>(ws_keys, "ws.idle_timeout_ms")};
  std::chrono::milliseconds close_timeout{config_default<std::int64_t>(ws_keys, "ws.close_timeout_ms")};

  // The [ws] keys; a bad value is a config_error naming where it was set.
  static websocket_options from(const config& cfg);
};

// Close codes (RFC 6455 section 7.4.1).
namespace close_code {
inline constexpr std::uint16_t normal = 1000;
inline constexpr std::uint16_t going_away = 1001;
inline constexpr std::uint16_t protocol_error = 1002;
inline constexpr std::uint16_t unsupported_data = 1003;
inline constexpr std::uint16_t no_status = 1005;  // never sent: the close frame had no code
inline constexpr std::uint16_t abnormal = 1006;   // never sent: the connection broke without a close frame
inline constexpr std::uint16_t invalid_payload = 1007;
inline constexpr std::uint16_t policy_violation = 1008;
inline constexpr std::uint16_t message_too_big = 1009;
inline constexpr std::uint16_t internal_error = 1011;
} // namespace close_code

struct websocket_message {
  std::string data;
  bool binary = false;
};

class websocket final {
public:
  websocket(upgraded& connection, websocket_options options);
  ~websocket();
  websocket(const websocket&) = delete;
  websocket& operator=(const websocket&) = delete;

  // The next whole message; std::nullopt once the connection is closed
  // (close_code() says how). Only one task may receive at a time.
  task<std::optional<websocket_message>> receive();

  // Queues a message, waiting while the send queue is full. Throws
  // std::system_error (coronet::errc::channel_closed) once the connection is
  // closing. Any task on any worker may send.
  task<void> send(websocket_message message);
  task<void> send_text(std::string text) { return send(websocket_message{std::move(text), false}); }
  // Queues a message if there is room: false when the queue is full or the
  // connection is closing.
  bool try_send(websocket_message message);

  // Starts the close handshake: sends a close frame after what is queued;
  // receive() then returns std::nullopt once the peer answers (or after
  // close_timeout). Idempotent.
  void close(std::uint16_t code = close_code::normal, std::string_view reason = {});

  bool closing() const noexcept;
  // Why the connection closed: the code the peer sent (or we did, when we
  // closed first), 1005 for a close frame without a code, 1006 when the
  // connection broke without one.
  std::uint16_t close_code() const noexcept;
  const std::string& close_reason() const noexcept;

  // Runs the connection: `session` with the websocket, then the close
  // handshake. What response::upgrade runs after accept() answers 101.
  static task<void> run(upgraded& connection, websocket_options options,
    std::function<task<void>(websocket&)> session);

private:
  struct state;
  std::shared_ptr<state> state_;
};

// Checks the handshake of `req`: the 101 response with its Sec-WebSocket-
// Accept, or the 400/426 refusal. Exposed for tests and custom handlers.
response websocket_handshake(const request& req);

using websocket_session = std::function<task<void>(websocket&)>;

// A route handler that upgrades to WebSocket and runs `session` on each
// connection. The session should return when receive() gives std::nullopt;
// tasks it spawned that use the websocket must end before it returns.
handler accept_websocket(websocket_options options, websocket_session session);

} // namespace coronet::http
