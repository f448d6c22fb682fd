// libFuzzer target for routing: a method (the first byte chooses it) and a
// request target as a client may send it, percent-decoded as the parser
// does, matched against a router with static, {param} and trailing-* routes;
// then the parameter and query readers a handler uses. Must never crash;
// a match names its route and has one value per {param}.
#include <coronet/http/request.hpp>
#include <coronet/http/router.hpp>

#include <cstdint>
#include <cstdlib>
#include <string>

namespace http = coronet::http;

namespace {

const http::router& routes()
{
  static const http::router r = [] {
    http::router r;
    http::handler none = [](http::request&) -> coronet::task<http::response> { co_return http::response{}; };
    r.get("/", none);
    r.get("/users/{id}", none);
    r.put("/users/{id}", none);
    r.get("/users/{id}/orders/{order}", none);
    r.get("/api/users/{id}/dashboard", none);
    r.post("/users", none);
    r.get("/static/*", none);
    r.add("PATCH", "/items/{name}/*", none);
    return r;
  }();
  return r;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
  if (size == 0)
    return 0;
  static const char* methods[] = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "BREW"};
  http::request req;
  req.method = methods[data[0] % 8];
  req.target.assign(reinterpret_cast<const char*>(data + 1), size - 1);
  auto q = req.target.find('?');
  auto path = http::percent_decode(std::string_view(req.target).substr(0, q), false);
  if (!path)
    return 0; // the parser answers 400
  req.path = std::move(*path);
  if (q != std::string::npos)
    req.query_string = req.target.substr(q + 1);
  auto m = routes().find(req);
  if (m.target) {
    if (req.route.empty())
      std::abort();
    std::size_t braces = 0;
    for (char c : req.route)
      braces += c == '{';
    if (req.params.size() != braces)
      std::abort();
    (void)req.param("id");
  } else if (m.status != http::status::not_found && m.status != http::status::method_not_allowed) {
    std::abort();
  } else if (m.status == http::status::method_not_allowed && m.allow.empty()) {
    std::abort();
  }
  (void)req.query("id");
  (void)req.query("");
  (void)http::percent_decode(req.query_string, true);
  try {
    (void)http::positive_integer(req.query("n"), "n");
  } catch (const std::exception&) {
  }
  return 0;
}
