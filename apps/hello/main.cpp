// coronet-hello: the benchmark target (TechEmpower-style endpoints).
#include <coronet/config.hpp>
#include <coronet/http/server.hpp>
#include <coronet/runtime.hpp>

namespace http = coronet::http;

namespace {

constexpr const char* defaults = R"(
[server]
listen = "127.0.0.1:8080"
)";

coronet::task<http::response> plaintext(const http::request&)
{
  co_return http::response::text(http::status::ok, "Hello, World!");
}

coronet::task<http::response> json(const http::request&)
{
  co_return http::response::json(http::status::ok, R"({"message":"Hello, World!"})");
}

coronet::task<http::response> echo(http::request& req)
{
  auto r = http::response{http::status::ok, {}, std::move(req.body)};
  r.headers.add("Content-Type", std::string(req.header("Content-Type").value_or("application/octet-stream")));
  co_return r;
}

coronet::task<http::response> healthz(const http::request&)
{
  co_return http::response::text(http::status::ok, "ok\n");
}

} // namespace

int main(int argc, char** argv)
{
  auto config = coronet::load_config(argc, argv, "hello", defaults);
  coronet::runtime rt{config};
  http::router router;
  router.get("/plaintext", plaintext);
  router.get("/json", json);
  router.post("/echo", echo);
  router.get("/healthz", healthz);
  return rt.run_until_signal(http::serve(rt, config, std::move(router)));
}
