// coronet-backend's write routes, on its in-memory store and (when built
// with coronet::pg and coronet::redis) on PostgreSQL with a Redis cache,
// both servers started by the test.
#include "support/process.hpp"
#include "support/raw_http.hpp"
#ifdef CORONET_TEST_BACKEND_DATABASE
#include "support/pg_server.hpp"
#include "support/redis_server.hpp"
#endif

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>
#include <zlib.h>
#include <zstd.h>

#include <string>
#include <vector>

using coronet::test::app;
using coronet::test::get;
using coronet::test::send;
using json = nlohmann::json;

namespace {

const std::string json_type = "Content-Type: application/json\r\n";

std::string gzip(const std::string& in)
{
  z_stream z{};
  REQUIRE(deflateInit2(&z, 6, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY) == Z_OK);
  std::string out(deflateBound(&z, in.size()) + 32, '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  z.avail_in = static_cast<uInt>(in.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  REQUIRE(deflate(&z, Z_FINISH) == Z_STREAM_END);
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

std::string zstd(const std::string& in)
{
  std::string out(ZSTD_compressBound(in.size()), '\0');
  auto n = ZSTD_compress(out.data(), out.size(), in.data(), in.size(), 3);
  REQUIRE(!ZSTD_isError(n));
  out.resize(n);
  return out;
}

// What a users and an orders backend on one store must both do.
void check_writes(unsigned short users, unsigned short orders)
{
  auto made = send(users, "POST", "/users", json_type, R"({"name":"Ada","email":"ada@example.org"})");
  REQUIRE(made.status == 201);
  auto id = made.doc()["id"].get<std::int64_t>();
  CHECK(made.has("Location: /users/" + std::to_string(id) + "\r\n"));
  CHECK(get(users, "/users/" + std::to_string(id)).doc()["name"] == "Ada");

  CHECK(send(users, "POST", "/users", json_type, R"({"name":"Eve","email":"ada@example.org"})").status == 409);
  CHECK(send(users, "POST", "/users", json_type, R"({"name":"Eve","email":"user7@example.com"})").status == 409);
  CHECK(send(users, "POST", "/users", "Content-Type: text/plain\r\n", R"({"name":"E","email":"e@x"})").status ==
    415);
  auto malformed = send(users, "POST", "/users", json_type, R"({"name":"E",)");
  CHECK(malformed.status == 400);
  CHECK(malformed.body.find("malformed JSON") != std::string::npos);
  auto missing = send(users, "POST", "/users", json_type, R"({"name":"E"})");
  CHECK(missing.status == 400);
  CHECK(missing.body.find("email") != std::string::npos);
  CHECK(send(users, "POST", "/users", json_type, R"({"name":7,"email":"e@x"})").status == 400);

  // A change, cached reads see it at once.
  CHECK(get(users, "/users/7").doc()["name"] == "User 7");
  auto changed = send(users, "PUT", "/users/7", json_type, R"({"name":"Grace"})");
  REQUIRE(changed.status == 200);
  CHECK(changed.doc()["email"] == "user7@example.com");
  CHECK(get(users, "/users/7").doc()["name"] == "Grace");
  CHECK(send(users, "PATCH", "/users/7", json_type, R"({"email":"ada@example.org"})").status == 409);
  CHECK(send(users, "PUT", "/users/999999999", json_type, R"({"name":"Nobody"})").status == 404);

  // Compressed bodies, gzip and zstd.
  auto gz = send(users, "POST", "/users", json_type + "Content-Encoding: gzip\r\n",
    gzip(R"({"name":"Zip","email":"zip@example.org"})"));
  CHECK(gz.status == 201);
  auto zs = send(users, "POST", "/users", json_type + "Content-Encoding: zstd\r\n",
    zstd(R"({"name":"Zst","email":"zst@example.org"})"));
  CHECK(zs.status == 201);

  auto before = get(orders, "/orders?user=" + std::to_string(id)).doc()["orders"].size();
  auto order = send(orders, "POST", "/orders", json_type, "{\"user\":" + std::to_string(id) + ",\"total\":12.5}");
  REQUIRE(order.status == 201);
  CHECK(order.doc()["total"] == 12.5);
  auto list = get(orders, "/orders?user=" + std::to_string(id)).doc()["orders"];
  REQUIRE(list.size() == before + 1);
  CHECK(list.back()["id"] == order.doc()["id"]);
  CHECK(send(orders, "POST", "/orders", json_type, R"({"user":999999999,"total":1})").status == 409);
  CHECK(send(orders, "POST", "/orders", json_type, R"({"user":7,"total":-1})").status == 400);
}

} // namespace

TEST_CASE("backend: writes on the memory store: 201, 400 naming the problem, 415, 409, 404, gzip and zstd bodies")
{
  // One store per process: a users backend checks its own writes, and an
  // order needs a user its orders backend knows (the made-up ones).
  app users{"coronet-backend", {"--role", "users"}};
  app orders{"coronet-backend", {"--role", "orders"}};
  REQUIRE(users.port != 0);
  REQUIRE(orders.port != 0);
  auto made = send(users.port, "POST", "/users", json_type, R"({"name":"Ada","email":"ada@example.org"})");
  REQUIRE(made.status == 201);
  CHECK(made.doc()["id"].get<std::int64_t>() > 1000000);
  CHECK(send(users.port, "POST", "/users", json_type, R"({"name":"Eve","email":"user7@example.com"})").status ==
    409);
  CHECK(send(users.port, "PUT", "/users/7", json_type, R"({"name":"Grace"})").doc()["name"] == "Grace");
  CHECK(get(users.port, "/users/7").doc()["name"] == "Grace");
  auto order = send(orders.port, "POST", "/orders", json_type, R"({"user":7,"total":3.25})");
  REQUIRE(order.status == 201);
  CHECK(get(orders.port, "/orders?user=7").doc()["orders"].back()["id"] == order.doc()["id"]);
  CHECK(send(orders.port, "POST", "/orders", json_type, R"({"user":2000000,"total":1})").status == 409);
  CHECK(send(users.port, "POST", "/users", "Content-Type: text/plain\r\n", "{}").status == 415);
  CHECK(send(users.port, "POST", "/users", json_type + "Content-Encoding: gzip\r\n",
    gzip(R"({"name":"Zip","email":"zip@example.org"})")).status == 201);
}

#ifdef CORONET_TEST_BACKEND_DATABASE
TEST_CASE("backend: on PostgreSQL with a Redis cache: writes, cached reads that see them, 503 without the database")
{
  coronet::test::pg_server pg;
  if (!pg.available()) {
    MESSAGE(pg.why());
    return;
  }
  coronet::test::redis_server cache;
  if (!cache.available()) {
    MESSAGE(cache.why());
    return;
  }
  std::vector<std::string> db{"--set", "backend.store=" + pg.url(), "--set", "backend.cache=" + cache.url(), "--set",
    "backend.seed_users=100"};
  auto flags = [&](const char* role) {
    auto f = db;
    f.insert(f.end(), {"--role", role});
    return f;
  };
  app users{"coronet-backend", flags("users")};
  app orders{"coronet-backend", flags("orders")};
  REQUIRE(users.port != 0);
  REQUIRE(orders.port != 0);
  CHECK(pg.psql("select count(*) from users") != "0");
  check_writes(users.port, orders.port);
  CHECK(pg.psql("select name from users where id = 7") == "Grace");

  // The cache gone: reads and writes still work, from the database.
  cache.stop();
  CHECK(get(users.port, "/users/7").doc()["name"] == "Grace");
  CHECK(send(users.port, "PUT", "/users/7", json_type, R"({"name":"Hopper"})").status == 200);
  CHECK(get(users.port, "/users/7").doc()["name"] == "Hopper");

  // The database gone: 503 at once, and the backend stays up.
  pg.stop();
  auto down = get(users.port, "/users/8");
  CHECK(down.status == 503);
  CHECK(down.body.find("database") != std::string::npos);
  CHECK(down.body.find("127.0.0.1") == std::string::npos); // no address told to the client
  CHECK(get(users.port, "/healthz").status == 200);
}
#endif
