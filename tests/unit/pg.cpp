// coronet::pg against a real PostgreSQL that each test starts for itself
// (scripts/pg-server.sh): types, pipelines, transactions, deadlines,
// cancellation, errors, a restarted or terminated server, an exhausted pool.
#include "support/pg_server.hpp"

#include <coronet/error.hpp>
#include <coronet/metrics.hpp>
#include <coronet/pg/database.hpp>
#include <coronet/runtime.hpp>
#include <coronet/sync/task_group.hpp>
#include <coronet/time.hpp>

#include <doctest/doctest.h>

#include <unistd.h>

#pragma GCC diagnostic ignored "-Wmismatched-new-delete" // GCC 12 misreads Asio's frame allocator

#include <cstdlib>
#include <filesystem>
#include <optional>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

namespace pg = coronet::pg;
using coronet::task;
using coronet::test::pg_server;
using namespace std::chrono_literals;

namespace {

pg::options options_for(const pg_server& server, std::size_t pool_size = 4)
{
  pg::options o;
  o.session.url = server.url();
  o.pool_size = pool_size;
  return o;
}

// Runs `body` on a one-worker runtime, with a database made and destroyed
// on its worker.
template <class Body>
void with_db(pg::options o, Body body)
{
  coronet::runtime rt{1};
  rt.block_on([](coronet::runtime& rt, pg::options o, Body& body) -> task<void> {
    pg::database db{rt, std::move(o)};
    co_await body(db);
  }(rt, std::move(o), body));
}

#define REQUIRE_POSTGRES(server)                                                                                       \
  if (!(server).available()) {                                                                                         \
    MESSAGE((server).why());                                                                                           \
    return;                                                                                                            \
  }

struct user {
  std::int64_t id;
  std::string name;
  std::optional<std::string> email;
};

// Every character from U+0001 to U+00FF, then some of every UTF-8 length.
std::string every_character()
{
  std::string s;
  for (unsigned c = 1; c < 0x80; ++c)
    s += static_cast<char>(c);
  for (unsigned c = 0x80; c < 0x100; ++c) {
    s += static_cast<char>(0xC0 | (c >> 6));
    s += static_cast<char>(0x80 | (c & 0x3F));
  }
  s += "\u20ac\u4e2d\U0001F600'\"\\;--";
  return s;
}

} // namespace

TEST_CASE("pg: values of every common type go in as parameters and come back as they were")
{
  pg_server server;
  REQUIRE_POSTGRES(server);
  with_db(options_for(server), [](pg::database& db) -> task<void> {
    auto n = co_await db.query_one<std::int64_t>("select $1::bigint + 1", std::int64_t{9007199254740993});
    CHECK(n == 9007199254740994);
    auto text = every_character();
    CHECK(co_await db.query_one<std::string>("select $1::text", text) == text);
    auto null = co_await db.query_one<std::optional<std::string>>("select null::text");
    REQUIRE(null.has_value()); // a row, whose one column is NULL
    CHECK(!null->has_value());
    pg::bytea bytes;
    for (int b = 0; b < 256; ++b)
      bytes.bytes += static_cast<char>(b);
    CHECK(co_await db.query_one<pg::bytea>("select $1::bytea", bytes) == bytes);
    CHECK(co_await db.query_one<std::string>("select $1::numeric * 2", "12345678901234567890.123456789") ==
      "24691357802469135780.246913578");
    CHECK(co_await db.query_one<double>("select $1::float8 / 4", 1.0) == 0.25);
    CHECK(co_await db.query_one<bool>("select $1::bool and true", true) == true);
    pg::timestamp t = std::chrono::sys_days{std::chrono::year{2024} / 2 / 29} + 23h + 59min + 58s + 123456us;
    CHECK(co_await db.query_one<pg::timestamp>("select $1::timestamptz + interval '1 second'", t) == t + 1s);
    CHECK(co_await db.query_one<pg::timestamp>("select '2024-01-01 05:00:00+05'::timestamptz") ==
      pg::timestamp{std::chrono::sys_days{std::chrono::year{2024} / 1 / 1}});
    std::vector<std::int64_t> ints{1, -2, 3};
    CHECK(co_await db.query_one<std::vector<std::int64_t>>("select $1::bigint[]", ints) == ints);
    std::vector<std::optional<std::string>> texts{"a,b", "\"q\"", std::nullopt, "back\\slash", "", "NULL", "{}"};
    CHECK(co_await db.query_one<std::vector<std::optional<std::string>>>("select $1::text[]", texts) == texts);
    CHECK((co_await db.query_one<std::vector<int>>("select '{}'::int[]"))->empty());

    auto rows = co_await db.query<std::tuple<int, std::string>>(
      "select g, 'n' || g from generate_series(1, 3) g order by g");
    REQUIRE(rows.size() == 3);
    CHECK(std::get<1>(rows[2]) == "n3");
  });
}

TEST_CASE("pg: rows read into structs by column order, and a mismatch is a clear error")
{
  pg_server server;
  REQUIRE_POSTGRES(server);
  server.psql("create table users (id bigint primary key, name text not null, email text)");
  server.psql("insert into users values (1, 'ada', 'ada@example.com'), (2, 'bob', null)");
  with_db(options_for(server), [](pg::database& db) -> task<void> {
    auto users = co_await db.query<user>("select id, name, email from users order by id");
    REQUIRE(users.size() == 2);
    CHECK(users[0].name == "ada");
    CHECK(users[0].email == "ada@example.com");
    CHECK(!users[1].email);
    CHECK(co_await db.query_one<user>("select id, name, email from users where id = $1", 3) == std::nullopt);
    try {
      co_await db.query<user>("select id, name from users");
      FAIL("two columns read into a three-field struct");
    } catch (const pg::error& e) {
      CHECK(e.kind() == pg::errc::bad_query);
      CHECK(std::string(e.what()).find("2 columns") != std::string::npos);
    }
    try {
      co_await db.query<std::int64_t>("select email from users where id = 2");
      FAIL("NULL read into an int");
    } catch (const pg::error& e) {
      CHECK(std::string(e.what()).find("NULL") != std::string::npos);
    }
  });
}

TEST_CASE("pg: a parameter is data, never SQL, and a text with a NUL byte is refused before sending")
{
  pg_server server;
  REQUIRE_POSTGRES(server);
  server.psql("create table notes (body text)");
  with_db(options_for(server), [&](pg::database& db) -> task<void> {
    const std::string attack = "x'); drop table notes; --";
    auto r = co_await db.execute("insert into notes values ($1)", attack);
    CHECK(r.affected() == 1);
    CHECK(co_await db.query_one<std::string>("select body from notes") == attack);
    try {
      co_await db.execute("insert into notes values ($1)", std::string("a\0b", 3));
      FAIL("a NUL byte in text was sent");
    } catch (const pg::error& e) {
      CHECK(e.kind() == pg::errc::bad_query);
    }
  });
  CHECK(server.psql("select count(*) from notes") == "1");
}

TEST_CASE("pg: a pipeline runs many statements in one round trip, and one failing leaves the others")
{
  pg_server server;
  REQUIRE_POSTGRES(server);
  server.psql("create table t (id int primary key)");
  with_db(options_for(server), [&](pg::database& db) -> task<void> {
    std::vector<pg::statement> batch;
    for (int i = 1; i <= 200; ++i)
      batch.push_back(pg::sql("select $1::int * 2", i));
    auto results = co_await db.pipeline(std::move(batch));
    REQUIRE(results.size() == 200);
    CHECK(results[199][0].get<int>(0) == 400);

    std::vector<pg::statement> mixed;
    mixed.push_back(pg::sql("insert into t values (1)"));
    mixed.push_back(pg::sql("insert into t values (1)")); // a duplicate key
    mixed.push_back(pg::sql("insert into t values (2)"));
    try {
      co_await db.pipeline(std::move(mixed));
      FAIL("the duplicate key went unreported");
    } catch (const pg::error& e) {
      CHECK(e.kind() == pg::errc::constraint);
      CHECK(e.constraint() == "t_pkey");
      CHECK(e.sqlstate() == "23505");
      CHECK(std::string(e.what()).find("statement 2 of 3") != std::string::npos);
    }
    // The session is clean, and the statements around the failure stand.
    CHECK(co_await db.query_one<std::int64_t>("select count(*) from t") == 2);
  });
}

namespace {

// How many pg_sleep statements the server still runs, once none does or
// `within` has passed (a cancel reaches the server on its own connection).
task<std::int64_t> sleeps_running(pg::database& db, std::chrono::milliseconds within)
{
  auto deadline = coronet::clock::now() + within;
  for (;;) {
    auto n = *co_await db.query_one<std::int64_t>("select count(*) from pg_stat_activity where query like "
      "'select pg_sleep%' and state = 'active' and pid <> pg_backend_pid()");
    if (n == 0 || coronet::clock::now() >= deadline)
      co_return n;
    co_await coronet::sleep_for(50ms);
  }
}

// A counter's value in the metrics text (0 when it is not there yet).
std::uint64_t counter_value(std::string_view name)
{
  auto text = coronet::metrics::registry::global().render();
  auto line = std::string("\n") + std::string(name) + " ";
  auto at = text.find(line);
  return at == std::string::npos ? 0 : std::stoull(text.substr(at + line.size()));
}

} // namespace

TEST_CASE("pg: concurrent calls share a session's round trips and each gets its own results")
{
  pg_server server;
  REQUIRE_POSTGRES(server);
  with_db(options_for(server, 1), [&](pg::database& db) -> task<void> {
    auto pid = co_await db.query_one<int>("select pg_backend_pid()"); // the one session, now idle
    auto trips = counter_value("coronet_pg_round_trips_total");
    auto statements = counter_value("coronet_pg_round_trip_statements_total");
    coronet::task_group g;
    g.spawn([](pg::database& db) -> task<void> { co_await db.execute("select pg_sleep(0.3)"); }(db));
    std::vector<std::optional<int>> answers(40), pids(40);
    for (int i = 0; i < 40; ++i)
      g.spawn([](pg::database& db, int i, std::optional<int>& answer, std::optional<int>& pid) -> task<void> {
        std::vector<pg::statement> two;
        two.push_back(pg::sql("select $1::int * 3", i));
        two.push_back(pg::sql("select pg_backend_pid()"));
        auto rs = co_await db.pipeline(std::move(two));
        answer = rs[0][0].get<int>(0);
        pid = rs[1][0].get<int>(0);
      }(db, i, answers[i], pids[i]));
    co_await g.wait();
    for (int i = 0; i < 40; ++i) {
      CHECK(answers[i] == i * 3);
      CHECK(pids[i] == pid);
    }
    // The sleep alone, then the 81 statements queued behind it, far fewer round trips than calls.
    CHECK(counter_value("coronet_pg_round_trip_statements_total") - statements == 81);
    CHECK(counter_value("coronet_pg_round_trips_total") - trips <= 3);
  });
}

TEST_CASE("pg: a call that stops waiting does not fail the calls sharing its round trip")
{
  pg_server server;
  REQUIRE_POSTGRES(server);
  auto o = options_for(server, 1);
  o.session.statement_timeout = 1s;
  with_db(o, [&](pg::database& db) -> task<void> {
    co_await db.execute("select 1");
    coronet::task_group g;
    g.spawn([](pg::database& db) -> task<void> { co_await db.execute("select pg_sleep(0.2)"); }(db));
    bool gave_up = false;
    std::optional<int> behind;
    // Both queue behind the sleep and then go in one round trip; the first gives up in it.
    g.spawn([](pg::database& db, bool& gave_up) -> task<void> {
      try {
        co_await coronet::with_timeout(db.execute("select pg_sleep(30)"), 400ms);
      } catch (const coronet::timeout_error&) {
        gave_up = true;
      }
    }(db, gave_up));
    g.spawn([](pg::database& db, std::optional<int>& behind) -> task<void> {
      behind = co_await db.query_one<int>("select 7");
    }(db, behind));
    co_await g.wait(); // the one behind waited for the sleep's statement_timeout, not for its own failure
    CHECK(gave_up);
    CHECK(behind == 7);
    CHECK(co_await db.query_one<int>("select 8") == 8);
  });
  with_db(options_for(server, 2), [&](pg::database& db) -> task<void> {
    // Alone in its round trip, a call that gives up has its statement cancelled on the server.
    try {
      co_await coronet::with_timeout(db.execute("select pg_sleep(30)"), 200ms);
      FAIL("pg_sleep(30) finished");
    } catch (const coronet::timeout_error&) {
    }
    CHECK(co_await sleeps_running(db, 3s) == 0);
  });
}

TEST_CASE("pg: a transaction commits when its function returns and rolls back when it throws")
{
  pg_server server;
  REQUIRE_POSTGRES(server);
  server.psql("create table accounts (id int primary key, balance int not null check (balance >= 0))");
  server.psql("insert into accounts values (1, 100), (2, 0)");
  with_db(options_for(server, 1), [&](pg::database& db) -> task<void> {
    auto moved = co_await db.transaction([](pg::transaction& tx) -> task<int> {
      co_await tx.execute("update accounts set balance = balance - 30 where id = 1");
      co_await tx.execute("update accounts set balance = balance + 30 where id = 2");
      co_return 30;
    });
    CHECK(moved == 30);
    try {
      co_await db.transaction([](pg::transaction& tx) -> task<void> {
        co_await tx.execute("update accounts set balance = balance + 500 where id = 2");
        co_await tx.execute("update accounts set balance = balance - 500 where id = 1"); // the check refuses
      });
      FAIL("the overdraft went through");
    } catch (const pg::error& e) {
      CHECK(e.kind() == pg::errc::constraint);
      CHECK(e.constraint() == "accounts_balance_check");
    }
    try {
      co_await db.transaction([](pg::transaction& tx) -> task<void> {
        co_await tx.execute("update accounts set balance = 0 where id = 1");
        throw std::runtime_error("changed my mind");
      });
    } catch (const std::runtime_error& e) {
      CHECK(std::string(e.what()) == "changed my mind");
    }
    // One session (pool_size 1): it came back clean after each rollback.
    auto balances = co_await db.query<int>("select balance from accounts order by id");
    CHECK(balances == std::vector<int>{70, 30});
  });
}

TEST_CASE("pg: a cancelled transaction is rolled back, and its session's query cancelled on the server")
{
  pg_server server;
  REQUIRE_POSTGRES(server);
  server.psql("create table log (line text)");
  with_db(options_for(server, 2), [&](pg::database& db) -> task<void> {
    auto start = coronet::clock::now();
    try {
      co_await coronet::with_timeout(db.transaction([](pg::transaction& tx) -> task<void> {
        co_await tx.execute("insert into log values ('never')");
        co_await tx.execute("select pg_sleep(30)");
      }), 300ms);
      FAIL("the transaction outlived its timeout");
    } catch (const coronet::timeout_error&) {
    }
    CHECK(coronet::clock::now() - start < 3s);
    // The server drops the session's work: nothing committed, no pg_sleep left running.
    auto sleeping = co_await sleeps_running(db, 10s);
    if (sleeping)
      MESSAGE(server.psql("select pid, state, query from pg_stat_activity"));
    CHECK(sleeping == 0);
    CHECK(co_await db.query_one<std::int64_t>("select count(*) from log") == 0);
  });
}

TEST_CASE("pg: statement_timeout ends a slow query with errc::timeout, and the session stays usable")
{
  pg_server server;
  REQUIRE_POSTGRES(server);
  auto o = options_for(server, 1);
  o.session.statement_timeout = 200ms;
  with_db(o, [&](pg::database& db) -> task<void> {
    auto start = coronet::clock::now();
    try {
      co_await db.execute("select pg_sleep(10)");
      FAIL("pg_sleep(10) finished");
    } catch (const pg::error& e) {
      CHECK(e.kind() == pg::errc::timeout);
      CHECK(e.sqlstate() == "57014");
    }
    CHECK(coronet::clock::now() - start < 3s);
    CHECK(co_await db.query_one<int>("select 1") == 1);
  });
}

TEST_CASE("pg: errors come as kinds a handler can answer with")
{
  pg_server server;
  REQUIRE_POSTGRES(server);
  with_db(options_for(server), [&](pg::database& db) -> task<void> {
    try {
      co_await db.execute("selec 1");
      FAIL("a syntax error passed");
    } catch (const pg::error& e) {
      CHECK(e.kind() == pg::errc::bad_query);
      CHECK(e.sqlstate() == "42601");
      CHECK(pg::http_status(e.kind()) == 500);
    }
    // The failed prepare is not kept: the same text fails again the same way.
    try {
      co_await db.execute("selec 1");
      FAIL("a syntax error passed");
    } catch (const pg::error& e) {
      CHECK(e.sqlstate() == "42601");
    }
    CHECK(co_await db.query_one<int>("select 2") == 2);
  });
}

TEST_CASE("pg: an unreachable server fails at once with errc::unavailable, not a hang")
{
  pg_server server;
  REQUIRE_POSTGRES(server);
  auto o = options_for(server);
  server.stop();
  with_db(o, [&](pg::database& db) -> task<void> {
    auto start = coronet::clock::now();
    try {
      co_await db.execute("select 1");
      FAIL("a stopped server answered");
    } catch (const pg::error& e) {
      CHECK(e.kind() == pg::errc::unavailable);
      CHECK(pg::http_status(e.kind()) == 503);
    }
    CHECK(coronet::clock::now() - start < 1s);
  });
}

TEST_CASE("pg: a session ended by pg_terminate_backend is replaced without failing the next query")
{
  pg_server server;
  REQUIRE_POSTGRES(server);
  with_db(options_for(server, 1), [&](pg::database& db) -> task<void> {
    auto pid = co_await db.query_one<int>("select pg_backend_pid()");
    server.psql("select pg_terminate_backend(" + std::to_string(*pid) + ")");
    auto again = co_await db.query_one<int>("select pg_backend_pid()");
    REQUIRE(again);
    CHECK(*again != *pid);
  });
}

TEST_CASE("pg: a statement whose session is terminated while it runs is run once more on a new one")
{
  pg_server server;
  REQUIRE_POSTGRES(server);
  with_db(options_for(server, 1), [&](pg::database& db) -> task<void> {
    auto pid = co_await db.query_one<int>("select pg_backend_pid()");
    coronet::task_group g;
    // Terminates the session once the statement runs on it (the server's
    // 57P01 reaches the client with the connection's end right behind it).
    g.spawn([](pg_server& server) -> task<void> {
      co_await coronet::spawn_blocking([&server] {
        const std::string running = "from pg_stat_activity where query like 'select 7 from pg_sleep%' "
                                    "and state = 'active' and pid <> pg_backend_pid()";
        while (server.psql("select count(*) " + running) != "1")
          std::this_thread::yield();
        server.psql("select pg_terminate_backend(pid) " + running);
      });
    }(server));
    auto seven = co_await db.query_one<int>("select 7 from pg_sleep(0.5)");
    co_await g.wait();
    CHECK(seven == 7);
    CHECK(co_await db.query_one<int>("select pg_backend_pid()") != pid);
  });
}

TEST_CASE("pg: when every session is busy, a call waits, bounded by its deadline")
{
  pg_server server;
  REQUIRE_POSTGRES(server);
  with_db(options_for(server, 1), [&](pg::database& db) -> task<void> {
    coronet::task_group busy;
    busy.spawn([](pg::database& db) -> task<void> {
      try {
        co_await coronet::with_timeout(db.execute("select pg_sleep(5)"), 1500ms);
      } catch (const coronet::timeout_error&) {
      }
    }(db));
    co_await coronet::sleep_for(100ms); // the sleeper has the one session
    auto start = coronet::clock::now();
    try {
      co_await coronet::with_timeout(db.execute("select 1"), 200ms);
      FAIL("a second session appeared");
    } catch (const coronet::timeout_error&) {
    }
    auto waited = coronet::clock::now() - start;
    CHECK(waited >= 150ms);
    CHECK(waited < 1s);
    // Once the sleeper gives up, its session is replaced and the pool serves again.
    co_await busy.wait();
    CHECK(co_await db.query_one<int>("select 3") == 3);
  });
}

TEST_CASE("pg: a server restarted under load: calls fail fast or succeed, none hangs, and the pool recovers")
{
  pg_server server;
  REQUIRE_POSTGRES(server);
  coronet::runtime rt{2};
  pg::database db{rt, options_for(server, 4)};
  std::atomic<int> ok = 0, failed = 0, late = 0;
  std::atomic<bool> stop = false;
  auto load = [&]() -> task<void> {
    while (!stop) {
      auto start = coronet::clock::now();
      try {
        co_await coronet::with_timeout(db.query_one<int>("select 1"), 2s);
        ++ok;
      } catch (const pg::error&) {
        ++failed;
      } catch (const coronet::timeout_error&) {
        ++late;
      }
      if (coronet::clock::now() - start > 2500ms)
        ++late;
    }
  };
  auto body = [&]() -> task<void> {
    coronet::task_group g;
    for (int i = 0; i < 8; ++i)
      g.spawn(load());
    co_await coronet::sleep_for(300ms);
    co_await rt.spawn_blocking([&] { server.restart(); });
    int before = ok;
    auto deadline = coronet::clock::now() + 10s;
    while (ok < before + 100 && coronet::clock::now() < deadline)
      co_await coronet::sleep_for(20ms);
    stop = true;
    co_await g.wait();
  };
  rt.block_on(body());
  rt.stop(); // the sessions belong to the workers: stopped before the database goes
  CHECK(ok > 100);
  CHECK(late == 0);
  MESSAGE("ok " << ok.load() << ", failed fast " << failed.load());
}

TEST_CASE("pg: the pool and its calls are in the metrics")
{
  pg_server server;
  REQUIRE_POSTGRES(server);
  // Counted from here: other tests in this process count their own errors.
  auto bad_queries = [] {
    return coronet::metrics::registry::global().counters("coronet_pg_errors_total", "", {"kind"}).with({"bad_query"}).value();
  };
  const auto before = bad_queries();
  with_db(options_for(server), [&](pg::database& db) -> task<void> {
    co_await db.execute("select 42");
    try {
      co_await db.execute("select no_such_column");
    } catch (const pg::error&) {
    }
  });
  auto text = coronet::metrics::registry::global().render();
  CHECK(text.find("coronet_pg_query_duration_seconds_count{statement=\"select 42\"} 1") != std::string::npos);
  CHECK(bad_queries() == before + 1);
  CHECK(text.find("coronet_pg_sessions{state=\"idle\"}") != std::string::npos);
}

TEST_CASE("pg: LISTEN/NOTIFY arrive on a channel, in order, under load, and again after a restart")
{
  pg_server server;
  REQUIRE_POSTGRES(server);
  with_db(options_for(server, 4), [&](pg::database& db) -> task<void> {
    auto sub = co_await db.listen("orders; drop table x"); // any text is a channel name
    // 300 notifications from 6 tasks, while the same sessions answer queries.
    coronet::task_group senders;
    for (int t = 0; t < 6; ++t)
      senders.spawn([](pg::database& db, int t) -> task<void> {
        for (int i = 0; i < 50; ++i) {
          co_await db.execute("select pg_notify($1, $2)", "orders; drop table x", std::to_string(t * 1000 + i));
          co_await db.query_one<int>("select 1");
        }
      }(db, t));
    std::vector<int> last(6, -1);
    int received = 0;
    while (received < 300) {
      auto n = co_await coronet::with_timeout(sub.notifications().receive(), 10s);
      REQUIRE(n);
      CHECK(n->channel == "orders; drop table x");
      int v = std::stoi(n->payload);
      CHECK(v % 1000 > last[static_cast<std::size_t>(v / 1000)]); // each sender's in its order
      last[static_cast<std::size_t>(v / 1000)] = v % 1000;
      ++received;
    }
    co_await senders.wait();

    co_await coronet::runtime::current()->spawn_blocking([&] { server.restart(); });
    // The subscription listens again on a new session: a notification sent
    // after that arrives (those sent before it may be lost, as PostgreSQL keeps none).
    std::optional<pg::notification> again;
    auto deadline = coronet::clock::now() + 15s;
    while (!again && coronet::clock::now() < deadline) {
      try {
        co_await db.execute("select pg_notify($1, 'after')", "orders; drop table x");
      } catch (const pg::error&) { // the pool meeting the restart
      }
      try {
        again = co_await coronet::with_timeout(sub.notifications().receive(), 300ms);
      } catch (const coronet::timeout_error&) {
      }
    }
    REQUIRE(again);
    CHECK(again->payload == "after");
  });
}

TEST_CASE("pg: TLS from the [pg] keys: verify-full against the CA, and a wrong CA refused")
{
  std::string pki = "/tmp/coronet-pg-pki-" + std::to_string(::getpid());
  REQUIRE(std::system((std::string(CORONET_SOURCE_DIR) + "/scripts/make-certs.sh " + pki + " >/dev/null").c_str()) == 0);
  pg_server server{pki + "/server.pem", pki + "/server.key"};
  REQUIRE_POSTGRES(server);
  auto o = options_for(server);
  o.session.tls_mode = "verify-full";
  o.session.tls_ca = pki + "/ca.pem";
  with_db(o, [&](pg::database& db) -> task<void> {
    CHECK(co_await db.query_one<bool>("select ssl from pg_stat_ssl where pid = pg_backend_pid()") == true);
  });
  o.session.tls_ca = pki + "/other-ca.pem";
  with_db(o, [&](pg::database& db) -> task<void> {
    try {
      co_await db.execute("select 1");
      FAIL("a server the CA did not sign was trusted");
    } catch (const pg::error& e) {
      CHECK(e.kind() == pg::errc::unavailable);
      CHECK(std::string(e.what()).find("certificate") != std::string::npos);
    }
  });
  std::filesystem::remove_all(pki);
}
