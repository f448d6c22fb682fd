// coronet-echo: a binary-safe TCP echo server. Each connection is one task;
// a connection idle for echo.idle_timeout_ms is closed.
#include <coronet/config.hpp>
#include <coronet/net/tcp_server.hpp>
#include <coronet/runtime.hpp>
#include <coronet/time.hpp>

#include <asio/write.hpp>
#include <spdlog/spdlog.h>

#include <array>

namespace {

constexpr const char* defaults = R"(
[server]
listen = "127.0.0.1:7000"

[echo]
idle_timeout_ms = 60000     # close a connection that sends nothing for this long
max_connections = 10000     # beyond this, accepting pauses until one closes
shutdown_timeout_ms = 10000 # on SIGINT/SIGTERM, how long clients get to leave
)";

coronet::task<void> echo(asio::ip::tcp::socket& socket, std::chrono::milliseconds idle)
{
  std::array<char, 16 * 1024> buffer;
  for (;;) {
    std::size_t n = 0;
    try {
      n = co_await coronet::with_timeout(socket.async_read_some(asio::buffer(buffer), asio::use_awaitable), idle);
    } catch (const coronet::timeout_error&) {
      co_return; // idle: close
    } catch (const std::system_error& e) {
      if (e.code() == asio::error::eof || e.code() == asio::error::connection_reset)
        co_return;
      throw;
    }
    co_await asio::async_write(socket, asio::buffer(buffer.data(), n), asio::use_awaitable);
  }
}

} // namespace

int main(int argc, char** argv)
{
  auto cfg = coronet::load_config(argc, argv, "echo", defaults);
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
  auto handler = [idle](asio::ip::tcp::socket& s) { return echo(s, idle); };
  return rt.run_until_signal([](coronet::runtime& rt, coronet::net::tcp_options options,
                               coronet::net::connection_handler handler) -> coronet::task<void> {
    try {
      co_await coronet::net::serve_tcp(rt, options, std::move(handler));
    } catch (const std::system_error& e) {
      spdlog::critical("cannot serve on {}: {}", options.listen, e.code().message());
      throw;
    }
  }(rt, options, handler));
}
