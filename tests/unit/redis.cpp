// coronet::redis against a real redis-server that each test starts for
// itself: commands, pipelines, MULTI/EXEC, deadlines, cancellation, a
// restarted or missing server, an exhausted pool, pub/sub, AUTH and TLS.
#include "support/pki.hpp"
#include "support/redis_server.hpp"

#include <coronet/config.hpp>
#include <coronet/error.hpp>
#include <coronet/metrics.hpp>
#include <coronet/redis/client.hpp>
#include <coronet/runtime.hpp>
#include <coronet/sync/task_group.hpp>
#include <coronet/time.hpp>

#include <doctest/doctest.h>

#pragma GCC diagnostic ignored "-Wmismatched-new-delete" // GCC 12 misreads Asio's frame allocator

#include <atomic>
#include <string>
#include <vector>

namespace redis = coronet::redis;
using coronet::task;
using coronet::test::redis_server;
using namespace std::chrono_literals;

namespace {

redis::options options_for(const redis_server& server, std::size_t pool_size = 4)
{
  redis::options o;
  redis::options::parse_url(server.url(), o);
  o.pool_size = pool_size;
  return o;
}

// Runs `body` on a one-worker runtime, with a client made and destroyed on
// its worker.
template <class Body>
void with_client(redis::options o, Body body)
{
  coronet::runtime rt{1};
  rt.block_on([](coronet::runtime& rt, redis::options o, Body& body) -> task<void> {
    redis::client c{rt, std::move(o)};
    co_await body(c);
  }(rt, std::move(o), body));
}

#define REQUIRE_REDIS(server)                                                                                          \
  if (!(server).available()) {                                                                                         \
    MESSAGE((server).why());                                                                                           \
    return;                                                                                                            \
  }

template <class F>
task<redis::errc> kind_of_failure(F call)
{
  try {
    co_await call();
  } catch (const redis::error& e) {
    co_return e.kind();
  }
  FAIL("the call did not fail");
  co_return redis::errc::protocol;
}

} // namespace

TEST_CASE("redis: a URL names host, port, user, password, database and TLS; a bad one says what is wrong")
{
  redis::options o;
  redis::options::parse_url("rediss://app:s3cret@cache.internal:6380/2", o);
  CHECK(o.tls);
  CHECK(o.host == "cache.internal");
  CHECK(o.port == 6380);
  CHECK(o.user == "app");
  CHECK(o.password == "s3cret");
  CHECK(o.db == 2);
  redis::options p;
  redis::options::parse_url("redis://:pw@[::1]", p);
  CHECK(p.host == "::1");
  CHECK(p.port == 6379);
  CHECK(p.user.empty());
  CHECK(p.password == "pw");
  CHECK_THROWS_WITH_AS(redis::options::parse_url("http://localhost", p), doctest::Contains("not a redis://"),
    coronet::config_error);
  CHECK_THROWS_WITH_AS(redis::options::parse_url("redis://localhost:99999", p), doctest::Contains("port"),
    coronet::config_error);
  CHECK_THROWS_WITH_AS(redis::options::parse_url("redis://localhost/x", p), doctest::Contains("database"),
    coronet::config_error);
}

TEST_CASE("redis: strings with every byte, huge values, integers, arrays and nil come back as they were")
{
  redis_server server;
  REQUIRE_REDIS(server);
  with_client(options_for(server), [](redis::client& r) -> task<void> {
    std::string bytes;
    for (int b = 0; b < 256; ++b)
      bytes += static_cast<char>(b);
    bytes += "\r\n*1\r\n$4\r\nPING\r\n"; // RESP inside a value is only bytes
    co_await r.set("every byte", bytes);
    CHECK(co_await r.get("every byte") == bytes);
    CHECK(co_await r.get("no such key") == std::nullopt);

    std::string huge(16 * 1024 * 1024, 'x');
    for (std::size_t i = 0; i < huge.size(); i += 4093)
      huge[i] = static_cast<char>('a' + i % 26);
    co_await r.set("huge", huge);
    CHECK(co_await r.get("huge") == huge);

    CHECK((co_await r.command("INCRBY", "n", 41)).integer == 41);
    CHECK((co_await r.command("INCR", "n")).as_integer() == 42);
    CHECK((co_await r.command("GET", "n")).as_integer() == 42);
    co_await r.command("RPUSH", "list", "a", "", "c");
    auto list = co_await r.command("LRANGE", "list", 0, -1);
    REQUIRE(list.type == redis::reply::kind::array);
    REQUIRE(list.elements.size() == 3);
    CHECK(list.elements[1].text.empty());
    CHECK(list.elements[2].text == "c");
    CHECK(co_await r.del("list") == 1);
    co_await r.set("ttl", "v", 50ms);
    CHECK((co_await r.command("PTTL", "ttl")).integer > 0);
  });
}

TEST_CASE("redis: an error reply is a redis::error naming the command and Redis's message")
{
  redis_server server;
  REQUIRE_REDIS(server);
  with_client(options_for(server), [](redis::client& r) -> task<void> {
    co_await r.set("word", "hello");
    try {
      co_await r.command("INCR", "word");
      FAIL("INCR of a word");
    } catch (const redis::error& e) {
      CHECK(e.kind() == redis::errc::server);
      CHECK(std::string(e.what()).find("INCR") != std::string::npos);
      CHECK(std::string(e.what()).find("not an integer") != std::string::npos);
    }
    CHECK(co_await r.get("word") == "hello"); // the connection is still in step
  });
}

TEST_CASE("redis: a pipeline is one round trip; an error reply among them leaves the others")
{
  redis_server server;
  REQUIRE_REDIS(server);
  with_client(options_for(server, 1), [](redis::client& r) -> task<void> {
    std::vector<redis::command> batch;
    for (int i = 0; i < 1000; ++i)
      batch.emplace_back("INCR", "counter");
    batch.emplace_back("HGET", "counter", "field"); // WRONGTYPE
    batch.emplace_back("GET", "counter");
    auto replies = co_await r.pipeline(std::move(batch));
    REQUIRE(replies.size() == 1002);
    for (int i = 0; i < 1000; ++i)
      CHECK(replies[static_cast<std::size_t>(i)].integer == i + 1);
    CHECK(replies[1000].is_error());
    CHECK(replies[1000].text.find("WRONGTYPE") == 0);
    CHECK(replies[1001].as_string() == "1000");
  });
}

TEST_CASE("redis: MULTI/EXEC runs all or, when Redis refuses one command, none")
{
  redis_server server;
  REQUIRE_REDIS(server);
  with_client(options_for(server), [](redis::client& r) -> task<void> {
    std::vector<redis::command> tx;
    tx.emplace_back("SET", "balance", 100);
    tx.emplace_back("DECRBY", "balance", 30);
    tx.emplace_back("LPUSH", "balance", "x"); // runs, and fails: WRONGTYPE, the others stand
    auto replies = co_await r.transaction(std::move(tx));
    REQUIRE(replies.size() == 3);
    CHECK(replies[1].integer == 70);
    CHECK(replies[2].is_error());

    std::vector<redis::command> refused;
    refused.emplace_back("SET", "balance", 0);
    refused.emplace_back("NO-SUCH-COMMAND", "x");
    try {
      co_await r.transaction(std::move(refused));
      FAIL("EXEC of a transaction with an unknown command");
    } catch (const redis::error& e) {
      CHECK(e.kind() == redis::errc::server);
      CHECK(std::string(e.what()).find("NO-SUCH-COMMAND refused") != std::string::npos);
    }
    CHECK(co_await r.get("balance") == "70"); // nothing of it ran
  });
}

TEST_CASE("redis: a call past redis.command_timeout_ms or cancelled fails, and the next call is not confused")
{
  redis_server server;
  REQUIRE_REDIS(server);
  auto o = options_for(server, 1);
  o.command_timeout = 200ms;
  with_client(o, [](redis::client& r) -> task<void> {
    auto start = coronet::clock::now();
    auto kind = co_await kind_of_failure([&] { return r.command("BLPOP", "empty", 5); });
    CHECK(kind == redis::errc::timeout);
    CHECK(coronet::clock::now() - start < 2s);
    // The blocked connection was dropped: its late reply goes to nobody.
    co_await r.set("k", "v");
    CHECK(co_await r.get("k") == "v");

    try {
      co_await coronet::with_timeout(r.command("BLPOP", "empty", 5), 50ms);
      FAIL("BLPOP outlived its caller's deadline");
    } catch (const coronet::timeout_error&) {
    }
    co_await r.command("RPUSH", "empty", "late"); // the cancelled BLPOP must not take it
    CHECK((co_await r.command("LPOP", "empty")).as_string() == "late");
  });
}

TEST_CASE("redis: no server is errc::unavailable at once, and the pool waits for a connection until its deadline")
{
  redis::options nowhere;
  redis::options::parse_url("redis://127.0.0.1:1", nowhere);
  with_client(nowhere, [](redis::client& r) -> task<void> {
    auto start = coronet::clock::now();
    CHECK(co_await kind_of_failure([&] { return r.get("k"); }) == redis::errc::unavailable);
    CHECK(coronet::clock::now() - start < 1s);
  });

  redis_server server;
  REQUIRE_REDIS(server);
  with_client(options_for(server, 1), [](redis::client& r) -> task<void> {
    coronet::task_group g;
    g.spawn([](redis::client& r) -> task<void> {
      co_await r.command("BLPOP", "q", 1); // holds the only connection for a second
    }(r));
    co_await coronet::sleep_for(20ms);
    auto start = coronet::clock::now();
    try {
      co_await coronet::with_timeout(r.get("k"), 200ms);
      FAIL("a call got a connection of an exhausted pool");
    } catch (const coronet::timeout_error&) {
    }
    CHECK(coronet::clock::now() - start < 900ms);
    co_await g.wait();
    CHECK(co_await r.get("k") == std::nullopt); // the connection given back serves the next
  });
}

TEST_CASE("redis: a server restarted under load: calls fail fast or succeed, none hangs, and the pool recovers")
{
  redis_server server;
  REQUIRE_REDIS(server);
  coronet::runtime rt{2};
  redis::client r{rt, options_for(server, 4)};
  std::atomic<int> ok = 0, failed = 0, late = 0;
  std::atomic<bool> stop = false;
  auto load = [&](int n) -> task<void> {
    while (!stop) {
      auto start = coronet::clock::now();
      try {
        co_await r.set("key" + std::to_string(n), "v");
        ++ok;
      } catch (const redis::error&) {
        ++failed;
      }
      if (coronet::clock::now() - start > 2500ms)
        ++late;
    }
  };
  auto body = [&]() -> task<void> {
    coronet::task_group g;
    for (int i = 0; i < 8; ++i)
      g.spawn(load(i));
    co_await coronet::sleep_for(200ms);
    co_await rt.spawn_blocking([&] { server.restart(); });
    int before = ok;
    auto deadline = coronet::clock::now() + 10s;
    while (ok < before + 200 && coronet::clock::now() < deadline)
      co_await coronet::sleep_for(20ms);
    stop = true;
    co_await g.wait();
  };
  rt.block_on(body());
  rt.stop(); // the connections belong to the workers: stopped before the client goes
  CHECK(ok > 200);
  CHECK(late == 0);
  MESSAGE("ok " << ok.load() << ", failed fast " << failed.load());
}

TEST_CASE("redis: pub/sub delivers every message in order under load, patterns too, and again after a restart")
{
  redis_server server;
  REQUIRE_REDIS(server);
  with_client(options_for(server), [&](redis::client& r) -> task<void> {
    std::vector<std::string> channels{"orders", "other"}, patterns{"order*"}; // locals: GCC 12 and braced lists in co_await
    auto sub = co_await r.subscribe(std::move(channels));
    auto pattern = co_await r.psubscribe(std::move(patterns));
    coronet::task_group senders;
    for (int t = 0; t < 4; ++t)
      senders.spawn([](redis::client& r, int t) -> task<void> {
        for (int i = 0; i < 250; ++i) {
          co_await r.publish("orders", std::to_string(t * 1000 + i));
          co_await r.set("busy", "yes"); // other calls on the same pool meanwhile
        }
      }(r, t));
    std::vector<int> last(4, -1);
    for (int received = 0; received < 1000; ++received) {
      auto m = co_await coronet::with_timeout(sub.messages().receive(), 10s);
      REQUIRE(m);
      CHECK(m->channel == "orders");
      int v = std::stoi(m->payload);
      CHECK(v % 1000 > last[static_cast<std::size_t>(v / 1000)]); // each sender's in its order
      last[static_cast<std::size_t>(v / 1000)] = v % 1000;
    }
    auto p = co_await coronet::with_timeout(pattern.messages().receive(), 10s);
    REQUIRE(p);
    CHECK(p->pattern == "order*");
    CHECK(p->channel == "orders");
    co_await senders.wait();

    co_await coronet::runtime::current()->spawn_blocking([&] { server.restart(); });
    std::optional<redis::message> again;
    auto deadline = coronet::clock::now() + 15s;
    while (!again && coronet::clock::now() < deadline) {
      try {
        co_await r.publish("other", "after");
      } catch (const redis::error&) { // the pool meeting the restart
      }
      try {
        again = co_await coronet::with_timeout(sub.messages().receive(), 300ms);
        if (again && again->channel != "other")
          again.reset(); // one of the 1000 left over
      } catch (const coronet::timeout_error&) {
      }
    }
    REQUIRE(again);
    CHECK(again->payload == "after");
  });
}

TEST_CASE("redis: AUTH and SELECT from the URL, and a wrong password is errc::unavailable saying AUTH")
{
  redis_server server{{"--requirepass", "s3cret"}};
  REQUIRE_REDIS(server);
  auto o = options_for(server);
  redis::options::parse_url("redis://:s3cret@127.0.0.1:" + std::to_string(server.port()) + "/3", o);
  with_client(o, [](redis::client& r) -> task<void> {
    co_await r.set("k", "in db 3");
    CHECK((co_await r.command("CLIENT", "INFO")).text.find("db=3") != std::string::npos);
  });
  redis::options::parse_url("redis://:wrong@127.0.0.1:" + std::to_string(server.port()), o);
  with_client(o, [](redis::client& r) -> task<void> {
    try {
      co_await r.get("k");
      FAIL("a wrong password was taken");
    } catch (const redis::error& e) {
      CHECK(e.kind() == redis::errc::unavailable);
      CHECK(std::string(e.what()).find("AUTH") != std::string::npos);
    }
  });
}

TEST_CASE("redis: rediss:// verifies the server against redis.tls_ca, and a wrong CA is refused")
{
  using coronet::test::pki;
  redis_server::tls_files files{pki("server.pem"), pki("server.key"), pki("ca.pem")};
  redis_server server{{}, &files};
  REQUIRE_REDIS(server);
  auto o = options_for(server);
  o.host = "localhost";
  o.tls_ca = pki("ca.pem");
  with_client(o, [](redis::client& r) -> task<void> {
    co_await r.set("k", "over TLS");
    CHECK(co_await r.get("k") == "over TLS");
  });
  o.tls_ca = pki("other-ca.pem");
  with_client(o, [](redis::client& r) -> task<void> {
    try {
      co_await r.get("k");
      FAIL("a server signed by another CA was trusted");
    } catch (const redis::error& e) {
      CHECK(e.kind() == redis::errc::unavailable);
      CHECK(std::string(e.what()).find("certificate") != std::string::npos);
    }
  });
}

TEST_CASE("redis: the pool and its calls are in the metrics")
{
  redis_server server;
  REQUIRE_REDIS(server);
  with_client(options_for(server), [](redis::client& r) -> task<void> {
    co_await r.command("ECHO", "hi");
    try {
      co_await r.command("NO-SUCH-COMMAND");
    } catch (const redis::error&) {
    }
  });
  auto text = coronet::metrics::registry::global().render();
  CHECK(text.find("coronet_redis_command_duration_seconds_count{command=\"ECHO\"} 1") != std::string::npos);
  CHECK(text.find("coronet_redis_errors_total{kind=\"server\"}") != std::string::npos);
  CHECK(text.find("coronet_redis_connections{state=\"idle\"}") != std::string::npos);
}
