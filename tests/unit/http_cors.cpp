// The CORS middleware, driven through a router (no sockets): preflights
// answered without the handler, allowed and refused origins, methods and
// headers, credentials, Vary, and its config keys.
#include <coronet/app/app.hpp>
#include <coronet/config.hpp>
#include <coronet/error.hpp>
#include <coronet/middleware/cors.hpp>
#include <coronet/runtime.hpp>

#include <doctest/doctest.h>

#include <string>
#include <utility>
#include <vector>

namespace http = coronet::http;
using coronet::task;

namespace {

struct fixture {
  explicit fixture(http::cors_options o)
  {
    routes.use(http::cors(std::move(o)));
    routes.get("/api/items", [this](http::request&) -> task<http::response> {
      ++handled;
      auto r = http::response::json(http::status::ok, "[]");
      r.headers.add("X-Total", "0");
      co_return r;
    });
    routes.post("/api/items", [this](http::request&) -> task<http::response> {
      ++handled;
      auto r = http::response::json(http::status::created, "{}");
      r.headers.add("Vary", "Accept-Encoding");
      co_return r;
    });
  }

  http::response send(std::string method, std::vector<std::pair<std::string, std::string>> headers)
  {
    http::request req;
    req.method = std::move(method);
    req.target = req.path = "/api/items";
    for (auto& [k, v] : headers)
      req.headers.add(k, v);
    coronet::runtime rt{1};
    return rt.block_on([](const http::router& r, http::request req) -> task<http::response> {
      co_return co_await r.handle(req);
    }(routes, std::move(req)));
  }

  http::router routes;
  int handled = 0;
};

http::cors_options app_origin()
{
  http::cors_options o;
  o.allowed_origins = {"https://app.example.com"};
  o.allowed_headers = {"Content-Type", "Authorization"};
  o.exposed_headers = {"X-Total"};
  return o;
}

} // namespace

TEST_CASE("cors: an allowed preflight is answered 204 without reaching the handler")
{
  fixture f{app_origin()};
  auto r = f.send("OPTIONS", {{"Origin", "https://app.example.com"}, {"Access-Control-Request-Method", "POST"},
                                {"Access-Control-Request-Headers", "content-type, authorization"}});
  CHECK(r.status == http::status::no_content);
  CHECK(f.handled == 0);
  CHECK(r.headers.get("Access-Control-Allow-Origin") == "https://app.example.com");
  CHECK(r.headers.get("Access-Control-Allow-Methods") == "GET, HEAD, POST, PUT, PATCH, DELETE");
  CHECK(r.headers.get("Access-Control-Allow-Headers") == "content-type, authorization");
  CHECK(r.headers.get("Access-Control-Max-Age") == "600");
  CHECK(r.headers.get("Vary")->find("Origin") != std::string_view::npos);
  CHECK_FALSE(r.headers.contains("Access-Control-Allow-Credentials"));
}

TEST_CASE("cors: refused preflights say what is not allowed")
{
  fixture f{app_origin()};
  auto origin = f.send("OPTIONS", {{"Origin", "https://evil.example"}, {"Access-Control-Request-Method", "GET"}});
  CHECK(origin.status == http::status::forbidden);
  CHECK(origin.body == "CORS: origin https://evil.example is not allowed\n");
  CHECK_FALSE(origin.headers.contains("Access-Control-Allow-Origin"));
  auto method = f.send("OPTIONS", {{"Origin", "https://app.example.com"}, {"Access-Control-Request-Method", "TRACE"}});
  CHECK(method.status == http::status::forbidden);
  CHECK(method.body == "CORS: method TRACE is not allowed\n");
  auto header = f.send("OPTIONS", {{"Origin", "https://app.example.com"}, {"Access-Control-Request-Method", "GET"},
                                     {"Access-Control-Request-Headers", "X-Secret"}});
  CHECK(header.status == http::status::forbidden);
  CHECK(header.body == "CORS: request header X-Secret is not allowed\n");
  CHECK(f.handled == 0);
}

TEST_CASE("cors: requests from an allowed origin get the headers, others are served without them")
{
  fixture f{app_origin()};
  auto allowed = f.send("GET", {{"Origin", "https://app.example.com"}});
  CHECK(allowed.status == http::status::ok);
  CHECK(allowed.headers.get("Access-Control-Allow-Origin") == "https://app.example.com");
  CHECK(allowed.headers.get("Access-Control-Expose-Headers") == "X-Total");
  CHECK(allowed.headers.get("Vary") == "Origin");
  auto other = f.send("GET", {{"Origin", "https://evil.example"}});
  CHECK(other.status == http::status::ok); // the browser withholds it from the page
  CHECK_FALSE(other.headers.contains("Access-Control-Allow-Origin"));
  CHECK(other.headers.get("Vary") == "Origin");
  auto same_origin = f.send("GET", {});
  CHECK_FALSE(same_origin.headers.contains("Access-Control-Allow-Origin"));
  CHECK_FALSE(same_origin.headers.contains("Vary"));
  // an existing Vary is extended, not replaced
  auto posted = f.send("POST", {{"Origin", "https://app.example.com"}});
  CHECK(posted.headers.get("Vary") == "Accept-Encoding, Origin");
  CHECK(f.handled == 4);
}

TEST_CASE("cors: any origin is '*', but with credentials the origin is echoed")
{
  http::cors_options o;
  o.allowed_origins = {"*"};
  fixture open{o};
  CHECK(open.send("GET", {{"Origin", "https://a.example"}}).headers.get("Access-Control-Allow-Origin") == "*");
  o.allow_credentials = true;
  fixture with_cookies{o};
  auto r = with_cookies.send("GET", {{"Origin", "https://a.example"}});
  CHECK(r.headers.get("Access-Control-Allow-Origin") == "https://a.example");
  CHECK(r.headers.get("Access-Control-Allow-Credentials") == "true");
}

TEST_CASE("cors: the [cors] config keys, and a bad origin names the key")
{
  auto load = [](std::vector<std::string> sets) {
    coronet::config::sources from;
    from.keys = coronet::framework_keys();
    from.sets = std::move(sets);
    static const char* const no_env[] = {nullptr};
    from.environment = no_env;
    return coronet::config::load("test", from);
  };
  auto o = http::cors_options::from(load({"cors.allowed_origins=https://a.example, https://b.example:8443",
    "cors.allowed_methods=GET,POST", "cors.allow_credentials=true", "cors.max_age_s=60"}));
  CHECK(o.allowed_origins == std::vector<std::string>{"https://a.example", "https://b.example:8443"});
  CHECK(o.allowed_methods == std::vector<std::string>{"GET", "POST"});
  CHECK(o.allow_credentials);
  CHECK(o.max_age.count() == 60);
  CHECK_THROWS_WITH_AS(http::cors_options::from(load({"cors.allowed_origins=app.example.com"})),
    doctest::Contains("cors.allowed_origins"), coronet::config_error);
  CHECK_THROWS_WITH_AS(http::cors_options::from(load({"cors.max_age_s=-1"})), doctest::Contains("cors.max_age_s"),
    coronet::config_error);
}
