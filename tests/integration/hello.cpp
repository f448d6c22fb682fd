// coronet-hello as a client sees it: the real binary, raw HTTP over loopback.
#include <support/process.hpp>

#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/read.hpp>
#include <asio/write.hpp>

#include <doctest/doctest.h>

#include <csignal>
#include <string>
#include <vector>

using asio::ip::tcp;
using coronet::test::binary;
using coronet::test::process;

namespace {

// coronet-hello, stopped (SIGTERM) at the end of the test.
struct server : coronet::test::app {
  explicit server(std::vector<std::string> extra = {}) : app("coronet-hello", std::move(extra)) {}
  ~server()
  {
    proc.signal(SIGTERM);
    proc.wait();
  }
};

// Sends `wire` and reads until the server closes the connection.
std::string exchange(unsigned short port, const std::string& wire)
{
  asio::io_context io;
  tcp::socket s{io};
  s.connect({asio::ip::address_v4::loopback(), port});
  asio::write(s, asio::buffer(wire));
  std::string got;
  std::error_code ec;
  asio::read(s, asio::dynamic_buffer(got), ec);
  return got;
}

std::size_t count(const std::string& text, const std::string& what)
{
  std::size_t n = 0;
  for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1))
    ++n;
  return n;
}

} // namespace

TEST_CASE("hello: plaintext and json with Content-Length, Date and Server")
{
  server s;
  REQUIRE(s.port != 0);
  auto got = exchange(s.port, "GET /plaintext HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
  CHECK(got.rfind("HTTP/1.1 200 OK\r\n", 0) == 0);
  CHECK(got.find("Content-Length: 13\r\n") != std::string::npos);
  CHECK(got.find("\r\nDate: ") != std::string::npos);
  CHECK(got.find("\r\nServer: coronet\r\n") != std::string::npos);
  CHECK(got.find("Connection: close\r\n") != std::string::npos);
  CHECK(got.substr(got.size() - 13) == "Hello, World!");
  got = exchange(s.port, "GET /json HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
  CHECK(got.find("application/json") != std::string::npos);
  CHECK(got.find(R"({"message":"Hello, World!"})") != std::string::npos);
}

TEST_CASE("hello: pipelined requests are answered in order on one connection")
{
  server s;
  auto got = exchange(s.port,
    "GET /plaintext HTTP/1.1\r\nHost: t\r\n\r\n"
    "GET /json HTTP/1.1\r\nHost: t\r\n\r\n"
    "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc");
  CHECK(count(got, "HTTP/1.1 200 OK") == 3);
  auto a = got.find("Hello, World!"), b = got.find("message"), c = got.rfind("abc");
  CHECK(a < b);
  CHECK(b < c);
}

TEST_CASE("hello: HEAD has the GET headers and no body, unknown paths 404, wrong methods 405 with Allow")
{
  server s;
  auto head = exchange(s.port, "HEAD /json HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
  CHECK(head.find("Content-Length: 27\r\n") != std::string::npos);
  CHECK(head.substr(head.size() - 4) == "\r\n\r\n");
  CHECK(exchange(s.port, "GET /nope HTTP/1.1\r\nConnection: close\r\n\r\n").rfind("HTTP/1.1 404", 0) == 0);
  auto m = exchange(s.port, "DELETE /json HTTP/1.1\r\nConnection: close\r\n\r\n");
  CHECK(m.rfind("HTTP/1.1 405", 0) == 0);
  CHECK(m.find("Allow: GET\r\n") != std::string::npos);
}

TEST_CASE("hello: chunked request body and Expect: 100-continue")
{
  server s;
  auto got = exchange(s.port,
    "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n");
  CHECK(got.find("Content-Length: 5\r\n") != std::string::npos);
  CHECK(got.substr(got.size() - 5) == "abcde");

  asio::io_context io;
  tcp::socket c{io};
  c.connect({asio::ip::address_v4::loopback(), s.port});
  asio::write(c, asio::buffer(std::string(
    "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n")));
  std::string interim(25, '\0');
  asio::read(c, asio::buffer(interim));
  CHECK(interim == "HTTP/1.1 100 Continue\r\n\r\n");
  asio::write(c, asio::buffer(std::string("body")));
  std::string rest;
  std::error_code ec;
  asio::read(c, asio::dynamic_buffer(rest), ec);
  CHECK(rest.rfind("HTTP/1.1 200 OK", 0) == 0);
  CHECK(rest.substr(rest.size() - 4) == "body");
}

TEST_CASE("hello: framing attacks get 400 and the connection closes")
{
  server s;
  auto got = exchange(s.port,
    "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    "GET /plaintext HTTP/1.1\r\nHost: t\r\n\r\n");
  CHECK(got.rfind("HTTP/1.1 400 Bad Request", 0) == 0);
  CHECK(got.find("Connection: close") != std::string::npos);
  CHECK(count(got, "HTTP/1.1 ") == 1); // the smuggled request is never answered
}

TEST_CASE("hello: limits from config answer 413 before the body and 408 for slow headers")
{
  server s{{"--set", "http.max_body_bytes=10", "--set", "http.header_timeout_ms=200"}};
  auto big = exchange(s.port, "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 11\r\n\r\n");
  CHECK(big.rfind("HTTP/1.1 413 Payload Too Large", 0) == 0);
  auto slow = exchange(s.port, "GET /plaintext HTTP/1.1\r\nHost: t\r\n"); // headers never finish
  CHECK(slow.rfind("HTTP/1.1 408 Request Timeout", 0) == 0);
}

TEST_CASE("hello: SIGTERM with an idle keep-alive client exits 0 at once")
{
  coronet::test::app hello{"coronet-hello"};
  REQUIRE(hello.port != 0);
  asio::io_context io;
  tcp::socket c{io};
  c.connect({asio::ip::address_v4::loopback(), hello.port});
  asio::write(c, asio::buffer(std::string("GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")));
  char buf[256];
  c.read_some(asio::buffer(buf)); // the answer; the connection stays open, idle
  hello.proc.signal(SIGTERM);
  CHECK(hello.proc.wait(std::chrono::seconds(5)) == 0);
  std::error_code ec;
  c.read_some(asio::buffer(buf), ec);
  CHECK(ec == asio::error::eof); // closed by the drain, not left hanging
}
