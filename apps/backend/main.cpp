// coronet-backend: the services behind the gateway, one role per process
// (--role users|orders|recommendations). Data is made up but deterministic
// per id; latency (fixed + jitter, and a share of slow answers) and an error
// rate with its status are configurable so the gateway can be tried against
// slow and failing services.
//
//   GET /users/{id}            {"id":7,"name":"User 7","email":"user7@example.com"}
//   GET /orders?user={id}      {"user":7,"orders":[{"id":701,"total":12.34},...]}
//   GET /recommendations/{id}  {"user":7,"items":["item-...",...]}
//
// Users exist for ids 1..1000000; others get 404.
#include <coronet/app/app.hpp>
#include <coronet/http/error.hpp>
#include <coronet/http/json.hpp>
#include <coronet/middleware/observe.hpp>
#include <coronet/server/server.hpp>
#include <coronet/runtime.hpp>
#include <coronet/time.hpp>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <optional>
#include <random>

namespace http = coronet::http;
using coronet::task;
using json = nlohmann::json;

namespace {

constexpr coronet::config_key backend_keys[] = {
  {"server.listen", "127.0.0.1:8081", "HOST:PORT to listen on (port 0: any free port)"},
  {"log.access", true, "one access log line per request on stdout"},
  {"backend.role", "users", "users, orders or recommendations"},
  {"backend.latency_ms", 0, "every answer waits this long...", 0},
  {"backend.jitter_ms", 0, "...plus a uniform random 0..jitter_ms", 0},
  {"backend.error_rate", 0.0, "this fraction (0..1) of answers fails on purpose..."},
  {"backend.error_status", 500, "...with this status (503 comes with Retry-After: 1)", 500, 599},
  {"backend.slow_rate", 0.0, "this fraction (0..1) of answers is slow..."},
  {"backend.slow_ms", 0, "...by this much more (p99 spikes)", 0},
};

constexpr std::int64_t max_user = 1000000;

// What backend_keys set; read_settings fills every field.
struct settings {
  std::string role;
  std::chrono::milliseconds latency{};
  std::chrono::milliseconds jitter{};
  double error_rate = 0;
  int error_status = 0;
  double slow_rate = 0;
  std::chrono::milliseconds slow{};
};

settings read_settings(const coronet::config& cfg)
{
  settings s;
  s.role = cfg.get_string("backend.role");
  if (s.role != "users" && s.role != "orders" && s.role != "recommendations")
    cfg.fail("backend.role", "must be users, orders or recommendations");
  s.latency = cfg.get_ms("backend.latency_ms"); // bounds: backend_keys
  s.jitter = cfg.get_ms("backend.jitter_ms");
  s.error_rate = cfg.get_double("backend.error_rate");
  if (s.error_rate < 0 || s.error_rate > 1)
    cfg.fail("backend.error_rate", "must be between 0 and 1");
  s.error_status = static_cast<int>(cfg.get_int("backend.error_status"));
  s.slow_rate = cfg.get_double("backend.slow_rate");
  if (s.slow_rate < 0 || s.slow_rate > 1)
    cfg.fail("backend.slow_rate", "must be between 0 and 1");
  s.slow = cfg.get_ms("backend.slow_ms");
  return s;
}

// A small, well-mixed hash so the made-up data looks varied but never changes.
std::uint64_t mix(std::uint64_t x)
{
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  return x;
}

json user(std::int64_t id)
{
  if (id > max_user)
    throw http::error{http::status::not_found, "no such user"};
  return {{"id", id}, {"name", "User " + std::to_string(id)}, {"email", "user" + std::to_string(id) + "@example.com"}};
}

json orders(std::int64_t id)
{
  json list = json::array();
  auto count = mix(static_cast<std::uint64_t>(id)) % 4 + 1;
  for (std::uint64_t i = 0; i < count; ++i) {
    auto cents = mix(static_cast<std::uint64_t>(id) * 31 + i) % 50000 + 100;
    list.push_back({{"id", id * 100 + static_cast<std::int64_t>(i)}, {"total", static_cast<double>(cents) / 100}});
  }
  return {{"user", id}, {"orders", std::move(list)}};
}

json recommendations(std::int64_t id)
{
  json items = json::array();
  for (std::uint64_t i = 0; i < 3; ++i)
    items.push_back("item-" + std::to_string(mix(static_cast<std::uint64_t>(id) + i * 7919) % 10000));
  return {{"user", id}, {"items", std::move(items)}};
}

// Waits the configured latency (a slow_rate share waits slow_ms more),
// then maybe fails on purpose: the failure to answer with, if any.
task<std::optional<http::response>> behave(const settings& s)
{
  thread_local std::mt19937_64 random{std::random_device{}()};
  auto chance = [&](double rate) { return rate > 0 && std::uniform_real_distribution<double>{0, 1}(random) < rate; };
  auto wait = s.latency;
  if (s.jitter.count() > 0)
    wait += std::chrono::milliseconds{std::uniform_int_distribution<std::int64_t>{0, s.jitter.count()}(random)};
  if (chance(s.slow_rate))
    wait += s.slow;
  if (wait.count() > 0)
    co_await coronet::sleep_for(wait);
  if (!chance(s.error_rate))
    co_return std::nullopt;
  auto failure = http::response::text(static_cast<http::status>(s.error_status), "injected failure\n");
  if (s.error_status == 503)
    failure.headers.add("Retry-After", "1");
  co_return failure;
}

http::response answer(const json& body)
{
  return http::json_response(http::status::ok, body);
}

} // namespace

int main(int argc, char** argv)
{
  auto cfg = coronet::load_config(argc, argv, "backend", backend_keys,
    {{"role", "backend.role", "users, orders or recommendations"}});
  settings s;
  try {
    s = read_settings(cfg);
  } catch (const coronet::config_error& e) {
    spdlog::critical("config error: {}", e.what());
    return 2;
  }
  coronet::runtime rt{cfg};
  http::router router;
  http::observe(router, rt, cfg);
  // The settings live in main's frame for as long as the server runs.
  const settings* at = &s;
  if (s.role == "users") {
    router.get("/users/{id}", [at](http::request& req) -> task<http::response> {
      auto id = http::positive_integer(req.param("id"), "id");
      if (auto failure = co_await behave(*at))
        co_return std::move(*failure);
      co_return answer(user(id));
    });
  } else if (s.role == "orders") {
    router.get("/orders", [at](http::request& req) -> task<http::response> {
      auto id = http::positive_integer(req.query("user"), "user");
      if (auto failure = co_await behave(*at))
        co_return std::move(*failure);
      co_return answer(orders(id));
    });
  } else {
    router.get("/recommendations/{id}", [at](http::request& req) -> task<http::response> {
      auto id = http::positive_integer(req.param("id"), "id");
      if (auto failure = co_await behave(*at))
        co_return std::move(*failure);
      co_return answer(recommendations(id));
    });
  }
  spdlog::info("backend role {}: latency {} ms + jitter {} ms, {} slower by {} ms, error rate {} ({})", s.role,
    s.latency.count(), s.jitter.count(), s.slow_rate, s.slow.count(), s.error_rate, s.error_status);
  return rt.run_until_signal(http::serve(rt, cfg, std::move(router)));
}
