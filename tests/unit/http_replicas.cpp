// Calls over replicas against scripted servers: balancing, skipping a
// replica that refuses, ejection and its probe (on an injected clock),
// retries and their budget, backoff within the deadline, hedging.
#include "scripted_server.hpp"

#include <coronet/client/client.hpp>
#include <coronet/metrics.hpp>
#include <coronet/runtime.hpp>
#include <coronet/sync/task_group.hpp>
#include <coronet/time.hpp>

#include <doctest/doctest.h>

#include <fmt/format.h>

#include <memory>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <optional>
#include <string>
#include <vector>

namespace http = coronet::http;
using namespace scripted;
using namespace std::chrono_literals;

namespace {

// A replica whose answers a test sets and whose requests it counts.
struct replica_server {
  struct shared {
    int status;                      // answered with; 0: close the connection instead
    std::chrono::milliseconds delay; // before answering
    int requests = 0;
    int gone = 0;                    // connections the client closed
  };

  // A free function, so the frame owns the state: a connection may outlive
  // the test's server object.
  static task<void> serve(tcp::socket& socket, std::shared_ptr<shared> s)
  {
    std::string buffer;
    while (co_await read_request(socket, buffer)) {
      ++s->requests;
      if (s->status == 0)
        co_return; // a reset: the connection closes without a byte of answer
      if (s->delay.count() > 0)
        co_await coronet::sleep_for(s->delay);
      auto body = std::to_string(s->status);
      co_await send(socket, fmt::format("HTTP/1.1 {} X\r\nContent-Length: {}\r\n\r\n{}", s->status, body.size(),
        body));
    }
    ++s->gone;
  }

  replica_server(coronet::runtime& rt, int status, std::chrono::milliseconds delay = 0ms)
    : state(std::make_shared<shared>(shared{status, delay}))
  {
    server = std::make_shared<scripted_server>(rt, [s = state](tcp::socket& socket, int) { return serve(socket, s); });
    coronet::spawn(accept_loop(*server));
  }
  ~replica_server() { server->acceptor.close(); }

  std::shared_ptr<shared> state;
  std::shared_ptr<scripted_server> server;
  std::string url() const { return "http://127.0.0.1:" + std::to_string(server->port); }
};

std::string dead_url(coronet::runtime& rt)
{
  tcp::acceptor a{rt.executor(0), {asio::ip::address_v4::loopback(), 0}};
  return "http://127.0.0.1:" + std::to_string(a.local_endpoint().port()); // closed on return: refuses
}

std::uint64_t counted(const char* name, std::vector<std::string> labels, std::vector<std::string_view> values)
{
  return coronet::metrics::registry::global().counters(name, "", std::move(labels)).with(values).value();
}

// A clock the test moves by hand.
struct manual_clock {
  std::shared_ptr<coronet::clock::time_point> at = std::make_shared<coronet::clock::time_point>(coronet::clock::now());
  void advance(coronet::clock::duration d) { *at += d; }
  std::function<coronet::clock::time_point()> fn() const
  {
    return [at = at] { return *at; };
  }
};

// Runs `n` calls at once (each `make()`), and returns their statuses (0 for an error).
template <class Make>
task<std::vector<int>> at_once(int n, Make make)
{
  std::vector<int> statuses(static_cast<std::size_t>(n), -1);
  coronet::task_group calls;
  for (auto& status : statuses)
    calls.spawn([](Make make, int& out) -> task<void> {
      try {
        auto r = co_await make();
        out = r.status;
      } catch (const http::client_error&) {
        out = 0;
      }
    }(make, status));
  co_await calls.wait();
  co_return statuses;
}

} // namespace

TEST_CASE("replicas: calls spread over the replicas, fewer to the one with more calls in flight")
{
  run([](coronet::runtime& rt) -> task<void> {
    replica_server fast{rt, 200}, slow{rt, 200, 20ms};
    http::client client{rt};
    http::upstream up{client, {fast.url(), slow.url()}, "spread"};
    // Eight callers, each making its calls one after another.
    auto got = co_await at_once(8, [&]() -> task<http::client_response> {
      for (int i = 0; i < 24; ++i)
        CHECK((co_await up.get("/x")).status == 200);
      co_return co_await up.get("/x");
    });
    for (int s : got)
      CHECK(s == 200);
    // Each replica had its share, and the slow one (its calls pile up) less.
    CHECK(fast.state->requests + slow.state->requests == 200);
    CHECK(slow.state->requests > 0);
    CHECK(fast.state->requests > 2 * slow.state->requests);
  });
}

TEST_CASE("replicas: a replica that refuses connections is skipped at once, and ejected")
{
  run([](coronet::runtime& rt) -> task<void> {
    replica_server live{rt, 200};
    http::client client{rt};
    auto dead = dead_url(rt);
    http::upstream up{client, {dead, live.url()}, "skip-dead"};
    for (int i = 0; i < 50; ++i) {
      // POST too: nothing reached the dead replica, so any call may go elsewhere.
      http::client_response r;
      if (i % 2)
        r = co_await up.get("/x");
      else
        r = co_await up.post("/x", "body");
      CHECK(r.status == 200);
    }
    CHECK(live.state->requests == 50);
    // Five failures in a row eject it: no more than five calls tried it.
    CHECK(counted("coronet_http_client_retries_total", {"target", "reason"}, {"skip-dead", "connect"}) <= 5);
    CHECK(counted("coronet_http_client_ejections_total", {"target", "replica"},
            {"skip-dead", std::string_view(dead).substr(7)}) == 1);
    auto& ejected = coronet::metrics::registry::global().gauges("coronet_http_client_ejected_replicas", "", {"target"});
    CHECK(ejected.with({"skip-dead"}).value() == 1);
  });
}

TEST_CASE("replicas: ejection lasts eject_time, doubles while the replica fails, ends after one good probe")
{
  run([](coronet::runtime& rt) -> task<void> {
    replica_server bad{rt, 500}, good{rt, 200};
    manual_clock time;
    http::client_options o;
    o.now = time.fn();
    o.eject_after_failures = 3;
    o.eject_time = 10s;
    http::client client{rt, o};
    http::upstream up{client, {bad.url(), good.url()}, "eject"};
    // POST: not retried, so each call shows which replica took it.
    auto calls = [&](int n) -> task<void> {
      for (int i = 0; i < n; ++i)
        co_await up.post("/x", "b");
    };
    co_await calls(40);
    CHECK(bad.state->requests == 3); // ejected after its third failure in a row
    co_await calls(40);
    CHECK(bad.state->requests == 3);

    time.advance(10s); // back on probation: one call, which fails: out for 20 s
    co_await calls(40);
    CHECK(bad.state->requests == 4);
    time.advance(10s);
    co_await calls(40);
    CHECK(bad.state->requests == 4);
    time.advance(10s);
    bad.state->status = 200; // recovered: the probe succeeds and it is back
    co_await calls(40);
    CHECK(bad.state->requests > 5);
  });
}

TEST_CASE("replicas: at most max_ejected_percent of the replicas are ejected")
{
  run([](coronet::runtime& rt) -> task<void> {
    replica_server a{rt, 500}, b{rt, 500};
    manual_clock time;
    http::client_options o;
    o.now = time.fn();
    o.eject_after_failures = 2;
    http::client client{rt, o};
    http::upstream up{client, {a.url(), b.url()}, "eject-cap"};
    for (int i = 0; i < 40; ++i)
      CHECK((co_await up.post("/x", "b")).status == 500);
    // One of the two is out; the other still takes every call.
    CHECK(std::min(a.state->requests, b.state->requests) == 2);
    CHECK(std::max(a.state->requests, b.state->requests) == 38);
  });
}

TEST_CASE("replicas: idempotent calls are retried elsewhere on 503 and on a reset before any answer, others not")
{
  run([](coronet::runtime& rt) -> task<void> {
    replica_server busy{rt, 503}, resets{rt, 0}, good{rt, 200};
    http::client_options o;
    o.eject_after_failures = 0; // keep every replica in the choice
    o.retry_backoff = 1ms;
    http::client client{rt, o};
    http::upstream shedding{client, {busy.url(), good.url()}, "retry-503"};
    http::upstream resetting{client, {resets.url(), good.url()}, "retry-reset"};
    for (int i = 0; i < 20; ++i) {
      CHECK((co_await shedding.get("/x")).status == 200);
      CHECK((co_await resetting.send("DELETE", "/x")).status == 200);
    }
    CHECK(busy.state->requests > 0);
    CHECK(resets.state->requests > 0);
    CHECK(counted("coronet_http_client_retries_total", {"target", "reason"}, {"retry-503", "503"}) ==
          static_cast<std::uint64_t>(busy.state->requests));
    CHECK(counted("coronet_http_client_retries_total", {"target", "reason"}, {"retry-reset", "reset"}) ==
          static_cast<std::uint64_t>(resets.state->requests));

    // A POST is sent once: its 503 is the answer, its reset the error.
    int statuses_503 = 0, errors = 0;
    for (int i = 0; i < 20; ++i) {
      if ((co_await shedding.post("/x", "b")).status == 503)
        ++statuses_503;
      try {
        co_await resetting.post("/x", "b");
      } catch (const http::client_error& e) {
        CHECK(e.kind() == http::client_errc::closed);
        ++errors;
      }
    }
    CHECK(statuses_503 > 0);
    CHECK(errors > 0);
    // Unless the call says it may be repeated.
    http::request_options retryable;
    retryable.retryable = true;
    for (int i = 0; i < 10; ++i)
      CHECK((co_await resetting.post("/x", "b", retryable)).status == 200);
  });
}

TEST_CASE("replicas: an answer the call's retry_answer refuses is retried as a 503 is, and never wins")
{
  run([](coronet::runtime& rt) -> task<void> {
    replica_server busy{rt, 429}, good{rt, 200};
    http::client_options o;
    o.eject_after_failures = 0;
    o.retry_backoff = 1ms;
    http::client client{rt, o};
    http::upstream both{client, {busy.url(), good.url()}, "retry-answer"};
    http::request_options refusing;
    refusing.retry_answer = [](const http::client_response& r) { return r.status == 429; };
    for (int i = 0; i < 20; ++i) {
      auto plain = co_await both.get("/x"); // a 429 is an answer like any other...
      CHECK((plain.status == 200 || plain.status == 429));
      auto r = co_await both.get("/x", refusing); // ...unless the call says otherwise
      CHECK(r.status == 200);
    }
    CHECK(counted("coronet_http_client_retries_total", {"target", "reason"}, {"retry-answer", "answer"}) > 0);
    // Only for a call that may be sent again: a POST's refused answer is its answer.
    http::upstream only_busy{client, {busy.url()}, "retry-answer-post"};
    auto posted = co_await only_busy.post("/x", "b", refusing);
    CHECK(posted.status == 429);
  });
}

TEST_CASE("replicas: the retry budget caps retries at its share of calls")
{
  run([](coronet::runtime& rt) -> task<void> {
    replica_server down{rt, 503};
    manual_clock time; // the budget's window does not move
    http::client_options o;
    o.now = time.fn();
    o.retry_budget_percent = 20;
    o.retry_budget_min_per_second = 0;
    o.retry_backoff = 1ms;
    o.eject_after_failures = 0;
    http::client client{rt, o};
    for (int i = 0; i < 100; ++i)
      CHECK((co_await client.get(down.url() + "/x")).status == 503);
    // 100 calls, at most 20 % more; without the budget, 300 (two retries each).
    CHECK(down.state->requests >= 100);
    CHECK(down.state->requests <= 120);
    CHECK(counted("coronet_http_client_retries_denied_total", {"target"}, {down.url()}) >= 60);
  });
}

TEST_CASE("replicas: no retry whose backoff would end past the deadline")
{
  run([](coronet::runtime& rt) -> task<void> {
    replica_server down{rt, 503};
    http::client_options o;
    o.retry_backoff = 200ms;
    http::client client{rt, o};
    http::request_options quick;
    quick.timeout = 50ms;
    auto start = coronet::clock::now();
    auto r = co_await client.get(down.url() + "/x", quick);
    CHECK(r.status == 503);
    CHECK(down.state->requests == 1);
    CHECK(coronet::clock::now() - start < 1s); // the call's 50 ms, not the client's 10 s default
  });
}

TEST_CASE("replicas: a hedge goes to another replica when the first is slow, the first answer wins")
{
  run([](coronet::runtime& rt) -> task<void> {
    replica_server slow{rt, 200, 1000ms}, fast{rt, 200};
    http::client_options o;
    o.random = [] { return 0.0; }; // the choice between equals goes to the first
    http::client client{rt, o};
    http::upstream up{client, {slow.url(), fast.url()}, "hedge"};
    http::request_options h;
    h.hedge_after = 20ms;
    h.timeout = 5s;
    auto start = coronet::clock::now();
    auto r = co_await up.get("/x", h);
    CHECK(r.status == 200);
    CHECK(coronet::clock::now() - start < 700ms); // not the slow replica's second
    CHECK(slow.state->requests == 1);
    CHECK(fast.state->requests == 1);
    CHECK(counted("coronet_http_client_hedges_total", {"target", "event"}, {"hedge", "sent"}) == 1);
    CHECK(counted("coronet_http_client_hedges_total", {"target", "event"}, {"hedge", "won"}) == 1);
    // The losing attempt was cancelled: its connection is closed (had it
    // waited for the answer, the connection would now sit in the pool).
    for (int i = 0; i < 300 && slow.state->gone == 0; ++i)
      co_await coronet::sleep_for(10ms);
    CHECK(slow.state->gone == 1);
  });
}

TEST_CASE("replicas: hedges come out of the retry budget")
{
  run([](coronet::runtime& rt) -> task<void> {
    replica_server slow{rt, 200, 150ms}, fast{rt, 200};
    http::client_options o;
    o.random = [] { return 0.0; };
    o.retry_budget_percent = 0;
    o.retry_budget_min_per_second = 0;
    http::client client{rt, o};
    http::upstream up{client, {slow.url(), fast.url()}, "hedge-budget"};
    http::request_options h;
    h.hedge_after = 20ms;
    auto start = coronet::clock::now();
    CHECK((co_await up.get("/x", h)).status == 200);
    CHECK(coronet::clock::now() - start >= 140ms); // no hedge: the slow answer
    CHECK(fast.state->requests == 0);
    CHECK(counted("coronet_http_client_retries_denied_total", {"target"}, {"hedge-budget"}) == 1);
  });
}

TEST_CASE("replicas: a call whose deadline has passed is not made")
{
  run([](coronet::runtime& rt) -> task<void> {
    replica_server server{rt, 200};
    http::client client{rt};
    http::request_options late;
    late.deadline = coronet::clock::now() - 1ms;
    late.name = "late";
    std::optional<http::client_errc> kind;
    try {
      co_await client.get(server.url() + "/x", late);
    } catch (const http::client_error& e) {
      kind = e.kind();
    }
    CHECK(kind == http::client_errc::timeout);
    CHECK(server.server->accepted == 0);
    CHECK(counted("coronet_http_client_deadline_exceeded_total", {"target"}, {"late"}) == 1);
  });
}

TEST_CASE("replicas: a host name is resolved into its addresses, and bad upstream URLs are refused")
{
  run([](coronet::runtime& rt) -> task<void> {
    replica_server server{rt, 200};
    http::client client{rt};
    // localhost may give ::1 as well, where nothing listens: that replica is skipped.
    for (int i = 0; i < 10; ++i)
      CHECK((co_await client.get("http://localhost:" + std::to_string(server.server->port) + "/x")).status == 200);
    CHECK_THROWS_AS(http::upstream(client, {}), http::client_error);
    CHECK_THROWS_AS(http::upstream(client, {"http://a:1/path"}), http::client_error);
    CHECK_THROWS_AS(http::upstream(client, {"ftp://a"}), http::client_error);
  });
}

TEST_CASE("replicas: a black-holed replica (SYNs dropped) is hedged around, and ejected for it")
{
  run([](coronet::runtime& rt) -> task<void> {
    // A listener that never accepts, its backlog filled: further SYNs are dropped.
    tcp::acceptor hole{rt.executor(0), tcp::endpoint{asio::ip::address_v4::loopback(), 0}};
    hole.listen(0);
    auto port = hole.local_endpoint().port();
    std::vector<int> fillers;
    for (int i = 0; i < 4; ++i) { // connects in progress, or done into the backlog
      int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
      sockaddr_in to{};
      to.sin_family = AF_INET;
      to.sin_port = htons(port);
      to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      [[maybe_unused]] int r = ::connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof to);
      fillers.push_back(fd);
    }
    replica_server good{rt, 200};
    http::client_options o;
    o.eject_after_failures = 3;
    http::client client{rt, o};
    auto hole_url = "http://127.0.0.1:" + std::to_string(port);
    http::upstream up{client, {hole_url, good.url()}, "black-hole"};
    http::request_options h;
    h.hedge_after = 20ms;
    h.timeout = 2s;
    for (int i = 0; i < 30; ++i)
      CHECK((co_await up.get("/x", h)).status == 200);
    CHECK(good.state->requests == 30);
    CHECK(counted("coronet_http_client_ejections_total", {"target", "replica"},
            {"black-hole", std::string_view(hole_url).substr(7)}) == 1);
    // Three calls waited on the hole (and were hedged); then it was out.
    CHECK(counted("coronet_http_client_hedges_total", {"target", "event"}, {"black-hole", "sent"}) <= 3);
    for (int fd : fillers)
      ::close(fd);
  });
}

TEST_CASE("replicas: hedge_at_p95 hedges after the target's own p95 once it is known")
{
  run([](coronet::runtime& rt) -> task<void> {
    replica_server first{rt, 200}, second{rt, 200};
    http::client_options o;
    o.random = [] { return 0.0; }; // sequential calls all go to the first replica listed
    http::client client{rt, o};
    http::upstream up{client, {first.url(), second.url()}, "hedge-p95"};
    http::request_options h;
    h.hedge_after = http::request_options::hedge_at_p95;
    h.timeout = 5s;
    for (int i = 0; i < 64; ++i) // answers at once: the p95 is learnt (at least 1 ms)
      CHECK((co_await up.get("/x", h)).status == 200);
    CHECK(second.state->requests == 0);
    first.state->delay = 1000ms;
    auto start = coronet::clock::now();
    CHECK((co_await up.get("/x", h)).status == 200);
    CHECK(coronet::clock::now() - start < 700ms);
    CHECK(second.state->requests == 1);
    CHECK(counted("coronet_http_client_hedges_total", {"target", "event"}, {"hedge-p95", "won"}) == 1);
  });
}

TEST_CASE("replicas: a name is resolved again every dns_refresh: new addresses join, vanished ones leave")
{
  run([](coronet::runtime& rt) -> task<void> {
    replica_server a{rt, 200}, b{rt, 200};
    auto at = [](const replica_server& s) { return tcp::endpoint{asio::ip::address_v4::loopback(), s.server->port}; };
    auto addresses = std::make_shared<std::vector<tcp::endpoint>>(std::vector{at(a)});
    manual_clock time;
    http::client_options o;
    o.now = time.fn();
    o.dns_refresh = 5s;
    o.resolve = [addresses](const std::string& host, unsigned short port) {
      CHECK(host == "orders.test"); // a headless Service's name, say
      CHECK(port == 8082);
      return *addresses;
    };
    http::client client{rt, o};
    auto calls = [&](int n) -> task<void> {
      for (int i = 0; i < n; ++i)
        CHECK((co_await client.get("http://orders.test:8082/x")).status == 200);
    };
    co_await calls(20);
    CHECK(a.state->requests == 20);

    *addresses = {at(a), at(b)}; // scaled out
    time.advance(5s);
    co_await calls(1); // finds the refresh due
    co_await calls(40);
    CHECK(b.state->requests > 0);

    *addresses = {at(b)}; // scaled in
    time.advance(5s);
    co_await calls(1);
    auto a_before = a.state->requests;
    co_await calls(20);
    CHECK(a.state->requests == a_before);
    CHECK(client.stats().idle == 1); // b's connection; a's left with its replica

    addresses->clear(); // the name stops resolving: the replicas known are kept
    time.advance(5s);
    co_await calls(20);
  });
}

TEST_CASE("replicas: idle pooled connections are closed once past idle_timeout, without another call")
{
  run([](coronet::runtime& rt) -> task<void> {
    replica_server server{rt, 200};
    http::client_options o;
    o.idle_timeout = 200ms;
    http::client client{rt, o};
    CHECK((co_await client.get(server.url() + "/x")).status == 200);
    CHECK(client.stats().idle == 1);
    // The idle client holds no descriptor past the timeout: the server sees the close.
    for (int i = 0; i < 200 && server.state->gone == 0; ++i)
      co_await coronet::sleep_for(10ms);
    CHECK(server.state->gone == 1);
    CHECK(client.stats().idle == 0);
  });
}
