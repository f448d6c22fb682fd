#pragma once
// The chat's line protocol apart from any socket: a TCP byte stream cut into
// lines, and a line read as a command. chat.cpp acts on the commands; the
// fuzz target (tests/fuzz/chat_protocol.cpp) feeds it bytes.
#include <chrono>
#include <cstddef>
#include <string>
#include <string_view>

namespace chat {

struct settings {
  std::size_t outbox_messages = 256;
  double max_messages_per_second = 20;
  std::size_t max_line_bytes = 4096;
  std::size_t max_nick_bytes = 32;
  std::size_t max_room_bytes = 64;
  std::size_t announce_limit = 100; // bigger rooms tell only the one who joins or leaves
  std::chrono::milliseconds idle_timeout{300000};
  std::chrono::milliseconds write_timeout{10000};
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
