// coronet-techempower against a PostgreSQL of the test's own, checked to
// TechEmpower's requirements for its database tests.
#include <support/pg_server.hpp>
#include <support/process.hpp>
#include <support/raw_http.hpp>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <csignal>
#include <optional>
#include <string>
#include <vector>

using json = nlohmann::json;
using coronet::test::app;
using coronet::test::get;
using coronet::test::pg_server;

namespace {

// The benchmark's database, loaded, and the app on it.
struct bench {
  pg_server db;
  std::optional<app> server;
  bench()
  {
    if (!db.available())
      return;
    db.load(std::string(CORONET_SOURCE_DIR) + "/apps/techempower/create.sql");
    server.emplace("coronet-techempower", std::vector<std::string>{"--set", "pg.url=" + db.url(), "--set", "pg.pool_size=4"});
  }
  int stored(int id) const { return std::stoi(db.psql("select randomnumber from world where id = " + std::to_string(id))); }
};

#define REQUIRE_POSTGRES(b)                                                                                            \
  if (!(b).db.available()) {                                                                                           \
    MESSAGE((b).db.why());                                                                                             \
    return;                                                                                                            \
  }

void check_world(const json& w)
{
  REQUIRE(w.is_object());
  REQUIRE(w.size() == 2);
  CHECK(w["id"].get<int>() >= 1);
  CHECK(w["id"].get<int>() <= 10000);
  CHECK(w["randomNumber"].get<int>() >= 1);
  CHECK(w["randomNumber"].get<int>() <= 10000);
}

} // namespace

TEST_CASE("techempower: /db answers one World row as a JSON object, as the table holds it")
{
  bench b;
  REQUIRE_POSTGRES(b);
  REQUIRE(b.server->port != 0);
  for (int i = 0; i < 5; ++i) {
    auto r = get(b.server->port, "/db");
    REQUIRE(r.status == 200);
    CHECK(r.has("Content-Type: application/json"));
    CHECK(r.has("Server: coronet"));
    CHECK(r.has("Date: "));
    auto w = r.doc();
    check_world(w);
    CHECK(w["randomNumber"].get<int>() == b.stored(w["id"].get<int>()));
  }
}

TEST_CASE("techempower: /queries answers N rows, N clamped to 1..500 and 1 when it is no number")
{
  bench b;
  REQUIRE_POSTGRES(b);
  const std::pair<const char*, std::size_t> cases[] = {
    {"/queries?queries=20", 20}, {"/queries?queries=1", 1}, {"/queries?queries=0", 1}, {"/queries?queries=-5", 1},
    {"/queries?queries=foo", 1}, {"/queries?queries=", 1}, {"/queries", 1}, {"/queries?queries=501", 500},
    {"/cached-queries?count=7", 7}, {"/cached-queries?count=0", 1}, {"/cached-queries?count=bar", 1},
    {"/cached-queries?count=1000", 500}};
  for (auto [path, n] : cases) {
    CAPTURE(path);
    auto r = get(b.server->port, path);
    REQUIRE(r.status == 200);
    CHECK(r.has("Content-Type: application/json"));
    auto rows = r.doc();
    REQUIRE(rows.is_array());
    CHECK(rows.size() == n);
    for (auto& w : rows)
      check_world(w);
  }
  auto rows = get(b.server->port, "/queries?queries=10").doc();
  for (auto& w : rows)
    CHECK(w["randomNumber"].get<int>() == b.stored(w["id"].get<int>()));
}

TEST_CASE("techempower: /updates writes a new randomNumber to every row it answers")
{
  bench b;
  REQUIRE_POSTGRES(b);
  auto before = b.db.psql("select sum(randomnumber::bigint) || ',' || count(*) from world");
  auto r = get(b.server->port, "/updates?queries=20");
  REQUIRE(r.status == 200);
  auto rows = r.doc();
  REQUIRE(rows.size() == 20);
  for (auto& w : rows) {
    check_world(w);
    CHECK(w["randomNumber"].get<int>() == b.stored(w["id"].get<int>()));
  }
  CHECK(get(b.server->port, "/updates?queries=0").doc().size() == 1);
  CHECK(get(b.server->port, "/updates?queries=600").doc().size() == 500);
  CHECK(b.db.psql("select count(*) from world") == "10000");
}

TEST_CASE("techempower: /fortunes is the benchmark's page: escaped, the added fortune, sorted")
{
  bench b;
  REQUIRE_POSTGRES(b);
  auto r = get(b.server->port, "/fortunes");
  REQUIRE(r.status == 200);
  CHECK(r.has("Content-Type: text/html; charset=utf-8"));
  const std::string expected =
    "<!DOCTYPE html><html><head><title>Fortunes</title></head><body><table><tr><th>id</th><th>message</th></tr>"
    "<tr><td>11</td><td>&lt;script&gt;alert(&quot;This should not be displayed in a browser alert box.&quot;);&lt;/script&gt;</td></tr>"
    "<tr><td>4</td><td>A bad random number generator: 1, 1, 1, 1, 1, 4.33e+67, 1, 1, 1</td></tr>"
    "<tr><td>5</td><td>A computer program does what you tell it to do, not what you want it to do.</td></tr>"
    "<tr><td>2</td><td>A computer scientist is someone who fixes things that aren&#39;t broken.</td></tr>"
    "<tr><td>8</td><td>A list is only as strong as its weakest link. \u2014 Donald Knuth</td></tr>"
    "<tr><td>0</td><td>Additional fortune added at request time.</td></tr>"
    "<tr><td>3</td><td>After enough decimal places, nobody gives a damn.</td></tr>"
    "<tr><td>7</td><td>Any program that runs right is obsolete.</td></tr>"
    "<tr><td>10</td><td>Computers make very fast, very accurate mistakes.</td></tr>"
    "<tr><td>6</td><td>Emacs is a nice operating system, but I prefer UNIX. \u2014 Tom Christaensen</td></tr>"
    "<tr><td>9</td><td>Feature: A bug with seniority.</td></tr>"
    "<tr><td>1</td><td>fortune: No such file or directory</td></tr>"
    "<tr><td>12</td><td>\u30d5\u30ec\u30fc\u30e0\u30ef\u30fc\u30af\u306e\u30d9\u30f3\u30c1\u30de\u30fc\u30af</td></tr>"
    "</table></body></html>";
  CHECK(r.body == expected);
}

TEST_CASE("techempower: with the database stopped, queries answer 503 at once and the app stays up")
{
  bench b;
  REQUIRE_POSTGRES(b);
  b.db.stop();
  auto start = std::chrono::steady_clock::now();
  auto r = get(b.server->port, "/db");
  CHECK(r.status == 503);
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(2));
  CHECK(get(b.server->port, "/cached-queries?count=2").status == 200);
  b.db.restart(); // starts it again
  int status = 0;
  for (int i = 0; i < 50 && status != 200; ++i)
    status = get(b.server->port, "/db").status; // a few may meet the restart
  CHECK(status == 200);
  b.server->proc.signal(SIGTERM);
  CHECK(b.server->proc.wait() == 0);
}

TEST_CASE("techempower: without a database it will not start, and says why")
{
  coronet::test::process p{{coronet::test::binary("coronet-techempower"), "--listen", "127.0.0.1:0", "--set",
    "pg.url=postgres://nobody@127.0.0.1:1/none", "--set", "pg.connect_timeout_ms=500"}};
  auto status = p.wait();
  REQUIRE(status);
  CHECK(*status != 0);
  CHECK(p.output().find("PostgreSQL") != std::string::npos);
}
