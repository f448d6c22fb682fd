// net::stream over plain TCP and over TLS: at once, bigger than the socket
// buffers, deadlines, a peer that closes, a cancelled wait.
#include <coronet/net/stream.hpp>

#include <coronet/config.hpp>
#include <coronet/net/tls.hpp>
#include <coronet/runtime.hpp>
#include <coronet/sync/channel.hpp>
#include <coronet/time.hpp>

#include "support/pki.hpp"

#include <asio/ssl/error.hpp>
#include <doctest/doctest.h>

#include <filesystem>

#include <memory>
#include <string>
#include <utility>

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete" // GCC 12 misreads Asio's frame allocator
#endif

using asio::ip::tcp;
using coronet::task;
using coronet::net::stream;
using namespace std::chrono_literals;
namespace net = coronet::net;

namespace {

struct stream_pair {
  std::unique_ptr<stream> server, client;
};

// A connected pair on loopback, on the calling worker; TLS when `tls`, with
// the handshake done (the client checks the name "localhost").
task<stream_pair> connected_pair(bool tls, int buffer_bytes = 0)
{
  auto ex = co_await asio::this_coro::executor;
  tcp::acceptor acceptor{ex, {asio::ip::address_v4::loopback(), 0}};
  std::shared_ptr<asio::ssl::context> client_tls;
  std::shared_ptr<net::tls_server> server_tls;
  if (tls) {
    net::tls_server_options so;
    so.cert_file = coronet::test::pki("server.pem");
    so.key_file = coronet::test::pki("server.key");
    server_tls = std::make_shared<net::tls_server>(so);
    net::tls_client_options co;
    co.ca_file = coronet::test::pki("ca.pem");
    client_tls = net::make_client_tls(co);
  }
  stream_pair p;
  p.client = std::make_unique<stream>(ex, client_tls);
  std::array endpoints{acceptor.local_endpoint()};
  REQUIRE(!co_await p.client->connect(endpoints)); // the kernel completes it from the backlog
  tcp::socket accepted = acceptor.accept();
  if (buffer_bytes > 0) {
    accepted.set_option(asio::socket_base::send_buffer_size(buffer_bytes));
    p.client->lowest_layer().set_option(asio::socket_base::receive_buffer_size(buffer_bytes));
  }
  p.server = tls ? std::make_unique<stream>(std::move(accepted), server_tls->context(), net::tls_role::server)
                 : std::make_unique<stream>(std::move(accepted));
  if (tls) {
    coronet::channel<std::error_code> server_done{1};
    coronet::spawn([](stream& s, coronet::channel<std::error_code> done) -> task<void> {
      done.try_send(co_await s.handshake());
    }(*p.server, server_done));
    auto ec = co_await p.client->handshake("localhost");
    REQUIRE_MESSAGE(!ec, ec.message());
    auto server_ec = co_await server_done.receive();
    REQUIRE(server_ec);
    REQUIRE(!*server_ec);
  }
  co_return p;
}

task<std::string> read_exactly(stream& s, std::size_t n)
{
  std::string got(n, '\0');
  std::size_t have = 0;
  while (have < n) {
    auto [ec, k] = co_await s.read_some(asio::buffer(got.data() + have, n - have));
    if (ec)
      co_return got.substr(0, have);
    have += k;
  }
  co_return got;
}

task<std::string> round_trip(bool tls, std::string data)
{
  auto p = co_await connected_pair(tls);
  auto ec = co_await p.server->write(asio::buffer(data));
  CHECK(!ec);
  co_return co_await read_exactly(*p.client, data.size());
}

// More than the socket buffers hold: the rest goes out while the peer reads.
task<bool> big_write_while_reading(bool tls, std::string data)
{
  auto p = co_await connected_pair(tls, 16 * 1024);
  coronet::channel<std::string> got{1};
  coronet::spawn([](stream& reader, std::size_t n, coronet::channel<std::string> got) -> task<void> {
    got.try_send(co_await read_exactly(reader, n));
  }(*p.client, data.size(), got));
  p.server->set_write_timeout(5s);
  auto ec = co_await p.server->write(asio::buffer(data));
  auto back = co_await got.receive();
  co_return !ec && back && *back == data;
}

// A peer that sends nothing: the read ends at its deadline, and so does the
// next one until the deadline moves; a later deadline lets a read succeed.
task<bool> read_deadline(bool tls)
{
  auto p = co_await connected_pair(tls);
  char byte;
  auto start = coronet::clock::now();
  p.client->set_read_deadline(start + 100ms);
  auto [ec, n] = co_await p.client->read_some(asio::buffer(&byte, 1));
  auto waited = coronet::clock::now() - start;
  CHECK(ec == net::timed_out);
  CHECK(waited >= 100ms);
  CHECK(waited < 5s);
  auto again = co_await p.client->read_some(asio::buffer(&byte, 1));
  CHECK(again.ec == net::timed_out);
  p.client->set_read_deadline(coronet::clock::now() + 5s);
  CHECK(!co_await p.server->write(asio::buffer("x", 1)));
  auto later = co_await p.client->read_some(asio::buffer(&byte, 1));
  co_return !later.ec && later.bytes == 1 && byte == 'x';
}

// A peer that reads nothing: the write gives up after the write timeout.
task<bool> stalled_peer_times_out(bool tls)
{
  auto p = co_await connected_pair(tls, 16 * 1024);
  std::string data(8 * 1024 * 1024, 'x');
  p.server->set_write_timeout(100ms);
  auto ec = co_await p.server->write(asio::buffer(data));
  co_return ec == net::timed_out;
}

task<bool> closed_peer(bool tls)
{
  auto p = co_await connected_pair(tls);
  p.client->close();
  char byte;
  p.server->set_read_deadline(coronet::clock::now() + 5s);
  auto [ec, n] = co_await p.server->read_some(asio::buffer(&byte, 1));
  CHECK(n == 0);
  co_return ec == asio::error::eof || ec == asio::ssl::error::stream_truncated;
}

// with_timeout around a read cancels the read itself: the stream's own
// deadline machinery does not hide the caller's cancellation.
task<bool> cancelled_wait(bool tls)
{
  auto p = co_await connected_pair(tls);
  char byte;
  auto read = [](stream& s, char* into) -> task<net::io_result> {
    co_return co_await s.read_some(asio::buffer(into, 1));
  };
  // The read ends, cancelled, when with_timeout's time is up: it reports
  // operation_aborted as its value (expected outcomes are values), or
  // with_timeout throws timeout_error.
  bool timed_out = false;
  auto start = coronet::clock::now();
  try {
    auto r = co_await coronet::with_timeout(read(*p.client, &byte), 50ms);
    timed_out = r.ec == asio::error::operation_aborted;
  } catch (const coronet::timeout_error&) {
    timed_out = true;
  }
  CHECK(timed_out);
  CHECK(coronet::clock::now() - start < 5s);
  // and the stream still works afterwards
  CHECK(!co_await p.server->write(asio::buffer("y", 1)));
  p.client->set_read_deadline(coronet::clock::now() + 5s);
  auto r = co_await p.client->read_some(asio::buffer(&byte, 1));
  co_return timed_out && !r.ec && byte == 'y';
}

} // namespace

TEST_CASE("stream: what fits is written at once, a bigger write waits for the reader")
{
  coronet::runtime rt{1};
  std::string big(4 * 1024 * 1024, '\0');
  for (std::size_t i = 0; i < big.size(); ++i)
    big[i] = static_cast<char>(i * 7 + i / 4096);
  for (bool tls : {false, true}) {
    CAPTURE(tls);
    CHECK(rt.block_on(round_trip(tls, "hello\n")) == "hello\n");
    CHECK(rt.block_on(big_write_while_reading(tls, big)));
  }
}

TEST_CASE("stream: a read deadline ends the wait and every wait after it until it moves")
{
  coronet::runtime rt{1};
  for (bool tls : {false, true}) {
    CAPTURE(tls);
    CHECK(rt.block_on(read_deadline(tls)));
  }
}

TEST_CASE("stream: a peer that reads nothing times out a write, a closed one reads as EOF")
{
  coronet::runtime rt{1};
  for (bool tls : {false, true}) {
    CAPTURE(tls);
    CHECK(rt.block_on(stalled_peer_times_out(tls)));
    CHECK(rt.block_on(closed_peer(tls)));
  }
}

TEST_CASE("stream: cancelling the awaiting task cancels its pending read")
{
  coronet::runtime rt{1};
  for (bool tls : {false, true}) {
    CAPTURE(tls);
    CHECK(rt.block_on(cancelled_wait(tls)));
  }
}

TEST_CASE("tls: a missing certificate file or a key that does not match names the key and the file")
{
  net::tls_server_options o;
  o.cert_file = "/nonexistent/cert.pem";
  o.key_file = coronet::test::pki("server.key");
  CHECK_THROWS_WITH_AS(net::tls_server{o}, doctest::Contains("tls.cert_file"), coronet::config_error);
  o.cert_file = coronet::test::pki("server.pem");
  o.key_file = coronet::test::pki("client.key");
  CHECK_THROWS_WITH_AS(net::tls_server{o}, doctest::Contains("does not match"), coronet::config_error);
}

TEST_CASE("tls: a reload that fails keeps the certificate in use, and one that works replaces it")
{
  auto dir = coronet::test::pki_dir() + "/reload";
  std::filesystem::create_directories(dir);
  auto copy = [&](const char* from, const char* to) {
    std::filesystem::copy_file(coronet::test::pki(from), dir + "/" + to,
      std::filesystem::copy_options::overwrite_existing);
  };
  copy("server.pem", "cert.pem");
  copy("server.key", "key.pem");
  net::tls_server_options o;
  o.cert_file = dir + "/cert.pem";
  o.key_file = dir + "/key.pem";
  net::tls_server server{o};
  auto first = server.context();
  std::filesystem::remove(o.cert_file);
  CHECK_FALSE(server.reload());
  CHECK(server.context() == first);
  copy("client.key", "key.pem"); // a key that does not match
  copy("server.pem", "cert.pem");
  CHECK_FALSE(server.reload());
  CHECK(server.context() == first);
  copy("server2.pem", "cert.pem");
  copy("server2.key", "key.pem");
  CHECK(server.reload());
  CHECK(server.context() != first);
}
