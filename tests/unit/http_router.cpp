// Routing and the middleware chain, driven directly (no sockets).
#include <coronet/error.hpp>
#include <coronet/client/client.hpp>
#include <coronet/http/error.hpp>
#include <coronet/http/middleware.hpp>
#include <coronet/http/router.hpp>
#include <coronet/runtime.hpp>

#include <doctest/doctest.h>

#include <stdexcept>
#include <string>
#include <vector>

namespace http = coronet::http;
using coronet::task;

namespace {

http::request make(std::string method, std::string path)
{
  http::request r;
  r.method = std::move(method);
  r.target = path;
  r.path = std::move(path);
  return r;
}

task<http::response> say(std::string text)
{
  co_return http::response::text(http::status::ok, std::move(text));
}

http::handler saying(const char* text)
{
  return [text](http::request&) { return say(text); };
}

task<http::response> handle(const http::router& r, http::request req, http::request* out)
{
  auto resp = co_await r.handle(req);
  if (out)
    *out = req;
  co_return resp;
}

http::response run(const http::router& r, http::request req, http::request* out = nullptr)
{
  coronet::runtime rt{1};
  return rt.block_on(handle(r, std::move(req), out));
}

} // namespace

TEST_CASE("router: static, {param} and wildcard routes, params decoded and the pattern kept")
{
  http::router r;
  r.get("/", saying("root"));
  r.get("/users/{id}", saying("user"));
  r.get("/users/{id}/orders/{order}", saying("order"));
  r.get("/static/*", saying("static"));
  r.get("/users/me", saying("never: the {id} route comes first"));

  http::request seen;
  CHECK(run(r, make("GET", "/"), &seen).body == "root");
  CHECK(seen.route == "/");
  CHECK(run(r, make("GET", "/users/7"), &seen).body == "user");
  CHECK(seen.param("id") == "7");
  CHECK(seen.route == "/users/{id}");
  CHECK(run(r, make("GET", "/users/7/orders/9"), &seen).body == "order");
  CHECK(seen.param("id") == "7");
  CHECK(seen.param("order") == "9");
  CHECK(run(r, make("GET", "/static/css/site.css")).body == "static");
  CHECK(run(r, make("GET", "/static")).body == "static");
  CHECK(run(r, make("GET", "//users//7/")).body == "user"); // empty segments do not count
  CHECK(run(r, make("GET", "/users")).status == http::status::not_found);
  CHECK(run(r, make("GET", "/users/7/extra")).status == http::status::not_found);
  CHECK(run(r, make("GET", "/nowhere"), &seen).status == http::status::not_found);
  CHECK(seen.route.empty());
}

TEST_CASE("router: 405 names every allowed method, HEAD is served by GET")
{
  http::router r;
  r.get("/items", saying("list"));
  r.post("/items", saying("created"));
  r.del("/items/{id}", saying("deleted"));

  auto resp = run(r, make("PUT", "/items"));
  CHECK(resp.status == http::status::method_not_allowed);
  CHECK(resp.headers.get("Allow") == "GET, POST");
  CHECK(run(r, make("HEAD", "/items")).status == http::status::ok);
  CHECK(run(r, make("DELETE", "/items/3")).body == "deleted");
}

TEST_CASE("router: bad patterns are refused when added")
{
  http::router r;
  CHECK_THROWS_AS(r.get("users", saying("x")), std::invalid_argument);
  CHECK_THROWS_AS(r.get("/a/*/b", saying("x")), std::invalid_argument);
}

namespace {

// Records its name before and after the rest of the chain.
http::middleware tracing(std::vector<std::string>& trace, std::string name)
{
  return [&trace, name](http::request& req, http::next rest) -> task<http::response> {
    trace.push_back(name + ">");
    auto resp = co_await rest(req);
    trace.push_back("<" + name);
    resp.headers.add("X-Seen-By", name);
    co_return resp;
  };
}

task<http::response> refuse(http::request& req, http::next rest)
{
  if (!req.header("Authorization"))
    co_return http::response::text(http::status::unauthorized, "who are you?\n");
  co_return co_await rest(req);
}

task<http::response> throws_http_error(http::request&)
{
  throw http::error{http::status::conflict, "taken"};
  co_return http::response{};
}

// Like pg::error: an error from below HTTP that knows its status, and says
// less to the client than to the log.
class store_down final : public coronet::status_error {
public:
  store_down() : status_error(503, "connect to 10.0.0.7:5432 refused") {}
  std::string client_message() const override { return "the store is out of reach"; }
};

task<http::response> throws_status_error(http::request&)
{
  throw store_down{};
  co_return http::response{};
}

task<http::response> throws_other(http::request&)
{
  throw std::runtime_error("boom");
  co_return http::response{};
}

} // namespace

TEST_CASE("middleware: runs in the order added, around the handler, for unmatched paths too")
{
  std::vector<std::string> trace;
  http::router r;
  r.use(tracing(trace, "outer"));
  r.use(tracing(trace, "inner"));
  r.get("/x", [&trace](http::request&) {
    trace.push_back("handler");
    return say("x");
  });

  auto resp = run(r, make("GET", "/x"));
  CHECK(trace == std::vector<std::string>{"outer>", "inner>", "handler", "<inner", "<outer"});
  CHECK(resp.headers.count("X-Seen-By") == 2);

  trace.clear();
  CHECK(run(r, make("GET", "/missing")).status == http::status::not_found);
  CHECK(trace == std::vector<std::string>{"outer>", "inner>", "<inner", "<outer"});
}

TEST_CASE("middleware: can answer early without calling the handler")
{
  bool called = false;
  http::router r;
  r.use(refuse);
  r.get("/secret", [&called](http::request&) {
    called = true;
    return say("secret");
  });
  CHECK(run(r, make("GET", "/secret")).status == http::status::unauthorized);
  CHECK_FALSE(called);
  auto req = make("GET", "/secret");
  req.headers.add("Authorization", "Bearer x");
  CHECK(run(r, std::move(req)).body == "secret");
  CHECK(called);
}

TEST_CASE("middleware: a handler's exception is a response the outer middleware sees")
{
  std::vector<std::string> trace;
  http::router r;
  r.use(tracing(trace, "log"));
  r.get("/conflict", throws_http_error);
  r.get("/boom", throws_other);
  r.get("/down", throws_status_error);

  auto conflict = run(r, make("GET", "/conflict"));
  CHECK(conflict.status == http::status::conflict);
  CHECK(conflict.body == "taken\n");
  CHECK(conflict.headers.get("X-Seen-By") == "log");
  auto boom = run(r, make("GET", "/boom"));
  CHECK(boom.status == http::status::internal_server_error);
  CHECK(boom.headers.get("X-Seen-By") == "log");
  auto down = run(r, make("GET", "/down"));
  CHECK(down.status == http::status::service_unavailable);
  CHECK(down.body == "Service Unavailable: the store is out of reach\n"); // not the address
}

TEST_CASE("request_ids: keeps a sane incoming id, replaces a hostile one, echoes it")
{
  http::router r;
  r.use(http::request_ids());
  r.get("/x", saying("x"));

  auto given = make("GET", "/x");
  given.headers.add("X-Request-Id", "abc-123");
  http::request seen;
  auto resp = run(r, std::move(given), &seen);
  CHECK(seen.id == "abc-123");
  CHECK(resp.headers.get("X-Request-Id") == "abc-123");

  auto hostile = make("GET", "/x");
  hostile.headers.add("X-Request-Id", "evil\nline");
  resp = run(r, std::move(hostile), &seen);
  CHECK(seen.id.size() == 16);
  CHECK(seen.id.find_first_not_of("0123456789abcdef") == std::string::npos);
  CHECK(resp.headers.get("X-Request-Id") == seen.id);

  auto first = run(r, make("GET", "/x"));
  auto second = run(r, make("GET", "/x"));
  CHECK(first.headers.get("X-Request-Id") != second.headers.get("X-Request-Id"));
}

TEST_CASE("request_ids: a valid W3C traceparent is kept, another starts a trace, calls join it as new spans")
{
  http::router r;
  r.use(http::request_ids());
  r.get("/x", saying("x"));
  const std::string incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
  auto traced = make("GET", "/x");
  traced.headers.add("traceparent", incoming);
  http::request seen;
  run(r, std::move(traced), &seen);
  CHECK(seen.traceparent == incoming);

  for (auto bad : {"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", // unknown version
         "00-00000000000000000000000000000000-00f067aa0ba902b7-01",          // zero trace id
         "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",          // upper case
         "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\nx"}) {   // junk after
    CAPTURE(bad);
    auto req = make("GET", "/x");
    req.headers.add("traceparent", bad);
    run(r, std::move(req), &seen);
    CHECK(seen.traceparent.size() == 55);
    CHECK(seen.traceparent != bad);
    CHECK(seen.traceparent.substr(0, 3) == "00-");
  }

  // what a handler's calls carry: the deadline, the id, the trace with a new span
  http::request req = make("GET", "/x");
  req.id = "abc";
  req.traceparent = incoming;
  req.deadline = coronet::clock::now() + std::chrono::seconds(1);
  auto o = http::call_options(req);
  CHECK(o.deadline == req.deadline);
  CHECK(o.headers.get("X-Request-Id") == "abc");
  auto child = std::string(*o.headers.get("traceparent"));
  CHECK(child.substr(0, 36) == incoming.substr(0, 36)); // same version and trace id
  CHECK(child.substr(36, 16) != incoming.substr(36, 16)); // a new span
  CHECK(child.substr(52) == "-01");
  CHECK_FALSE(http::call_options(make("GET", "/x")).deadline.has_value());
}

TEST_CASE("positive_integer: an id from a route or query parameter, or a 400 that names it")
{
  CHECK(http::positive_integer(std::optional<std::string_view>{"42"}, "user id") == 42);
  CHECK(http::positive_integer(std::optional<std::string>{"9223372036854775807"}, "user") == INT64_MAX);
  for (const char* bad : {"", "0", "-3", "7x", " 7", "+7", "1.5", "99999999999999999999"}) {
    CAPTURE(bad);
    try {
      http::positive_integer(std::optional<std::string_view>{bad}, "user id");
      FAIL("accepted");
    } catch (const http::error& e) {
      CHECK(e.status() == http::status::bad_request);
      CHECK(std::string(e.what()) == "user id must be a positive integer");
    }
  }
  CHECK_THROWS_AS(http::positive_integer(std::optional<std::string>{}, "user"), http::error);
}
