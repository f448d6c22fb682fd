#pragma once
// What the server's HTTP/1 and HTTP/2 connections share: the settings every
// connection of one server reads, and the link the drain reaches them by.
#include <coronet/http/router.hpp>
#include <coronet/http/server.hpp>
#include <coronet/runtime.hpp>

#include <string_view>

namespace coronet::http::detail {

struct connection_settings {
  runtime& rt;
  const server_options& options;
  const router& routes;
};

// A connection in its worker's list, for the drain.
class server_connection {
public:
  // The server is stopping: finish what is in flight, take nothing new.
  // Call from the connection's worker.
  virtual void drain() noexcept = 0;

  server_connection* prev_ = nullptr;
  server_connection* next_ = nullptr;
  bool linked_ = false;

protected:
  ~server_connection() = default;
};

// "Tue, 15 Nov 1994 08:12:31 GMT", formatted at most once a second per worker.
std::string_view http_date_now();

// Whether a response with this status carries a body at all.
inline bool response_has_body(status s) noexcept
{
  int c = code(s);
  return c >= 200 && c != 204 && c != 304;
}

// Response headers the server owns on either protocol.
bool server_owned_header(std::string_view name) noexcept;

} // namespace coronet::http::detail
