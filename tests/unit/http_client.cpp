// The HTTP client against scripted servers in the same runtime: pooling,
// stale connections, timeouts, malformed and unusual responses.
#include "scripted_server.hpp"

#include <coronet/client/client.hpp>
#include <coronet/metrics.hpp>
#include <coronet/runtime.hpp>
#include <coronet/sync/wait_group.hpp>
#include <coronet/time.hpp>

#include <asio/experimental/as_tuple.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/read_until.hpp>
#include <asio/write.hpp>

#include <doctest/doctest.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>

namespace http = coronet::http;
using asio::ip::tcp;
using coronet::task;
using namespace std::chrono_literals;

using namespace scripted;

namespace {

// Answers the first request; then, when `stale`, closes as the next arrives
// without a byte of response (a server whose keep-alive timer just fired),
// else answers everything.
task<void> close_after_one_if(tcp::socket& s, bool stale)
{
  std::string buffer;
  if (!co_await read_request(s, buffer))
    co_return;
  co_await send(s, ok_response);
  if (stale) {
    co_await read_request(s, buffer);
    co_return;
  }
  while (co_await read_request(s, buffer))
    co_await send(s, ok_response);
}

} // namespace

TEST_CASE("http client: keep-alive connections are pooled and reused")
{
  run([](coronet::runtime& rt) -> task<void> {
    scripted_server server{rt, answer_all};
    coronet::spawn(accept_loop(server));
    http::client client{rt};
    for (int i = 0; i < 3; ++i) {
      auto r = co_await client.get(server.url("/x"));
      CHECK(r.status == 200);
      CHECK(r.body == "ok");
    }
    CHECK(server.accepted == 1);
    auto s = client.stats();
    CHECK(s.connects == 1);
    CHECK(s.reuses == 2);
    CHECK(s.idle == 1);
    server.acceptor.close();
  });
}

TEST_CASE("http client: concurrent calls open parallel connections, up to the per-host limit")
{
  run([](coronet::runtime& rt) -> task<void> {
    scripted_server server{rt, [](tcp::socket& s, int) -> task<void> {
      std::string buffer;
      while (co_await read_request(s, buffer)) {
        co_await coronet::sleep_for(20ms);
        co_await send(s, ok_response);
      }
    }};
    coronet::spawn(accept_loop(server));
    http::client_options o;
    o.max_connections_per_host = 2;
    http::client client{rt, o};
    coronet::wait_group wg;
    int ok = 0;
    for (int i = 0; i < 6; ++i) {
      wg.add(1);
      coronet::spawn([](http::client& c, std::string url, coronet::wait_group& wg, int& ok) -> task<void> {
        auto r = co_await c.get(std::move(url));
        ok += r.status == 200;
        wg.done();
      }(client, server.url(), wg, ok));
    }
    co_await wg.wait();
    CHECK(ok == 6);
    CHECK(server.accepted == 2); // the others waited for a free connection
    server.acceptor.close();
  });
}

TEST_CASE("http client: a stale pooled connection is retried once for GET, never for POST")
{
  run([](coronet::runtime& rt) -> task<void> {
    // Connection 0 answers one request, then closes when the next arrives
    // (as a server whose keep-alive timer just fired would).
    scripted_server server{rt, [](tcp::socket& s, int n) { return close_after_one_if(s, n == 0 || n == 2); }};
    coronet::spawn(accept_loop(server));
    http::client client{rt};
    CHECK((co_await client.get(server.url())).status == 200);
    http::request_options named;
    named.name = "stale-get";
    auto again = co_await client.get(server.url(), std::move(named));
    CHECK(again.status == 200);
    CHECK(client.stats().retries == 1);
    CHECK(server.accepted == 2);
    // The retry layer counts it, by its reason.
    auto& retries = coronet::metrics::registry::global().counters("coronet_http_client_retries_total", "",
      {"target", "reason"});
    CHECK(retries.with({"stale-get", "stale"}).value() == 1);

    // POST is not idempotent: the same situation is an error.
    http::client posting{rt};
    CHECK((co_await posting.post(server.url(), "a")).status == 200); // connection 2
    try {
      co_await posting.post(server.url(), "b");
      FAIL("expected a client_error");
    } catch (const http::client_error& e) {
      CHECK(e.kind() == http::client_errc::closed);
    }
    server.acceptor.close();
  });
}

TEST_CASE("http client: the retry after a stale connection goes to a new one, not to another stale one")
{
  run([](coronet::runtime& rt) -> task<void> {
    // Connections 0 and 1 answer one request each, then close when the next
    // arrives, without a byte of response (a server that closes idle
    // keep-alive connections); later ones answer everything.
    scripted_server server{rt, [](tcp::socket& s, int n) { return close_after_one_if(s, n < 2); }};
    coronet::spawn(accept_loop(server));
    http::client client{rt};
    // Two calls at once: two connections, both pooled afterwards.
    coronet::wait_group wg;
    int ok = 0;
    wg.add(2);
    for (int i = 0; i < 2; ++i)
      coronet::spawn([](http::client& c, std::string url, coronet::wait_group& wg, int& ok) -> task<void> {
        if ((co_await c.get(std::move(url))).status == 200)
          ++ok;
        wg.done();
      }(client, server.url(), wg, ok));
    co_await wg.wait();
    REQUIRE(ok == 2);
    REQUIRE(client.stats().idle == 2);
    // Both pooled connections are stale now: the call must not retry on the
    // second after the first fails.
    auto r = co_await client.get(server.url());
    CHECK(r.status == 200);
    CHECK(client.stats().retries == 1);
    CHECK(server.accepted == 3);
    server.acceptor.close();
  });
}

TEST_CASE("http client: refused, timeout, deadline and bad URL are told apart")
{
  run([](coronet::runtime& rt) -> task<void> {
    http::client client{rt};
    // The error a call ends with; nullopt when it does not fail.
    auto kind_of = [&](std::string url, http::request_options o) -> task<std::optional<http::client_errc>> {
      try {
        co_await client.get(std::move(url), std::move(o));
      } catch (const http::client_error& e) {
        co_return e.kind();
      }
      co_return std::nullopt;
    };
    // A port that was just free: nothing listens there.
    unsigned short closed_port;
    {
      tcp::acceptor a{rt.executor(0), {asio::ip::address_v4::loopback(), 0}};
      closed_port = a.local_endpoint().port();
    }
    CHECK(co_await kind_of("http://127.0.0.1:" + std::to_string(closed_port) + "/", {}) ==
          http::client_errc::refused);

    // Accepts, reads, never answers.
    scripted_server silent{rt, [](tcp::socket& s, int) -> task<void> {
      std::string buffer;
      co_await read_request(s, buffer);
      co_await coronet::sleep_for(5s);
    }};
    coronet::spawn(accept_loop(silent));
    http::request_options quick;
    quick.timeout = 100ms;
    auto start = coronet::clock::now();
    CHECK(co_await kind_of(silent.url(), std::move(quick)) == http::client_errc::timeout);
    CHECK(coronet::clock::now() - start < 2s);

    http::request_options by_deadline;
    by_deadline.deadline = coronet::clock::now() + 50ms;
    CHECK(co_await kind_of(silent.url(), std::move(by_deadline)) == http::client_errc::timeout);

    CHECK(co_await kind_of("ftp://example.com/", {}) == http::client_errc::bad_url);
    CHECK(co_await kind_of("http://:80/", {}) == http::client_errc::bad_url);
    CHECK(co_await kind_of("http://127.0.0.1:99999/", {}) == http::client_errc::bad_url);
    silent.acceptor.close();
  });
}

TEST_CASE("http client: chunked and close-delimited bodies, 1xx skipped, HEAD without body")
{
  run([](coronet::runtime& rt) -> task<void> {
    scripted_server server{rt, [](tcp::socket& s, int) -> task<void> {
      std::string buffer;
      while (co_await read_request(s, buffer)) {
        co_await send(s, "HTTP/1.1 100 Continue\r\n\r\n"
                         "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n");
        if (!co_await read_request(s, buffer))
          co_return;
        co_await send(s, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"); // HEAD: no body follows
        if (!co_await read_request(s, buffer))
          co_return;
        co_await send(s, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end");
        co_return;
      }
    }};
    coronet::spawn(accept_loop(server));
    http::client client{rt};
    auto chunked = co_await client.get(server.url());
    CHECK(chunked.body == "abcde");
    auto head = co_await client.send("HEAD", server.url());
    CHECK(head.status == 200);
    CHECK(head.body.empty());
    CHECK(head.header("Content-Length") == "5");
    auto closing = co_await client.get(server.url());
    CHECK(closing.body == "until the end");
    CHECK(server.accepted == 1);
    CHECK(client.stats().idle == 0); // a closed connection is not pooled
    server.acceptor.close();
  });
}

TEST_CASE("http client: a 101 has no body, whatever its headers say, and its connection is not reused")
{
  run([](coronet::runtime& rt) -> task<void> {
    scripted_server server{rt, [](tcp::socket& s, int) -> task<void> {
      std::string buffer;
      if (!co_await read_request(s, buffer))
        co_return;
      // no Upgrade named: llhttp alone would read 5 bytes of body (found by fuzzing)
      co_await send(s, "HTTP/1.1 101 Switching Protocols\r\nContent-Length: 5\r\n\r\nhello");
    }};
    coronet::spawn(accept_loop(server));
    http::client client{rt};
    auto r = co_await client.send("HEAD", server.url());
    CHECK(r.status == 101);
    CHECK(r.body.empty());
    CHECK(client.stats().idle == 0);
    server.acceptor.close();
  });
}

TEST_CASE("http client: malformed and oversized responses are errors, and the connection is dropped")
{
  run([](coronet::runtime& rt) -> task<void> {
    scripted_server server{rt, [](tcp::socket& s, int n) -> task<void> {
      std::string buffer;
      if (!co_await read_request(s, buffer))
        co_return;
      if (n == 0)
        co_await send(s, "HTTP/1.1 2x0 OK\r\n\r\n");
      else if (n == 1)
        co_await send(s, "HTTP/1.1 200 OK\r\nContent-Length: 999999999\r\n\r\n");
      else if (n == 2)
        co_await send(s, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort"); // then closes
      else
        co_await send(s, "HTTP/1.1 02 OK\r\nContent-Length: 0\r\n\r\n"); // not 3 digits (found by fuzzing)
    }};
    coronet::spawn(accept_loop(server));
    http::client_options o;
    o.max_response_body_bytes = 1024;
    http::client client{rt, o};
    auto kind_of = [&]() -> task<std::optional<http::client_errc>> {
      try {
        co_await client.get(server.url());
      } catch (const http::client_error& e) {
        co_return e.kind();
      }
      co_return std::nullopt;
    };
    CHECK(co_await kind_of() == http::client_errc::malformed_response);
    CHECK(co_await kind_of() == http::client_errc::response_too_large);
    CHECK(co_await kind_of() == http::client_errc::closed);
    CHECK(co_await kind_of() == http::client_errc::malformed_response);
    CHECK(client.stats().idle == 0);
    server.acceptor.close();
  });
}
