// The request parser on hostile and ordinary input (framework/src/http1).
#include "http1/request_parser.hpp"

#include <doctest/doctest.h>

#include <string>
#include <vector>

using coronet::http::status;
using coronet::http::detail::parse_limits;
using coronet::http::detail::request_parser;
using result = request_parser::result;

namespace {

struct outcome {
  std::vector<coronet::http::request> requests;
  bool error = false;
  status error_status = status::ok;
  std::string leftover;
};

// Feeds `wire` in pieces of `chunk` bytes, collecting every request.
outcome parse(const std::string& wire, std::size_t chunk = 1 << 20, parse_limits limits = {})
{
  request_parser parser{limits};
  outcome out;
  std::string pending;
  for (std::size_t at = 0; at < wire.size() || !pending.empty();) {
    if (at < wire.size()) {
      pending += wire.substr(at, chunk);
      at += chunk;
    }
    std::size_t used = 0;
    auto r = parser.feed(pending, used);
    pending.erase(0, used);
    if (r == result::error) {
      out.error = true;
      out.error_status = parser.error_status();
      return out;
    }
    if (r == result::complete)
      out.requests.push_back(parser.take());
    else if (at >= wire.size())
      break;
  }
  out.leftover = pending;
  return out;
}

status error_of(const std::string& wire, parse_limits limits = {})
{
  auto o = parse(wire, 1 << 20, limits);
  return o.error ? o.error_status : status::ok;
}

} // namespace

TEST_CASE("request parser: a GET with query, headers and keep-alive")
{
  auto o = parse("GET /users/a%20b?name=J%C3%B6rg&x=1+2&flag HTTP/1.1\r\nHost: h\r\nX-Id: 7\r\n\r\n");
  REQUIRE(o.requests.size() == 1);
  auto& r = o.requests[0];
  CHECK(r.method == "GET");
  CHECK(r.target == "/users/a%20b?name=J%C3%B6rg&x=1+2&flag");
  CHECK(r.path == "/users/a b");
  CHECK(r.query("name") == "J\xC3\xB6rg");
  CHECK(r.query("x") == "1 2");
  CHECK(r.query("flag") == "");
  CHECK_FALSE(r.query("missing"));
  CHECK(r.header("x-id") == "7");
  CHECK(r.header("HOST") == "h");
  CHECK(r.keep_alive);
}

TEST_CASE("request parser: the same request split at every byte")
{
  std::string wire = "POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello";
  for (std::size_t chunk : {1, 2, 3, 7, 100}) {
    CAPTURE(chunk);
    auto o = parse(wire, chunk);
    REQUIRE(o.requests.size() == 1);
    CHECK(o.requests[0].body == "hello");
  }
}

TEST_CASE("request parser: pipelined requests come out one at a time, in order")
{
  auto o = parse("GET /a HTTP/1.1\r\nHost: h\r\n\r\nGET /b HTTP/1.1\r\nHost: h\r\n\r\nGET /c HTTP/1.1\r\nHost: h\r\n\r\n");
  REQUIRE(o.requests.size() == 3);
  CHECK(o.requests[0].path == "/a");
  CHECK(o.requests[1].path == "/b");
  CHECK(o.requests[2].path == "/c");
}

TEST_CASE("request parser: chunked body")
{
  auto o = parse("POST /u HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n");
  REQUIRE(o.requests.size() == 1);
  CHECK(o.requests[0].body == "hello world");
}

TEST_CASE("request parser: HTTP/1.0 closes unless it asks for keep-alive")
{
  CHECK_FALSE(parse("GET / HTTP/1.0\r\n\r\n").requests.at(0).keep_alive);
  CHECK(parse("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").requests.at(0).keep_alive);
  CHECK_FALSE(parse("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").requests.at(0).keep_alive);
}

TEST_CASE("request parser: limits answer 414, 431 and 413")
{
  parse_limits small;
  small.max_request_line_bytes = 64;
  small.max_header_bytes = 128;
  small.max_headers = 3;
  small.max_body_bytes = 10;
  CHECK(error_of("GET /" + std::string(100, 'a') + " HTTP/1.1\r\n\r\n", small) == status::uri_too_long);
  CHECK(error_of("GET / HTTP/1.1\r\nX: " + std::string(200, 'b') + "\r\n\r\n", small) ==
    status::request_header_fields_too_large);
  CHECK(error_of("GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n", small) ==
    status::request_header_fields_too_large);
  SUBCASE("a declared body over the limit is refused before it is read")
  {
    // No body bytes follow: the refusal cannot wait for them.
    CHECK(error_of("POST / HTTP/1.1\r\nContent-Length: 11\r\n\r\n", small) == status::payload_too_large);
  }
  SUBCASE("a chunked body over the limit")
  {
    CHECK(error_of("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nabcdef\r\n6\r\nabcdef\r\n0\r\n\r\n",
            small) == status::payload_too_large);
  }
  CHECK(error_of("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n0123456789", small) == status::ok);
}

TEST_CASE("request parser: request-smuggling defences")
{
  SUBCASE("Content-Length with Transfer-Encoding")
  {
    CHECK(error_of("POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n") ==
      status::bad_request);
  }
  SUBCASE("duplicate Content-Length")
  {
    CHECK(error_of("POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc") == status::bad_request);
  }
  SUBCASE("non-numeric Content-Length")
  {
    CHECK(error_of("POST / HTTP/1.1\r\nContent-Length: 3x\r\n\r\nabc") == status::bad_request);
  }
  SUBCASE("Transfer-Encoding not ending in chunked")
  {
    CHECK(error_of("POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n") == status::bad_request);
  }
  SUBCASE("whitespace before the colon")
  {
    CHECK(error_of("GET / HTTP/1.1\r\nHost : h\r\n\r\n") == status::bad_request);
  }
  SUBCASE("obsolete line folding")
  {
    CHECK(error_of("GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n") == status::bad_request);
    for (std::size_t chunk : {1, 2, 3, 5}) {
      CAPTURE(chunk);
      CHECK(parse("GET / HTTP/1.1\r\nX: a\r\n\tb\r\n\r\n", chunk).error);
    }
  }
  SUBCASE("NUL in a header value")
  {
    CHECK(error_of(std::string("GET / HTTP/1.1\r\nX: a\0b\r\n\r\n", 25)) == status::bad_request);
  }
  SUBCASE("bare CR in a header value")
  {
    CHECK(error_of("GET / HTTP/1.1\r\nX: a\rb\r\n\r\n") == status::bad_request);
  }
  SUBCASE("invalid chunk size")
  {
    CHECK(error_of("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n") ==
      status::bad_request);
  }
}

TEST_CASE("request parser: an HTTP/1.1 request names its host exactly once (RFC 9112 3.2)")
{
  CHECK(error_of("GET / HTTP/1.1\r\n\r\n") == status::bad_request);
  CHECK(error_of("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n") == status::bad_request);
  CHECK(error_of("GET / HTTP/1.0\r\nHost: a\r\nHost: a\r\n\r\n") == status::bad_request);
  CHECK(error_of("GET / HTTP/1.0\r\n\r\n") == status::ok); // HTTP/1.0 need not
  CHECK(error_of("GET / HTTP/1.1\r\nhost: a\r\n\r\n") == status::ok);
}

TEST_CASE("request parser: bad method and version")
{
  CHECK(error_of("BREW / HTTP/1.1\r\n\r\n") == status::not_implemented);
  // bytes that cannot begin a request line: 400, not 501
  CHECK(error_of(std::string("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11)) == status::bad_request);
  CHECK(error_of("{\"json\": 1}\r\n\r\n") == status::bad_request);
  CHECK(error_of("B(EW / HTTP/1.1\r\n\r\n") == status::bad_request);
  CHECK(error_of("\r\n\r\nFOO\r\n\r\n") == status::bad_request);
  CHECK(error_of("GET / HTTP/3.7\r\n\r\n") == status::http_version_not_supported);
  CHECK(error_of("GET /%zz HTTP/1.1\r\n\r\n") == status::bad_request);
}

TEST_CASE("request parser: target forms (origin, absolute, asterisk) and no HTTP/0.9")
{
  auto absolute = parse("GET http://example.com:8080/users/7?full=1 HTTP/1.1\r\nHost: example.com\r\n\r\n");
  REQUIRE(absolute.requests.size() == 1);
  CHECK(absolute.requests[0].path == "/users/7");
  CHECK(absolute.requests[0].query_string == "full=1");
  auto bare_host = parse("GET http://example.com HTTP/1.1\r\nHost: example.com\r\n\r\n");
  REQUIRE(bare_host.requests.size() == 1);
  CHECK(bare_host.requests[0].path == "/");
  auto options = parse("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n");
  REQUIRE(options.requests.size() == 1);
  CHECK(options.requests[0].path == "*");

  CHECK(error_of("GET * HTTP/1.1\r\nHost: a\r\n\r\n") == status::bad_request);
  CHECK(error_of("GET users/7 HTTP/1.1\r\nHost: a\r\n\r\n") == status::bad_request);
  CHECK(error_of("GET http://example.com?x HTTP/1.1\r\nHost: a\r\n\r\n") == status::bad_request);
  // Found by the fuzzer: a request line without a version.
  auto no_version = error_of("POST *e\nHost: a\r\nContent-Length: 0\r\n\r\n");
  CHECK(code(no_version) >= 400);
  CHECK(no_version != status::ok);
}

// Header storage is recycled per thread (headers.hpp): what a recycled
// value held before must never show through, whatever the copies and moves.
TEST_CASE("headers: values survive copies, moves and recycling of the storage")
{
  const std::string long_value(300, 'v');
  coronet::http::headers kept;
  for (int round = 0; round < 3; ++round) {
    coronet::http::headers h;
    h.add("Content-Type", "application/octet-stream; charset=binary");
    h.add(std::string("X-Long"), long_value + std::to_string(round));
    h.add("X-View", std::string_view("a view longer than sixteen bytes"));
    coronet::http::headers copy = h;
    coronet::http::headers moved = std::move(h);
    CHECK(moved.get("x-long") == long_value + std::to_string(round));
    CHECK(copy.get("content-type") == "application/octet-stream; charset=binary");
    copy.set("X-View", "replaced, and also longer than sixteen");
    CHECK(copy.count("X-View") == 1);
    CHECK(copy.get("x-view") == "replaced, and also longer than sixteen");
    CHECK(moved.get("x-view") == "a view longer than sixteen bytes");
    kept = std::move(moved); // the old fields go back to the pool
    copy.clear();
    CHECK(copy.empty());
    copy.add("Reused", "after clear, a value with some length to it");
    CHECK(copy.get("reused") == "after clear, a value with some length to it");
  }
  CHECK(kept.size() == 3);
  CHECK(kept.get("X-Long") == long_value + "2");
}
