#include <coronet/redis/reply.hpp>

#include <fmt/format.h>

#include <charconv>

namespace coronet::redis {

namespace {

std::string_view kind_name(reply::kind k) noexcept
{
  switch (k) {
  case reply::kind::nil: return "nil";
  case reply::kind::string: return "a string";
  case reply::kind::status: return "a status";
  case reply::kind::integer: return "an integer";
  case reply::kind::array: return "an array";
  case reply::kind::error: return "an error";
  }
  return "?";
}

} // namespace

std::optional<std::string> reply::as_string() const
{
  if (type == kind::string || type == kind::status)
    return text;
  if (type == kind::nil)
    return std::nullopt;
  if (type == kind::error)
    throw error(errc::server, text);
  throw error(errc::protocol, fmt::format("Redis replied with {}, not a string", kind_name(type)));
}

std::int64_t reply::as_integer() const
{
  if (type == kind::integer)
    return integer;
  if (type == kind::error)
    throw error(errc::server, text);
  std::int64_t v = 0;
  if (type == kind::string) {
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (ec == std::errc{} && end == text.data() + text.size())
      return v;
  }
  throw error(errc::protocol, fmt::format("Redis replied with {}, not an integer", kind_name(type)));
}

std::string_view to_string(errc kind) noexcept
{
  switch (kind) {
  case errc::unavailable: return "unavailable";
  case errc::timeout: return "timeout";
  case errc::connection: return "connection";
  case errc::server: return "server";
  case errc::protocol: return "protocol";
  }
  return "unknown";
}

int http_status(errc kind) noexcept
{
  switch (kind) {
  case errc::unavailable: return 503;
  case errc::timeout: return 504;
  case errc::connection: return 503;
  case errc::server: return 500;
  case errc::protocol: return 502;
  }
  return 500;
}

std::string error::client_message() const
{
  switch (kind_) {
  case errc::unavailable:
  case errc::connection: return "the cache is out of reach";
  case errc::timeout: return "the cache did not answer in time";
  case errc::server:
  case errc::protocol: break;
  }
  return "the cache refused the command";
}

} // namespace coronet::redis
