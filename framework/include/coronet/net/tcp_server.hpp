#pragma once
// A TCP server on every worker: one SO_REUSEPORT acceptor per worker (the
// kernel spreads connections), a connection limit that pauses accepting
// instead of failing, accept errors (EMFILE...) that back off instead of
// spinning, and a graceful drain when the runtime stops.
//
//   coronet::net::tcp_options options{.listen = "127.0.0.1:7000"};
//   co_await coronet::net::serve_tcp(rt, options, echo_connection);
//
// Each connection is one task running handler(stream) on the worker that
// accepted it; the stream stays owned by the server and lives until the
// handler's task ends. With `tls` set, the stream is TLS and its handshake
// is done (under tls.handshake_timeout) before the handler sees it; a failed
// handshake closes that connection alone, counted in
// coronet_tls_handshake_failures_total{reason}. An exception from a handler
// is logged; it never stops the server. Once rt.done() closes, acceptors
// close, and connections get `drain_timeout` to finish; then their streams
// are shut down, which ends their pending reads and writes.
//
// The workers of one process share the port (SO_REUSEPORT); another process
// cannot join them: serve_tcp throws startup_error "address in use" when
// something already listens there.
#include <coronet/net/stream.hpp>
#include <coronet/net/tls.hpp>
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
  std::shared_ptr<tls_server> tls; // nullptr: plain TCP
  // Called on each worker once the stop has closed its acceptor: where a
  // protocol starts telling its connections to close (HTTP/2's GOAWAY), so
  // that a client that reconnects at once is refused rather than reset.
  std::function<void()> stopped_accepting;
};

using connection_handler = std::function<task<void>(stream&)>;

// "HOST:PORT", "[V6]:PORT" for IPv6.
std::string to_string(const asio::ip::tcp::endpoint& at);

// "HOST:PORT" or "[V6]:PORT"; throws std::invalid_argument naming the text.
asio::ip::tcp::endpoint parse_endpoint(std::string_view text);

// Serves until rt.done() closes and every connection has ended. Logs one line
// "listening on HOST:PORT" with the real port once every acceptor is bound.
// Throws startup_error when it cannot listen (address in use...).
task<void> serve_tcp(runtime& rt, tcp_options options, connection_handler handler);

// Whether this worker still has an acceptor open. Once the runtime stops, a
// protocol answers "close" only when it is false: a client told to close
// that reconnects at once must find the port closed (refused), not land in
// an accept queue that the closing acceptor then resets under its request.
bool accepting_here() noexcept;

} // namespace coronet::net
