// coronet-hello: the benchmark target (TechEmpower-style endpoints).
#include <coronet/app/app.hpp>
#include <coronet/http/error.hpp>
#include <coronet/http/middleware.hpp>
#include <coronet/server/server.hpp>
#include <coronet/runtime.hpp>

#include <cstdlib>
#include <string>

namespace http = coronet::http;

namespace {

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
  http::response r;
  r.body = std::move(req.body);
  r.headers.add("Content-Type", req.header("Content-Type").value_or("application/octet-stream"));
  co_return r;
}

// GET /stream?lines=N: N numbered lines (default 3, at most 100000), sent as
// they are made, chunked.
coronet::task<http::response> stream(const http::request& req)
{
  long lines = 3;
  if (auto n = req.query("lines")) {
    char* end = nullptr;
    lines = std::strtol(n->c_str(), &end, 10);
    if (n->empty() || *end != '\0' || lines < 0 || lines > 100000)
      throw http::error{http::status::bad_request, "lines must be a number from 0 to 100000"};
  }
  co_return http::response::streamed(http::status::ok, "text/plain; charset=utf-8",
    [lines](http::body_writer& out) -> coronet::task<void> {
      for (long i = 1; i <= lines; ++i) {
        auto line = "line " + std::to_string(i) + "\n";
        co_await out.write(line);
      }
    });
}

coronet::task<http::response> healthz(const http::request&)
{
  co_return http::response::text(http::status::ok, "ok\n");
}

} // namespace

int main(int argc, char** argv)
{
  auto config = coronet::load_config(argc, argv, "hello");
  coronet::runtime rt{config};
  http::router router;
  if (config.get_bool("log.access")) {
    router.use(http::request_ids());
    router.use(http::access_log());
  }
  router.get("/plaintext", plaintext);
  router.get("/json", json);
  router.post("/echo", echo);
  router.get("/stream", stream);
  router.get("/healthz", healthz);
  return rt.run_until_signal(http::serve(rt, config, std::move(router)));
}
