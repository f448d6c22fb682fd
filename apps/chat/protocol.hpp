#pragma once
// The chat's line protocol apart from any socket: a TCP byte stream cut into
// lines, and a line read as a command. chat.cpp acts on the commands; the
// fuzz target (tests/fuzz/chat_protocol.cpp) feeds it bytes.
#include <coronet/config.hpp>

#include <chrono>
#include <cstddef>
#include <string>
#include <string_view>

namespace chat {

// The chat's keys (and its own default for server.listen).
inline constexpr coronet::config_key keys[] = {
  {"server.listen", "127.0.0.1:8090", "HTTP: the chat page at / and WebSocket at /ws"},
  {"chat.tcp_listen", "127.0.0.1:7070", "the line protocol over TCP"},
  {"chat.outbox_messages", 256, "lines waiting for a client; when full, it is disconnected", 1},
  {"chat.max_messages_per_second", 20.0, "per client (a burst of as many); more get an error line"},
  {"chat.max_line_bytes", 4096, "longer lines get an error line", 1},
  {"chat.announce_limit", 100, "rooms bigger than this tell only the one who joins or leaves", 1},
  {"chat.max_connections", 10000, "TCP clients at once; beyond this, accepting pauses", 1},
  {"chat.idle_timeout_ms", 300000, "a TCP client silent this long is disconnected", 1},
  {"chat.write_timeout_ms", 10000, "a client that takes nothing this long is disconnected", 1},
  {"chat.shutdown_timeout_ms", 5000, "on SIGINT/SIGTERM, how long clients get to leave", 1},
  {"chat.page_dir", "", "the page's directory (index.html); \"\": share/coronet/chat beside bin/"},
};

struct settings {
  std::size_t outbox_messages = coronet::config_default<std::size_t>(keys, "chat.outbox_messages");
  double max_messages_per_second = coronet::config_default<double>(keys, "chat.max_messages_per_second");
  std::size_t max_line_bytes = coronet::config_default<std::size_t>(keys, "chat.max_line_bytes");
  std::size_t max_nick_bytes = 32;
  std::size_t max_room_bytes = 64;
  std::size_t announce_limit = coronet::config_default<std::size_t>(keys, "chat.announce_limit");
  std::chrono::milliseconds idle_timeout{coronet::config_default<std::int64_t>(keys, "chat.idle_timeout_ms")};
  std::chrono::milliseconds write_timeout{coronet::config_default<std::int64_t>(keys, "chat.write_timeout_ms")};
};

// Cuts bytes into lines at '\n'. A line longer than max_line_bytes (plus a
// '\r') is reported once and its bytes skipped up to its end, so memory per
// client stays bounded whatever it sends.
class line_reader {
public:
  explicit line_reader(std::size_t max_line_bytes) : max_(max_line_bytes) {}

  enum class event { none, line, too_long };
  // The bytes to read next; they must stay valid until next() says none.
  void feed(std::string_view data) noexcept { data_ = data; }
  // A whole line (see line()), a line too long, or none: feed more.
  event next();
  // The line after event::line, without its '\n'; valid until next().
  std::string_view line() const noexcept { return line_; }

private:
  std::size_t max_;
  std::string_view data_;
  std::string pending_; // a line not yet whole
  std::string line_;
  bool overlong_ = false; // skipping the rest of a line that was too long
};

struct command {
  enum class kind {
    blank,    // an empty line: nothing to do
    bad_line, // too long or not UTF-8: `error` says which
    say,      // `arg`: the text
    nick,     // `arg`: the name; `error` when it is not a valid one
    join,     // `arg`: the room; `error` when it is not a valid name
    rooms,
    who,
    quit,
    unknown,  // `error` names the command
  };
  kind what = kind::blank;
  std::string_view arg;
  std::string error;
};

// Reads one line (a trailing '\r' is dropped). `arg` points into `text`.
command parse(std::string_view text, const settings& cfg);

// A nick or room name: 1 to `max` letters, digits, '_', '-' or '.'.
bool valid_name(std::string_view name, std::size_t max) noexcept;

} // namespace chat
