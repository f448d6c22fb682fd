// The microservice showcase end to end: three coronet-backend processes and
// coronet-gateway over loopback, talked to with raw HTTP.
#include <support/process.hpp>
#include <support/raw_http.hpp>

#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/read.hpp>
#include <asio/write.hpp>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <csignal>
#include <memory>
#include <string>
#include <thread>
#include <vector>

using asio::ip::tcp;
using json = nlohmann::json;
using coronet::test::app;
using coronet::test::get;
using coronet::test::parse_reply;

namespace {

std::string base(const app& a)
{
  return "http://127.0.0.1:" + std::to_string(a.port);
}

// Three backends and a gateway; each backend takes its own extra flags.
struct demo {
  explicit demo(std::vector<std::string> users_flags = {}, std::vector<std::string> orders_flags = {},
    std::vector<std::string> recommendations_flags = {}, std::vector<std::string> gateway_flags = {})
    : users(backend("users", std::move(users_flags))),
      orders(backend("orders", std::move(orders_flags))),
      recommendations(backend("recommendations", std::move(recommendations_flags)))
  {
    std::vector<std::string> flags{"--set", "backends.users=" + base(*users), "--set",
      "backends.orders=" + base(*orders), "--set", "backends.recommendations=" + base(*recommendations)};
    flags.insert(flags.end(), gateway_flags.begin(), gateway_flags.end());
    gateway = std::make_unique<app>("coronet-gateway", flags);
    REQUIRE(gateway->port != 0);
  }

  static std::unique_ptr<app> backend(const std::string& role, std::vector<std::string> flags)
  {
    flags.insert(flags.begin(), {"--role", role});
    auto a = std::make_unique<app>("coronet-backend", flags);
    REQUIRE(a->port != 0);
    return a;
  }

  ~demo()
  {
    for (auto* a : {gateway.get(), users.get(), orders.get(), recommendations.get()}) {
      if (a) {
        a->proc.signal(SIGTERM);
        a->proc.wait();
      }
    }
  }

  std::unique_ptr<app> users, orders, recommendations, gateway;
};

} // namespace

TEST_CASE("gateway: the dashboard joins all three services, and the request id reaches each")
{
  demo d;
  auto r = get(d.gateway->port, "/api/users/7/dashboard", "X-Request-Id: dash-7\r\n");
  REQUIRE(r.status == 200);
  CHECK(r.head.find("X-Request-Id: dash-7\r\n") != std::string::npos);
  auto doc = r.doc();
  CHECK(doc["user"]["id"] == 7);
  CHECK(doc["user"]["name"] == "User 7");
  CHECK(doc["orders"].is_array());
  CHECK(doc["orders"].size() >= 1);
  CHECK(doc["recommendations"].size() == 3);
  CHECK(doc["partial"] == false);
  CHECK(doc["errors"].empty());
  // The same id gets the same data.
  CHECK(get(d.gateway->port, "/api/users/7/dashboard").doc()["orders"] == doc["orders"]);

  for (auto* backend : {d.users.get(), d.orders.get(), d.recommendations.get()})
    CHECK(backend->proc.wait_for_line("id=dash-7", std::chrono::seconds(5)));
  CHECK(d.gateway->proc.wait_for_line("GET /api/users/7/dashboard 200", std::chrono::seconds(5))->find("id=dash-7") !=
        std::string::npos);
}

TEST_CASE("gateway: bad ids get 400, unknown users 404")
{
  demo d;
  CHECK(get(d.gateway->port, "/api/users/abc/dashboard").status == 400);
  CHECK(get(d.gateway->port, "/api/users/0/dashboard").status == 400);
  auto missing = get(d.gateway->port, "/api/users/2000000/dashboard");
  CHECK(missing.status == 404);
  CHECK(missing.doc()["error"] == "no such user");
}

TEST_CASE("gateway: a stopped backend gives a partial answer naming it")
{
  demo d;
  d.orders->proc.signal(SIGTERM);
  REQUIRE(d.orders->proc.wait() == 0);
  d.orders.reset();
  auto r = get(d.gateway->port, "/api/users/3/dashboard");
  REQUIRE(r.status == 200);
  auto doc = r.doc();
  CHECK(doc["partial"] == true);
  CHECK(doc["orders"].is_null());
  CHECK(doc["recommendations"].size() == 3);
  REQUIRE(doc["errors"].size() == 1);
  CHECK(doc["errors"][0]["service"] == "orders");
  CHECK(doc["errors"][0]["reason"] == "refused");
}

TEST_CASE("gateway: a slow backend times out into a partial answer within the deadline")
{
  demo d{{}, {}, {"--set", "backend.latency_ms=2000"}, {"--set", "gateway.backend_timeout_ms=150"}};
  auto start = std::chrono::steady_clock::now();
  auto r = get(d.gateway->port, "/api/users/5/dashboard");
  auto took = std::chrono::steady_clock::now() - start;
  REQUIRE(r.status == 200);
  auto doc = r.doc();
  CHECK(doc["partial"] == true);
  CHECK(doc["recommendations"].is_null());
  CHECK(doc["errors"][0]["reason"] == "timeout");
  CHECK(took < std::chrono::milliseconds(1000)); // gateway.request_timeout_ms, the promise to the caller
}

TEST_CASE("gateway: the request deadline bounds all calls together")
{
  demo d{{"--set", "backend.latency_ms=2000"}, {}, {},
    {"--set", "gateway.backend_timeout_ms=5000", "--set", "gateway.request_timeout_ms=300"}};
  auto start = std::chrono::steady_clock::now();
  auto r = get(d.gateway->port, "/api/users/5/dashboard");
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::milliseconds(1500));
  CHECK(r.status == 502);
  CHECK(r.doc()["error"] == "users service: timeout");
}

TEST_CASE("gateway: injected errors give the right mix of partial answers and 502s, and the metrics agree")
{
  demo d{{}, {"--set", "backend.error_rate=0.5"}};
  int full = 0, partial = 0;
  for (int i = 1; i <= 40; ++i) {
    auto r = get(d.gateway->port, "/api/users/" + std::to_string(i) + "/dashboard");
    REQUIRE(r.status == 200);
    auto doc = r.doc();
    if (doc["partial"] == true) {
      CHECK(doc["errors"][0]["reason"] == "status 500");
      CHECK(doc["orders"].is_null());
      ++partial;
    } else {
      ++full;
    }
  }
  CHECK(full > 0);    // 2^-40 to fail by chance
  CHECK(partial > 0);

  auto metrics = get(d.gateway->port, "/metrics");
  REQUIRE(metrics.status == 200);
  auto has = [&](const std::string& line) {
    INFO(line);
    CHECK(metrics.body.find(line + "\n") != std::string::npos);
  };
  has("coronet_http_client_requests_total{target=\"orders\",outcome=\"5xx\"} " + std::to_string(partial));
  has("coronet_http_client_requests_total{target=\"orders\",outcome=\"2xx\"} " + std::to_string(full));
  has("coronet_http_client_requests_total{target=\"users\",outcome=\"2xx\"} 40");
  has("coronet_http_requests_total{route=\"/api/users/{id}/dashboard\",method=\"GET\",status=\"200\",protocol=\"HTTP/1.1\"} 40");
  has("coronet_http_request_duration_seconds_count{route=\"/api/users/{id}/dashboard\"} 40");
  CHECK(metrics.body.find("coronet_tasks_spawned_total ") != std::string::npos);
  CHECK(metrics.body.find("coronet_tcp_connections_accepted_total ") != std::string::npos);
  CHECK(metrics.body.find("coronet_tcp_connections_open ") != std::string::npos);
  has("coronet_tcp_connections_refused_total 0");

  demo failing{{"--set", "backend.error_rate=1"}};
  auto r = get(failing.gateway->port, "/api/users/1/dashboard");
  CHECK(r.status == 502);
  CHECK(r.doc()["error"] == "users service: status 500");
}

TEST_CASE("gateway: /readyz fails once draining while an in-flight request still completes")
{
  demo d{{"--set", "backend.latency_ms=700"}, {}, {}, {"--set", "gateway.backend_timeout_ms=3000", "--set",
    "gateway.request_timeout_ms=5000"}};
  CHECK(get(d.gateway->port, "/healthz").status == 200);
  CHECK(get(d.gateway->port, "/readyz").status == 200);

  asio::io_context io;
  tcp::socket slow{io}, probe{io};
  slow.connect({asio::ip::address_v4::loopback(), d.gateway->port});
  probe.connect({asio::ip::address_v4::loopback(), d.gateway->port});
  // The probe's request is under way (headers not finished), so the drain
  // waits for it rather than closing the connection as idle.
  asio::write(probe, asio::buffer(std::string("GET /readyz HTTP/1.1\r\nHost: t\r\n")));
  asio::write(slow, asio::buffer(std::string("GET /api/users/9/dashboard HTTP/1.1\r\nHost: t\r\n\r\n")));
  // In flight once the gateway has called the (slow) users service.
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (coronet::test::established(d.users->port) == 0 && std::chrono::steady_clock::now() < until)
    std::this_thread::yield();
  REQUIRE(coronet::test::established(d.users->port) > 0);

  d.gateway->proc.signal(SIGTERM);
  REQUIRE(d.gateway->proc.wait_for_line("stopping", std::chrono::seconds(5)));
  asio::write(probe, asio::buffer(std::string("\r\n")));
  std::string got;
  std::error_code ec;
  asio::read(probe, asio::dynamic_buffer(got), ec);
  auto ready = parse_reply(got);
  CHECK(ready.status == 503);
  CHECK(ready.head.find("Connection: close\r\n") != std::string::npos);

  got.clear();
  asio::read(slow, asio::dynamic_buffer(got), ec);
  auto answer = parse_reply(got);
  CHECK(answer.status == 200);
  CHECK(answer.doc()["partial"] == false);
  CHECK(answer.head.find("Connection: close\r\n") != std::string::npos);
  CHECK(d.gateway->proc.wait(std::chrono::seconds(10)) == 0);
  d.gateway.reset();
}

TEST_CASE("gateway: with two replicas per backend, one stopped or shedding half its calls, every dashboard is full")
{
  demo d;
  auto orders2 = demo::backend("orders", {});
  auto users2 = demo::backend("users", {"--set", "backend.error_rate=0.5", "--set", "backend.error_status=503"});
  app gateway{"coronet-gateway", {"--set", "backends.users=" + base(*d.users) + ", " + base(*users2), "--set",
    "backends.orders=" + base(*d.orders) + ", " + base(*orders2), "--set",
    "backends.recommendations=" + base(*d.recommendations)}};
  REQUIRE(gateway.port != 0);
  auto all_full = [&](int n) {
    int full = 0;
    for (int i = 1; i <= n; ++i) {
      auto r = get(gateway.port, "/api/users/" + std::to_string(i) + "/dashboard");
      if (r.status == 200 && r.doc()["partial"] == false)
        ++full;
    }
    return full;
  };
  CHECK(all_full(40) == 40);
  orders2->proc.signal(SIGTERM);
  REQUIRE(orders2->proc.wait() == 0);
  CHECK(all_full(60) == 60); // the stopped replica is skipped at once, then ejected

  auto metrics = get(gateway.port, "/metrics").body;
  auto count = [&](const std::string& series) {
    auto at = metrics.find(series + " ");
    return at == std::string::npos ? -1 : std::stoi(metrics.substr(at + series.size() + 1));
  };
  // Both users replicas took calls; every 503 was retried on the other one.
  CHECK(count("coronet_http_client_retries_total{target=\"users\",reason=\"503\"}") > 0);
  CHECK(count("coronet_http_client_requests_total{target=\"users\",outcome=\"2xx\"}") == 100);
  CHECK(count("coronet_http_client_ejected_replicas{target=\"orders\"}") >= 1);
  CHECK(count("coronet_http_client_retries_total{target=\"orders\",reason=\"connect\"}") <= 10);
  gateway.proc.signal(SIGTERM);
  CHECK(gateway.proc.wait() == 0);
  users2->proc.signal(SIGTERM);
  users2->proc.wait();
}

TEST_CASE("gateway: a client that goes away cancels the dashboard, and the backend sees its call cancelled")
{
  demo d{{}, {"--set", "backend.latency_ms=3000"}};
  {
    asio::io_context io;
    tcp::socket s{io};
    s.connect({asio::ip::address_v4::loopback(), d.gateway->port});
    std::string wire = "GET /api/users/4/dashboard HTTP/1.1\r\nHost: t\r\n\r\n";
    asio::write(s, asio::buffer(wire));
    std::this_thread::sleep_for(std::chrono::milliseconds(100)); // the calls are out; orders is slow
  } // closed: the caller gave up
  auto cancelled = [](const app& a) {
    auto body = get(a.port, "/metrics").body;
    auto at = body.find("\ncoronet_http_requests_cancelled_total ");
    return at == std::string::npos ? 0 : std::stoi(body.substr(at + 39));
  };
  int gateway = 0, orders = 0;
  for (int i = 0; i < 250 && (gateway == 0 || orders == 0); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    gateway = cancelled(*d.gateway);
    orders = cancelled(*d.orders);
  }
  CHECK(gateway == 1); // the dashboard's handler, when its client left
  CHECK(orders == 1);  // the orders call it made, when the gateway closed that connection
}
