// coronet-backend: the services behind the gateway, one role per process
// (--role users|orders|recommendations). Latency (fixed + jitter, and a
// share of slow answers) and an error rate with its status are configurable
// so the gateway can be tried against slow and failing services.
//
//   GET /users/{id}            {"id":7,"name":"User 7","email":"user7@example.com"}
//   POST /users                {"name":..,"email":..} -> 201 and the user, Location: /users/{id}
//   PUT|PATCH /users/{id}      {"name":..} and/or {"email":..} -> 200 and the user
//   GET /orders?user={id}      {"user":7,"orders":[{"id":701,"total":12.34},...]}
//   POST /orders               {"user":7,"total":12.5} -> 201 and the order
//   GET /recommendations/{id}  {"user":7,"items":["item-...",...]}
//
// The store (store.hpp) is in memory by default: made-up users 1..1000000
// and their orders, plus what was written since the start. With
// backend.store = "postgres://..." it is PostgreSQL (tables made and filled
// at the first start), with backend.cache = "redis://..." a read-through
// cache. Writes take JSON (415 for another Content-Type, 400 naming what is
// wrong), gzip or zstd bodies too; an email taken or an order for no user
// is 409; the database out of reach 503.
#include "store.hpp"
#ifdef CORONET_DEMO_GRPC
#include "users.coronet.hpp"
#endif
#ifdef CORONET_BACKEND_DATABASE
#include "database.hpp"
#endif

#include <coronet/app/app.hpp>
#include <coronet/error.hpp>
#include <coronet/http/error.hpp>
#include <coronet/http/json.hpp>
#include <coronet/middleware/compress.hpp>
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
  {"backend.store", "memory", "memory (made-up users, writes kept until exit) or a postgres:// URL"},
  {"backend.cache", "", "a redis:// URL: a read-through cache in front of the database; empty: none"},
  {"backend.cache_ttl_ms", 60000, "how long a cached user or order list is kept", 1},
  {"backend.seed_users", 10000, "made-up users put in an empty database", 0, 10000000},
};

// What backend_keys set; read_settings fills every field.
struct settings {
  std::string role;
  std::chrono::milliseconds latency{};
  std::chrono::milliseconds jitter{};
  double error_rate = 0;
  int error_status = 0;
  double slow_rate = 0;
  std::chrono::milliseconds slow{};
  std::string store;
  std::string cache;
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
  s.store = cfg.get_string("backend.store");
  s.cache = cfg.get_string("backend.cache");
  if (s.store != "memory" && !s.store.starts_with("postgres://") && !s.store.starts_with("postgresql://"))
    cfg.fail("backend.store", "must be memory or a postgres:// URL");
  if (!s.cache.empty() && s.store == "memory")
    cfg.fail("backend.cache", "is for a database store (backend.store = \"postgres://...\")");
  return s;
}

json recommendations(std::int64_t id)
{
  json items = json::array();
  for (std::uint64_t i = 0; i < 3; ++i)
    items.push_back("item-" + std::to_string(backend::mix(static_cast<std::uint64_t>(id) + i * 7919) % 10000));
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

http::response answer(const json& body, http::status status = http::status::ok)
{
  return http::json_response(status, body);
}

// A JSON object's optional text field: 400 when it is there but empty or
// longer than `max`.
std::optional<std::string> text_field(const json& body, std::string_view name, std::size_t max)
{
  auto v = http::optional_field<std::string>(body, name);
  if (v && (v->empty() || v->size() > max))
    throw http::error{http::status::bad_request, fmt::format("\"{}\" must be 1 to {} characters", name, max)};
  if (v && name == "email" && v->find('@') == std::string::npos)
    throw http::error{http::status::bad_request, "\"email\" must be an email address"};
  return v;
}

#ifdef CORONET_DEMO_GRPC
// demo.Users over gRPC: the same store, latency and injected failures as
// GET /users/{id} (a failure as the gRPC status of its HTTP one).
class users_service final : public demo::UsersServer {
public:
  users_service(const settings& s, backend::store& db) : s_(s), db_(db) {}

  task<demo::User> GetUser(coronet::grpc::server_context&, const demo::UserRequest& q) override
  {
    if (q.id() <= 0)
      throw coronet::grpc::error(coronet::grpc::code::invalid_argument, "id must be a positive integer");
    if (auto failure = co_await behave(s_))
      throw coronet::grpc::error(failure->status == http::status::service_unavailable ? coronet::grpc::code::unavailable
                                                                                    : coronet::grpc::code::internal,
        "injected failure");
    auto u = co_await db_.user(q.id());
    if (!u)
      throw coronet::grpc::error(coronet::grpc::code::not_found, "no such user");
    demo::User out;
    out.set_id((*u)["id"].get<std::int64_t>());
    out.set_name((*u)["name"].get<std::string>());
    out.set_email((*u)["email"].get<std::string>());
    co_return out;
  }

private:
  const settings& s_;
  backend::store& db_;
};
#endif

// The store and the settings live in main's frame for as long as the
// server runs.
void user_routes(http::router& router, const settings* at, backend::store* db)
{
  router.get("/users/{id}", [at, db](http::request& req) -> task<http::response> {
    auto id = http::positive_integer(req.param("id"), "id");
    if (auto failure = co_await behave(*at))
      co_return std::move(*failure);
    auto u = co_await db->user(id);
    if (!u)
      throw http::error{http::status::not_found, "no such user"};
    co_return answer(*u);
  });
  router.post("/users", [db](http::request& req) -> task<http::response> {
    auto body = http::json_body(req);
    auto name = text_field(body, "name", 200), email = text_field(body, "email", 254);
    if (!name || !email)
      throw http::error{http::status::bad_request, !name ? "missing field \"name\"" : "missing field \"email\""};
    auto u = co_await db->create_user(std::move(*name), std::move(*email));
    auto r = answer(u, http::status::created);
    r.headers.add("Location", "/users/" + std::to_string(u["id"].get<std::int64_t>()));
    co_return r;
  });
  auto update = [db](http::request& req) -> task<http::response> {
    auto id = http::positive_integer(req.param("id"), "id");
    auto body = http::json_body(req);
    backend::user_change change{text_field(body, "name", 200), text_field(body, "email", 254)};
    if (!change.name && !change.email)
      throw http::error{http::status::bad_request, "nothing to change: give \"name\" or \"email\""};
    auto u = co_await db->update_user(id, std::move(change));
    if (!u)
      throw http::error{http::status::not_found, "no such user"};
    co_return answer(*u);
  };
  router.put("/users/{id}", update);
  router.patch("/users/{id}", update);
}

void order_routes(http::router& router, const settings* at, backend::store* db)
{
  router.get("/orders", [at, db](http::request& req) -> task<http::response> {
    auto id = http::positive_integer(req.query("user"), "user");
    if (auto failure = co_await behave(*at))
      co_return std::move(*failure);
    co_return answer(co_await db->orders(id));
  });
  router.post("/orders", [db](http::request& req) -> task<http::response> {
    auto body = http::json_body(req);
    auto user = http::field<std::int64_t>(body, "user");
    auto total = http::field<double>(body, "total");
    if (user < 1)
      throw http::error{http::status::bad_request, "\"user\" must be a positive integer"};
    if (!(total >= 0 && total <= 1e9))
      throw http::error{http::status::bad_request, "\"total\" must be between 0 and 1000000000"};
    co_return answer(co_await db->create_order(user, total), http::status::created);
  });
}

void recommendation_routes(http::router& router, const settings* at)
{
  router.get("/recommendations/{id}", [at](http::request& req) -> task<http::response> {
    auto id = http::positive_integer(req.param("id"), "id");
    if (auto failure = co_await behave(*at))
      co_return std::move(*failure);
    co_return answer(recommendations(id));
  });
}

// The store backend.store names; a config_error for one this build cannot open.
std::unique_ptr<backend::store> open_store(coronet::runtime& rt, const coronet::config& cfg, const settings& s)
{
  if (s.store == "memory")
    return backend::make_memory_store();
#ifdef CORONET_BACKEND_DATABASE
  backend::database_settings d;
  d.pg = coronet::pg::options::from(cfg, "backend.store");
  if (!s.cache.empty())
    d.cache = coronet::redis::options::from(cfg, "backend.cache");
  d.cache_ttl = cfg.get_ms("backend.cache_ttl_ms");
  d.seed_users = cfg.get_int("backend.seed_users");
  return backend::make_database_store(rt, std::move(d));
#else
  (void)rt;
  cfg.fail("backend.store", "this build has no PostgreSQL support (it needs libpq-dev and libhiredis-dev)");
#endif
}

task<void> serve(coronet::runtime& rt, const coronet::config& cfg, http::router router, backend::store& db,
  bool database)
{
#ifdef CORONET_BACKEND_DATABASE
  if (database) {
    try {
      co_await backend::prepare_database(db);
    } catch (const coronet::status_error& e) { // pg::error: out of reach, refused...
      throw coronet::startup_error(fmt::format("backend.store: the database cannot be prepared: {}", e.what()));
    }
  }
#else
  (void)db, (void)database;
#endif
  co_await http::serve(rt, cfg, std::move(router));
}

} // namespace

int main(int argc, char** argv)
{
  std::vector<coronet::config_key> keys(std::begin(backend_keys), std::end(backend_keys));
#ifdef CORONET_BACKEND_DATABASE
  for (auto& k : coronet::pg::pg_keys)
    if (k.name != "pg.url") // backend.store is the URL
      keys.push_back(k);
  for (auto& k : coronet::redis::redis_keys)
    if (k.name != "redis.url") // backend.cache is the URL
      keys.push_back(k);
#endif
  auto cfg = coronet::load_config(argc, argv, "backend", keys,
    {{"role", "backend.role", "users, orders or recommendations"}});
  settings s;
  http::compress_options compression;
  coronet::runtime rt{cfg};
  std::unique_ptr<backend::store> db;
  try {
    s = read_settings(cfg);
    compression = http::compress_options::from(cfg);
    db = open_store(rt, cfg, s);
  } catch (const coronet::config_error& e) {
    spdlog::critical("config error: {}", e.what());
    return 2;
  }
  http::router router;
  http::observe(router, rt, cfg);
  router.use(http::compress(compression)); // gzip/zstd request bodies in, compressed answers out
#ifdef CORONET_DEMO_GRPC
  std::optional<users_service> users_grpc; // demo.Users on the same port, for the gateway's grpc:// backend
#endif
  if (s.role == "users") {
    user_routes(router, &s, db.get());
#ifdef CORONET_DEMO_GRPC
    users_grpc.emplace(s, *db);
    users_grpc->mount(router, coronet::grpc::options::from(cfg));
#endif
  }
  if (s.role == "orders")
    order_routes(router, &s, db.get());
  if (s.role == "recommendations")
    recommendation_routes(router, &s);
  spdlog::info("backend role {} on the {} store: latency {} ms + jitter {} ms, {} slower by {} ms, error rate {} ({})",
    s.role, s.store == "memory" ? "memory" : "PostgreSQL", s.latency.count(), s.jitter.count(), s.slow_rate,
    s.slow.count(), s.error_rate, s.error_status);
  return rt.run_until_signal(serve(rt, cfg, std::move(router), *db, s.store != "memory"));
}
