#pragma once
// An HTTP response as a handler builds it. The server adds Content-Length,
// Date, Server and Connection.
//
//   co_return http::response::text(http::status::ok, "hello\n");
//   co_return http::response::json(http::status::created, R"({"id":7})");
#include <coronet/http/headers.hpp>
#include <coronet/http/status.hpp>

#include <string>

namespace coronet::http {

struct response {
  http::status status = http::status::ok;
  http::headers headers;
  std::string body;

  static response text(http::status s, std::string body)
  {
    response r{s, {}, std::move(body)};
    r.headers.add("Content-Type", "text/plain; charset=utf-8");
    return r;
  }
  static response json(http::status s, std::string body)
  {
    response r{s, {}, std::move(body)};
    r.headers.add("Content-Type", "application/json");
    return r;
  }
};

} // namespace coronet::http
