// coronet-techempower: TechEmpower's database tests on coronet::pg, to the
// benchmark's published requirements (the World and Fortune tables of
// create.sql, beside this file).
//
//   GET /db                     one random World row: {"id":3217,"randomNumber":2149}
//   GET /queries?queries=N      N random rows (N clamped to 1..500; not a number: 1), one round trip
//   GET /fortunes               every Fortune, one more added, sorted by message, as escaped HTML
//   GET /updates?queries=N      N random rows, each given a new randomNumber and written back
//   GET /cached-queries?count=N N random rows from a copy of World read at start
//   GET /json, /plaintext       the two tests without a database
//
// Needs pg.url (for instance postgres://benchmarkdbuser:benchmarkdbpass@tfb-database/hello_world).
#include <coronet/app/app.hpp>
#include <coronet/http/error.hpp>
#include <coronet/pg/database.hpp>
#include <coronet/runtime.hpp>
#include <coronet/server/server.hpp>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace http = coronet::http;
namespace pg = coronet::pg;
using coronet::task;

namespace {

constexpr coronet::config_key app_keys[] = {
  {"server.listen", "127.0.0.1:8080", "HOST:PORT to listen on (port 0: any free port)"},
  {"pg.pool_size", 16, "sessions per worker", 1, 10000},
  {"techempower.pipeline", true, "/queries and /updates send their selects in one round trip; false: one at a time"},
};

bool pipelined = true; // techempower.pipeline, set before serving

constexpr int worlds = 10000;

struct world {
  std::int32_t id;
  std::int32_t randomNumber;
};

// 1..10000, from a per-thread xorshift (the benchmark asks for no more).
int random_id()
{
  thread_local std::uint64_t x = 0x9E3779B97F4A7C15ULL ^ reinterpret_cast<std::uintptr_t>(&x);
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  return static_cast<int>(x % worlds) + 1;
}

// queries=N as the benchmark wants it: 1..500, and 1 when it is no number.
int count_of(const http::request& req, std::string_view name)
{
  auto v = req.query(std::string(name));
  int n = 1;
  if (!v || std::from_chars(v->data(), v->data() + v->size(), n).ec != std::errc{})
    return 1;
  return std::clamp(n, 1, 500);
}

http::response json_of(std::string body)
{
  return http::response::json(http::status::ok, std::move(body));
}

void append(std::string& out, const world& w)
{
  fmt::format_to(std::back_inserter(out), R"({{"id":{},"randomNumber":{}}})", w.id, w.randomNumber);
}

std::string array_of(const std::vector<world>& rows)
{
  std::string out = "[";
  for (auto& w : rows) {
    if (out.size() > 1)
      out += ',';
    append(out, w);
  }
  out += ']';
  return out;
}

constexpr const char* select_world = "SELECT id, randomNumber FROM World WHERE id = $1";

task<std::vector<world>> random_worlds(pg::database& db, int n)
{
  if (!pipelined) {
    std::vector<world> rows;
    for (int i = 0; i < n; ++i)
      rows.push_back((co_await db.query<world>(select_world, random_id())).at(0));
    co_return rows;
  }
  std::vector<pg::statement> batch;
  batch.reserve(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i)
    batch.push_back(pg::sql(select_world, random_id()));
  auto results = co_await db.pipeline(std::move(batch));
  std::vector<world> rows;
  rows.reserve(results.size());
  for (auto& r : results)
    rows.push_back(r[0].as<world>());
  co_return rows;
}

task<http::response> single(pg::database& db)
{
  auto w = co_await db.query_one<world>(select_world, random_id());
  if (!w)
    throw http::error(http::status::internal_server_error, "World is missing a row: load create.sql");
  std::string out;
  append(out, *w);
  co_return json_of(std::move(out));
}

task<http::response> queries(pg::database& db, const http::request& req)
{
  co_return json_of(array_of(co_await random_worlds(db, count_of(req, "queries"))));
}

// Every row gets a new number; a row drawn twice keeps the one it got first,
// so the answer is what the table holds. One statement writes them all, in
// id order: two requests never lock the same rows in opposite orders (a
// deadlock the server breaks only after a second).
task<http::response> updates(pg::database& db, const http::request& req)
{
  auto rows = co_await random_worlds(db, count_of(req, "queries"));
  std::map<std::int32_t, std::int32_t> written; // id -> its new number, in id order
  for (auto& w : rows)
    w.randomNumber = written.try_emplace(w.id, random_id()).first->second;
  std::vector<std::int32_t> ids, numbers;
  for (auto [id, n] : written) {
    ids.push_back(id);
    numbers.push_back(n);
  }
  co_await db.execute("UPDATE World SET randomNumber = u.n FROM unnest($1::int[], $2::int[]) AS u(id, n) "
                      "WHERE World.id = u.id", ids, numbers);
  co_return json_of(array_of(rows));
}

void escape_into(std::string& out, std::string_view text)
{
  for (char c : text) {
    switch (c) {
    case '&': out += "&amp;"; break;
    case '<': out += "&lt;"; break;
    case '>': out += "&gt;"; break;
    case '"': out += "&quot;"; break;
    case '\'': out += "&#39;"; break;
    default: out += c;
    }
  }
}

struct fortune {
  std::int32_t id;
  std::string message;
};

task<http::response> fortunes(pg::database& db)
{
  auto rows = co_await db.query<fortune>("SELECT id, message FROM Fortune");
  rows.push_back({0, "Additional fortune added at request time."});
  std::sort(rows.begin(), rows.end(), [](const fortune& a, const fortune& b) { return a.message < b.message; });
  std::string html = "<!DOCTYPE html><html><head><title>Fortunes</title></head><body><table>"
                     "<tr><th>id</th><th>message</th></tr>";
  for (auto& f : rows) {
    fmt::format_to(std::back_inserter(html), "<tr><td>{}</td><td>", f.id);
    escape_into(html, f.message);
    html += "</td></tr>";
  }
  html += "</table></body></html>";
  http::response r;
  r.headers.add("Content-Type", "text/html; charset=utf-8");
  r.body = std::move(html);
  co_return r;
}

// The copy of World that /cached-queries reads, made once before serving.
struct world_cache {
  std::vector<world> rows = std::vector<world>(worlds + 1);
};

task<http::response> cached(const world_cache& cache, const http::request& req)
{
  int n = count_of(req, "count");
  std::string out = "[";
  for (int i = 0; i < n; ++i) {
    if (i)
      out += ',';
    append(out, cache.rows[static_cast<std::size_t>(random_id())]);
  }
  out += ']';
  co_return json_of(std::move(out));
}

task<void> serve(coronet::runtime& rt, const coronet::config& cfg, pg::database& db, world_cache& cache)
{
  for (auto& w : co_await db.query<world>("SELECT id, randomNumber FROM World"))
    if (w.id >= 1 && w.id <= worlds)
      cache.rows[static_cast<std::size_t>(w.id)] = w;
  http::router router;
  auto* d = &db;
  router.get("/db", [d](const http::request&) { return single(*d); }); // a pg::error: 503, 504 or 500
  router.get("/queries", [d](const http::request& req) { return queries(*d, req); });
  router.get("/updates", [d](const http::request& req) { return updates(*d, req); });
  router.get("/fortunes", [d](const http::request&) { return fortunes(*d); });
  router.get("/cached-queries", [&cache](const http::request& req) { return cached(cache, req); });
  router.get("/json", [](const http::request&) -> task<http::response> {
    co_return http::response::json(http::status::ok, R"({"message":"Hello, World!"})");
  });
  router.get("/plaintext", [](const http::request&) -> task<http::response> {
    co_return http::response::text(http::status::ok, "Hello, World!");
  });
  co_await http::serve(rt, cfg, std::move(router));
}

} // namespace

int main(int argc, char** argv)
{
  std::vector<coronet::config_key> keys(std::begin(pg::pg_keys), std::end(pg::pg_keys));
  keys.insert(keys.end(), std::begin(app_keys), std::end(app_keys));
  auto cfg = coronet::load_config(argc, argv, "techempower", keys);
  pg::options options;
  try {
    options = pg::options::from(cfg);
  } catch (const coronet::config_error& e) {
    spdlog::critical("config error: {}", e.what());
    return 2;
  }
  pipelined = cfg.get_bool("techempower.pipeline");
  coronet::runtime rt{cfg};
  pg::database db{rt, options};
  world_cache cache;
  return rt.run_until_signal(serve(rt, cfg, db, cache));
}
