#pragma once
// An HTTP response as a handler builds it. The server adds Content-Length,
// Date, Server and Connection.
//
//   co_return http::response::text(http::status::ok, "hello\n");
//   co_return http::response::json(http::status::created, R"({"id":7})");
//
// A body too big or too slow to build in memory is streamed: the server
// sends the headers, then runs the producer, which writes the body piece by
// piece (chunked for HTTP/1.1, close-delimited for HTTP/1.0). Each write
// waits for the socket, so a slow client slows the producer instead of
// growing a buffer.
//
//   co_return http::response::streamed(http::status::ok, "text/plain",
//     [](http::body_writer& out) -> task<void> {
//       for (int i = 0; i < 3; ++i)
//         co_await out.write("tick\n");
//     });
#include <coronet/detail/memory.hpp>
#include <coronet/http/headers.hpp>
#include <coronet/http/status.hpp>
#include <coronet/task.hpp>

#include <functional>
#include <string>
#include <string_view>
#include <type_traits>

namespace coronet::http {

// What a body can be copied from: a literal, a string_view (a std::string
// is moved in instead).
template <class T>
concept body_view = std::is_convertible_v<const T&, std::string_view> && !std::is_same_v<T, std::string>;

struct upgraded; // see upgrade.hpp

// Where a streamed body goes. write() throws std::system_error when the
// client is gone or too slow (http.write_timeout_ms); let it propagate.
class body_writer {
public:
  virtual task<void> write(std::string_view data) = 0;
  // Fields sent after the body (the response's trailers): a producer adds
  // those it knows only at the end (a status, a checksum) before it returns.
  http::headers& trailers() noexcept { return trailers_; }
  // The response's own fields while they are not sent yet, else nullptr.
  // HTTP/2 holds a gRPC call's headers until its first message (which
  // lets a call add metadata, or answer with its trailers alone); HTTP/1.1
  // has sent them before the producer starts.
  http::headers* unsent_headers() noexcept { return unsent_headers_; }

protected:
  explicit body_writer(http::headers& trailers, http::headers* unsent = nullptr)
    : unsent_headers_(unsent), trailers_(trailers)
  {
  }
  ~body_writer() = default;

  http::headers* unsent_headers_;

private:
  http::headers& trailers_;
};

using body_producer = std::function<task<void>(body_writer&)>;

// Takes the connection over after a 101 Switching Protocols response
// (WebSocket: see websocket.hpp). The connection closes when it returns.
using upgrade_handler = std::function<task<void>(upgraded&)>;

struct response {
  http::status status = http::status::ok;
  http::headers headers;
  std::string body;
  body_producer stream; // when set, the body comes from here and `body` is ignored
  upgrade_handler upgrade; // with status 101: runs on the connection once the headers are out
  // Fields after the body: on HTTP/2 a HEADERS frame that ends the stream;
  // on HTTP/1.1 the last chunk's fields, so only with a streamed body (a
  // buffered one goes with Content-Length, which has no place for them).
  // Framing and connection fields are never sent as trailers.
  http::headers trailers;

  static response text(http::status s, std::string body)
  {
    response r{s, {}, std::move(body), {}, {}, {}};
    r.headers.add("Content-Type", "text/plain; charset=utf-8");
    return r;
  }
  static response json(http::status s, std::string body)
  {
    response r{s, {}, std::move(body), {}, {}, {}};
    r.headers.add("Content-Type", "application/json");
    return r;
  }
  template <body_view Body>
  static response text(http::status s, const Body& body)
  {
    return text(s, coronet::detail::pooled_string(body));
  }
  template <body_view Body>
  static response json(http::status s, const Body& body)
  {
    return json(s, coronet::detail::pooled_string(body));
  }
  // The producer lives until the body ends; it may hold what it streams.
  static response streamed(http::status s, std::string content_type, body_producer producer)
  {
    response r{s, {}, {}, std::move(producer), {}, {}};
    r.headers.add("Content-Type", std::move(content_type));
    return r;
  }
};

} // namespace coronet::http
