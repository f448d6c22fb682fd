#include "server_connection.hpp"

#include <coronet/http/headers.hpp>

#include <ctime>

namespace coronet::http::detail {

std::string_view http_date_now()
{
  thread_local std::time_t last = 0;
  thread_local char text[64] = {};
  std::time_t now = std::time(nullptr);
  if (now != last) {
    last = now;
    std::tm utc{};
    gmtime_r(&now, &utc);
    std::strftime(text, sizeof text, "%a, %d %b %Y %H:%M:%S GMT", &utc);
  }
  return text;
}

bool server_owned_header(std::string_view name) noexcept
{
  return iequals(name, "Content-Length") || iequals(name, "Connection") || iequals(name, "Date") ||
         iequals(name, "Transfer-Encoding");
}

} // namespace coronet::http::detail
