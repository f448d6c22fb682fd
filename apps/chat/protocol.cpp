#include "protocol.hpp"

#include <coronet/utf8.hpp>

#include <fmt/format.h>

#include <algorithm>

namespace chat {

line_reader::event line_reader::next()
{
  while (!data_.empty()) {
    const auto newline = data_.find('\n');
    const bool ends = newline != std::string_view::npos;
    const auto piece = data_.substr(0, newline);
    data_.remove_prefix(ends ? newline + 1 : data_.size());
    if (!overlong_ && pending_.size() + piece.size() > max_ + 1) { // + 1: a '\r'
      std::string{}.swap(pending_);
      overlong_ = !ends;
      return event::too_long;
    }
    if (overlong_) {
      overlong_ = !ends;
      continue;
    }
    pending_.append(piece);
    if (!ends)
      break;
    line_.swap(pending_);
    pending_.clear();
    return event::line;
  }
  return event::none;
}

bool valid_name(std::string_view name, std::size_t max) noexcept
{
  if (name.empty() || name.size() > max)
    return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
           c == '.';
  });
}

command parse(std::string_view text, const settings& cfg)
{
  using kind = command::kind;
  if (!text.empty() && text.back() == '\r')
    text.remove_suffix(1);
  if (text.size() > cfg.max_line_bytes)
    return {kind::bad_line, {}, fmt::format("error: line too long (at most {} bytes)", cfg.max_line_bytes)};
  if (!coronet::valid_utf8(text))
    return {kind::bad_line, {}, "error: not valid UTF-8"};
  if (text.empty())
    return {};
  if (text.front() != '/')
    return {kind::say, text, {}};

  const auto space = text.find(' ');
  const auto name = text.substr(0, space);
  auto arg = space == std::string_view::npos ? std::string_view{} : text.substr(space + 1);
  while (!arg.empty() && arg.front() == ' ')
    arg.remove_prefix(1);
  while (!arg.empty() && arg.back() == ' ')
    arg.remove_suffix(1);

  if (name == "/nick") {
    if (!valid_name(arg, cfg.max_nick_bytes))
      return {kind::nick, arg, fmt::format("error: a nick is 1 to {} letters, digits, '_', '-' or '.'", cfg.max_nick_bytes)};
    return {kind::nick, arg, {}};
  }
  if (name == "/join") {
    if (!valid_name(arg, cfg.max_room_bytes))
      return {kind::join, arg,
        fmt::format("error: a room name is 1 to {} letters, digits, '_', '-' or '.'", cfg.max_room_bytes)};
    return {kind::join, arg, {}};
  }
  if (name == "/rooms")
    return {kind::rooms, arg, {}};
  if (name == "/who")
    return {kind::who, arg, {}};
  if (name == "/quit")
    return {kind::quit, arg, {}};
  return {kind::unknown, name, fmt::format("error: unknown command {} (try /nick, /join, /rooms, /who, /quit)", name)};
}

} // namespace chat
