#pragma once
// Scripted HTTP/1.1 servers for client tests, in the test's own runtime: each
// accepted connection runs a script (answer everything, go silent, close
// after one...), so a test decides exactly what the client meets.
#include <coronet/runtime.hpp>
#include <coronet/task.hpp>

#include <asio/experimental/as_tuple.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/read_until.hpp>
#include <asio/write.hpp>

#include <functional>
#include <string>

namespace scripted {

using asio::ip::tcp;
using coronet::task;

inline constexpr auto use_tuple = asio::experimental::as_tuple(asio::use_awaitable);

// Reads one request head (and a Content-Length body); false at EOF.
inline task<bool> read_request(tcp::socket& s, std::string& buffer)
{
  auto [ec, n] = co_await asio::async_read_until(s, asio::dynamic_buffer(buffer), "\r\n\r\n", use_tuple);
  if (ec)
    co_return false;
  auto head = buffer.substr(0, n);
  buffer.erase(0, n);
  auto at = head.find("Content-Length: ");
  if (at != std::string::npos) {
    auto length = std::stoul(head.substr(at + 16));
    while (buffer.size() < length) {
      char chunk[4096];
      auto [rec, got] = co_await s.async_read_some(asio::buffer(chunk), use_tuple);
      if (rec)
        co_return false;
      buffer.append(chunk, got);
    }
    buffer.erase(0, length);
  }
  co_return true;
}

inline task<void> send(tcp::socket& s, std::string text)
{
  co_await asio::async_write(s, asio::buffer(text), use_tuple);
}

using script = std::function<task<void>(tcp::socket&, int connection)>;

// Accepts connections on an ephemeral port and runs `handle` on each.
struct scripted_server {
  explicit scripted_server(coronet::runtime& rt, script handle)
    : acceptor(rt.executor(0), {asio::ip::address_v4::loopback(), 0}), handle(std::move(handle))
  {
    port = acceptor.local_endpoint().port();
  }
  tcp::acceptor acceptor;
  script handle;
  unsigned short port = 0;
  int accepted = 0;

  std::string url(const std::string& path = "/") const { return "http://127.0.0.1:" + std::to_string(port) + path; }
};

inline task<void> connection(scripted_server& server, tcp::socket socket, int n)
{
  co_await server.handle(socket, n);
}

inline task<void> accept_loop(scripted_server& server)
{
  for (;;) {
    auto [ec, socket] = co_await server.acceptor.async_accept(use_tuple);
    if (ec)
      co_return;
    coronet::spawn(connection(server, std::move(socket), server.accepted++));
  }
}

inline constexpr const char* ok_response = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

// Answers every request on the connection with "ok".
inline task<void> answer_all(tcp::socket& s, int)
{
  std::string buffer;
  while (co_await read_request(s, buffer))
    co_await send(s, ok_response);
}

template <class Body>
void run(Body body)
{
  coronet::runtime rt{1};
  rt.block_on(body(rt));
}

} // namespace scripted
