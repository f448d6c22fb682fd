// coronet-echo: a binary-safe TCP echo server. Each connection is one task;
// a connection idle for echo.idle_timeout_ms is closed. With echo.udp, it
// also echoes UDP datagrams on the same port (one socket per worker).
#include <coronet/app/app.hpp>
#include <coronet/net/stream.hpp>
#include <coronet/net/tcp_server.hpp>
#include <coronet/runtime.hpp>

#include <asio/experimental/as_tuple.hpp>
#include <asio/ip/udp.hpp>
#include <spdlog/spdlog.h>

#include <array>
#include <memory>

namespace {

constexpr coronet::config_key echo_keys[] = {
  {"server.listen", "127.0.0.1:7000", "HOST:PORT the echo listens on (TCP, and UDP with echo.udp)"},
  {"echo.idle_timeout_ms", 60000, "close a connection that sends nothing for this long", 1},
  {"echo.max_connections", 10000, "beyond this, accepting pauses until one closes", 1},
  {"echo.shutdown_timeout_ms", 10000, "on SIGINT/SIGTERM, how long clients get to leave", 1},
  {"echo.udp", false, "also echo UDP datagrams on the same port"},
};

// Echoes until the client leaves or stays silent for `idle`. The stream
// tries reads and writes at once and waits in the reactor only when it
// must; moving the read deadline on each read costs no timer work.
coronet::task<void> echo(coronet::net::stream& s, std::chrono::milliseconds idle)
{
  std::array<char, 16 * 1024> buffer;
  s.set_write_timeout(idle); // a client that reads nothing for `idle` is gone too
  for (;;) {
    s.set_read_deadline(coronet::clock::now() + idle);
    auto [ec, n] = co_await s.read_some(asio::buffer(buffer));
    if (ec)
      break; // EOF, reset, or idle
    if (co_await s.write(asio::buffer(buffer.data(), n)))
      break;
  }
}

using asio::ip::udp;

// Echoes every datagram back to its sender until the runtime stops.
coronet::task<void> udp_echo(std::shared_ptr<udp::socket> socket)
{
  std::array<char, 64 * 1024> buffer;
  udp::endpoint from;
  for (;;) {
    std::error_code ec;
    std::size_t n = 0;
    std::tie(ec, n) = co_await socket->async_receive_from(asio::buffer(buffer), from,
      asio::experimental::as_tuple(asio::use_awaitable));
    if (ec == asio::error::operation_aborted || !socket->is_open())
      co_return;
    if (ec)
      continue; // an ICMP error for an earlier reply: not this socket's fault
    socket->send_to(asio::buffer(buffer.data(), n), from, 0, ec); // a full buffer drops it, as UDP may
  }
}

coronet::task<void> close_on_stop(coronet::runtime& rt, std::shared_ptr<udp::socket> socket)
{
  co_await rt.done().receive();
  std::error_code ignored;
  socket->close(ignored);
}

// One UDP socket per worker on `at` (SO_REUSEPORT: the kernel spreads
// senders), each on its worker's io_context. Returns the bound endpoint.
udp::endpoint start_udp(coronet::runtime& rt, udp::endpoint at)
{
  for (std::size_t w = 0; w < rt.size(); ++w) {
    auto socket = std::make_shared<udp::socket>(rt.executor(w));
    socket->open(at.protocol());
    socket->set_option(asio::socket_base::reuse_address(true));
    int on = 1;
    ::setsockopt(socket->native_handle(), SOL_SOCKET, SO_REUSEPORT, &on, sizeof on);
    socket->bind(at);
    socket->non_blocking(true);
    at = socket->local_endpoint(); // port 0: the others share the first one's port
    rt.spawn(w, udp_echo(socket));
    rt.spawn(w, close_on_stop(rt, socket));
  }
  return at;
}

} // namespace

int main(int argc, char** argv)
{
  auto cfg = coronet::load_config(argc, argv, "echo", echo_keys);
  coronet::net::tcp_options options;
  std::chrono::milliseconds idle;
  try {
    options.listen = cfg.get_string("server.listen");
    coronet::net::parse_endpoint(options.listen);
    options.max_connections = static_cast<std::size_t>(cfg.get_positive("echo.max_connections"));
    options.drain_timeout = cfg.get_positive_ms("echo.shutdown_timeout_ms");
    idle = cfg.get_positive_ms("echo.idle_timeout_ms");
  } catch (const std::invalid_argument& e) {
    spdlog::critical("config error: {}: key 'server.listen' {}", cfg.origin("server.listen"), e.what());
    return 2;
  } catch (const coronet::config_error& e) {
    spdlog::critical("config error: {}", e.what());
    return 2;
  }

  coronet::runtime rt{cfg};
  if (cfg.get_bool("echo.udp")) {
    auto tcp_at = coronet::net::parse_endpoint(options.listen);
    try {
      // Port 0: a port free for TCP, held by a bound (never listening) acceptor while UDP takes
      // the same number (a port UDP picked could be some TCP client's).
      asio::ip::tcp::acceptor hold{rt.executor(0)};
      if (tcp_at.port() == 0) {
        hold.open(tcp_at.protocol());
        hold.bind(tcp_at);
        tcp_at.port(hold.local_endpoint().port());
      }
      auto at = start_udp(rt, udp::endpoint{tcp_at.address(), tcp_at.port()});
      hold.close();
      options.listen = (at.address().is_v6() ? "[" + at.address().to_string() + "]" : at.address().to_string()) +
                       ":" + std::to_string(at.port());
      spdlog::info("udp echo on {}", options.listen);
    } catch (const std::system_error& e) {
      spdlog::critical("cannot serve UDP on {}: {}", options.listen, e.code().message());
      return 1;
    }
  }
  auto handler = [idle](coronet::net::stream& s) { return echo(s, idle); };
  return rt.run_until_signal([](coronet::runtime& rt, coronet::net::tcp_options options,
                               coronet::net::connection_handler handler) -> coronet::task<void> {
    try {
      co_await coronet::net::serve_tcp(rt, options, std::move(handler));
    } catch (const std::exception& e) {
      spdlog::critical("{}", e.what());
      throw;
    }
  }(rt, options, handler));
}
