#pragma once
// A TCP server on every worker: one SO_REUSEPORT acceptor per worker (the
// kernel spreads connections), a connection limit that pauses accepting
// instead of failing, accept errors (EMFILE...) that back off instead of
// spinning, and a graceful drain when the runtime stops.
//
//   coronet::net::tcp_options options{.listen = "127.0.0.1:7000"};
//   co_await coronet::net::serve_tcp(rt, options, echo_connection);
//
// Each connection is one task running handler(socket) on the worker that
// accepted it; the socket stays owned by the server and lives until the
// handler's task ends. An exception from a handler is logged; it never stops
// the server. Once rt.done() closes, acceptors close, and connections get
// `drain_timeout` to finish; then their sockets are shut down, which ends
// their pending reads and writes.
#include <coronet/runtime.hpp>
#include <coronet/task.hpp>

#include <asio/ip/tcp.hpp>

#include <chrono>
#include <cstddef>
#include <functional>
#include <string>
#include <string_view>

namespace coronet {
class config;
}

namespace coronet::net {

struct tcp_options {
  std::string listen = "127.0.0.1:0";
  std::size_t max_connections = 10000;
  std::chrono::milliseconds drain_timeout{10000};
};

using connection_handler = std::function<task<void>(asio::ip::tcp::socket&)>;

// "HOST:PORT" or "[V6]:PORT"; throws std::invalid_argument naming the text.
asio::ip::tcp::endpoint parse_endpoint(std::string_view text);

// Serves until rt.done() closes and every connection has ended. Logs one line
// "listening on HOST:PORT" with the real port once every acceptor is bound.
// Throws std::system_error when it cannot listen (address in use...).
task<void> serve_tcp(runtime& rt, tcp_options options, connection_handler handler);

} // namespace coronet::net
