// coronet-echo as a user runs it: the real binary on loopback, real sockets.
#include <support/process.hpp>

#include <asio/connect.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/ip/udp.hpp>
#include <asio/read.hpp>
#include <asio/write.hpp>

#include <doctest/doctest.h>

#include <csignal>
#include <string>

using asio::ip::tcp;
using coronet::test::binary;
using coronet::test::process;

namespace {

std::string round_trip(tcp::socket& s, const std::string& data)
{
  asio::write(s, asio::buffer(data));
  std::string back(data.size(), '\0');
  asio::read(s, asio::buffer(back));
  return back;
}

tcp::socket connect(asio::io_context& io, unsigned short port)
{
  tcp::socket s{io};
  s.connect({asio::ip::address_v4::loopback(), port});
  return s;
}

} // namespace

TEST_CASE("echo server: binary-safe echo on several connections, SIGINT exits 0")
{
  process server{{binary("coronet-echo"), "--listen", "127.0.0.1:0", "--threads", "2"}};
  auto port = server.wait_for_port();
  REQUIRE_MESSAGE(port != 0, server.output());

  asio::io_context io;
  tcp::endpoint at{asio::ip::address_v4::loopback(), port};
  tcp::socket a{io}, b{io};
  a.connect(at);
  b.connect(at);
  std::string binary_data("\0\xff\r\n\x01payload", 12);
  CHECK(round_trip(a, binary_data) == binary_data);
  std::string big(200'000, 'x');
  for (std::size_t i = 0; i < big.size(); ++i)
    big[i] = static_cast<char>(i * 7);
  CHECK(round_trip(b, big) == big);
  CHECK(round_trip(a, "again") == "again");

  a.close();
  b.close();
  server.signal(SIGINT);
  auto status = server.wait();
  REQUIRE(status);
  CHECK(*status == 0);
  CHECK(server.output().find("server stopped") != std::string::npos);
}

TEST_CASE("echo server: an idle connection is closed after echo.idle_timeout_ms")
{
  coronet::test::app echo{"coronet-echo", {"--set", "echo.idle_timeout_ms=100"}};
  REQUIRE(echo.port != 0);
  asio::io_context io;
  auto s = connect(io, echo.port);
  char c;
  std::error_code ec;
  s.read_some(asio::buffer(&c, 1), ec); // blocks until the server closes
  CHECK(ec == asio::error::eof);
  echo.proc.signal(SIGTERM);
  CHECK(echo.proc.wait() == 0);
}

TEST_CASE("echo server: SIGTERM with a client still connected drains, then closes it")
{
  coronet::test::app echo{"coronet-echo", {"--set", "echo.shutdown_timeout_ms=200"}};
  REQUIRE(echo.port != 0);
  asio::io_context io;
  auto s = connect(io, echo.port);
  CHECK(round_trip(s, "hi") == "hi");
  echo.proc.signal(SIGTERM);
  CHECK(echo.proc.wait() == 0);
  CHECK(echo.proc.output().find("1 connections still open after 200 ms; closed them") != std::string::npos);
  char buf[16];
  std::error_code ec;
  s.read_some(asio::buffer(buf), ec);
  CHECK(ec == asio::error::eof); // shut down, not left hanging
}

TEST_CASE("echo server: at echo.max_connections the next client waits, then is served")
{
  coronet::test::app echo{"coronet-echo", {"--set", "echo.max_connections=1"}}; // one worker
  REQUIRE(echo.port != 0);
  asio::io_context io;
  auto first = connect(io, echo.port);
  CHECK(round_trip(first, "one") == "one");
  auto second = connect(io, echo.port); // the kernel queues it; the server does not accept it
  asio::write(second, asio::buffer(std::string("two")));
  // A round trip on the first connection after the second one's bytes were
  // sent: had the server accepted the second, its echo could be there now.
  CHECK(round_trip(first, "again") == "again");
  CHECK(second.available() == 0);
  first.close(); // frees the slot
  std::string back(3, '\0');
  asio::read(second, asio::buffer(back));
  CHECK(back == "two");
  second.close();
  echo.proc.signal(SIGTERM);
  CHECK(echo.proc.wait() == 0);
}

TEST_CASE("echo server: a bad config value exits 2 naming the key")
{
  process server{{binary("coronet-echo"), "--set", "echo.max_connections=0"}};
  CHECK(server.wait() == 2);
  CHECK(server.output().find("echo.max_connections") != std::string::npos);
}

TEST_CASE("echo server: echo.udp echoes datagrams on the TCP port, TCP still works")
{
  coronet::test::app echo{"coronet-echo", {"--set", "echo.udp=true"}};
  REQUIRE(echo.port != 0);
  CHECK(echo.proc.output().find("udp echo on 127.0.0.1:" + std::to_string(echo.port)) != std::string::npos);

  asio::io_context io;
  asio::ip::udp::socket u{io, asio::ip::udp::endpoint{asio::ip::udp::v4(), 0}};
  asio::ip::udp::endpoint server{asio::ip::address_v4::loopback(), echo.port};
  for (std::string datagram : {std::string("ping"), std::string(1200, '\xab'), std::string("\0\r\n", 3)}) {
    u.send_to(asio::buffer(datagram), server);
    std::string back(2000, '\0');
    asio::ip::udp::endpoint from;
    // A lost datagram would block here; ctest's timeout reports it.
    auto n = u.receive_from(asio::buffer(back), from);
    back.resize(n);
    CHECK(back == datagram);
    CHECK(from == server);
  }
  auto s = connect(io, echo.port);
  CHECK(round_trip(s, "tcp too") == "tcp too");
  s.close();

  echo.proc.signal(SIGTERM);
  CHECK(echo.proc.wait() == 0);
}
