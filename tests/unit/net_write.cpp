// net::write_all: at once when the socket has room, waiting (bounded) when not.
#include <coronet/net/write.hpp>
#include <coronet/runtime.hpp>
#include <coronet/sync/channel.hpp>

#include <asio/read.hpp>
#include <asio/use_awaitable.hpp>
#include <doctest/doctest.h>

#include <string>
#include <utility>

using asio::ip::tcp;
using coronet::task;
using namespace std::chrono_literals;

namespace {

// A connected pair of sockets on loopback, on the calling worker.
task<std::pair<tcp::socket, tcp::socket>> connected_pair(int buffer_bytes)
{
  auto ex = co_await asio::this_coro::executor;
  tcp::acceptor acceptor{ex, {asio::ip::address_v4::loopback(), 0}};
  tcp::socket client{ex};
  client.connect(acceptor.local_endpoint());
  tcp::socket server = co_await acceptor.async_accept(asio::use_awaitable);
  if (buffer_bytes > 0) {
    server.set_option(asio::socket_base::send_buffer_size(buffer_bytes));
    client.set_option(asio::socket_base::receive_buffer_size(buffer_bytes));
  }
  co_return std::pair{std::move(server), std::move(client)};
}

task<std::string> read_exactly(tcp::socket& s, std::size_t n)
{
  std::string got(n, '\0');
  co_await asio::async_read(s, asio::buffer(got), asio::use_awaitable);
  co_return got;
}

task<std::string> round_trip(std::string data)
{
  auto [writer, reader] = co_await connected_pair(0);
  co_await coronet::net::write_all(writer, asio::buffer(data), 5s);
  co_return co_await read_exactly(reader, data.size());
}

// More than the socket buffers hold: the rest goes out while the peer reads.
task<bool> big_write_while_reading(std::string data)
{
  auto [writer, reader] = co_await connected_pair(16 * 1024);
  coronet::channel<std::string> got{1};
  coronet::spawn([](tcp::socket& reader, std::size_t n, coronet::channel<std::string> got) -> task<void> {
    co_await got.send(co_await read_exactly(reader, n));
  }(reader, data.size(), got));
  co_await coronet::net::write_all(writer, asio::buffer(data), 5s);
  auto back = co_await got.receive();
  co_return back && *back == data;
}

// A peer that reads nothing: the write gives up after the timeout.
task<bool> stalled_peer_times_out()
{
  auto [writer, reader] = co_await connected_pair(16 * 1024);
  std::string data(8 * 1024 * 1024, 'x');
  try {
    co_await coronet::net::write_all(writer, asio::buffer(data), 100ms);
  } catch (const coronet::timeout_error&) {
    co_return true;
  }
  co_return false;
}

task<bool> closed_peer_fails()
{
  auto [writer, reader] = co_await connected_pair(0);
  reader.close();
  std::string data(64 * 1024, 'x');
  try {
    for (int i = 0; i < 100; ++i) // the first writes may land before the reset
      co_await coronet::net::write_all(writer, asio::buffer(data), 5s);
  } catch (const std::system_error& e) {
    co_return e.code() == asio::error::broken_pipe || e.code() == asio::error::connection_reset;
  }
  co_return false;
}

} // namespace

TEST_CASE("write_all: what fits is written at once, a bigger write waits for the reader")
{
  coronet::runtime rt{1};
  CHECK(rt.block_on(round_trip("hello\n")) == "hello\n");
  std::string big(4 * 1024 * 1024, '\0');
  for (std::size_t i = 0; i < big.size(); ++i)
    big[i] = static_cast<char>(i * 7 + i / 4096);
  CHECK(rt.block_on(big_write_while_reading(big)));
}

TEST_CASE("write_all: a peer that reads nothing times out, a closed one fails")
{
  coronet::runtime rt{1};
  CHECK(rt.block_on(stalled_peer_times_out()));
  CHECK(rt.block_on(closed_peer_fails()));
}
