#pragma once
// Routes by method and path: static segments, `{name}` segments (read with
// req.param("name")) and a trailing `*` that matches the rest of the path.
//
//   http::router r;
//   r.get("/users/{id}", get_user);
//   r.post("/users", create_user);
//   r.get("/static/*", serve_file);
//
// A path that no route matches answers 404; a path matched only under other
// methods answers 405 with an Allow header. HEAD is served by GET routes.
// Handlers are plain callables `task<response>(request&)` (a
// `const request&` parameter works too).
#include <coronet/http/request.hpp>
#include <coronet/http/response.hpp>
#include <coronet/task.hpp>

#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace coronet::http {

using handler = std::function<task<response>(request&)>;

class router final {
public:
  void add(std::string method, std::string_view pattern, handler h);
  void get(std::string_view pattern, handler h) { add("GET", pattern, std::move(h)); }
  void post(std::string_view pattern, handler h) { add("POST", pattern, std::move(h)); }
  void put(std::string_view pattern, handler h) { add("PUT", pattern, std::move(h)); }
  void patch(std::string_view pattern, handler h) { add("PATCH", pattern, std::move(h)); }
  void del(std::string_view pattern, handler h) { add("DELETE", pattern, std::move(h)); }

  struct match {
    const handler* target = nullptr;  // nullptr: see `status`
    http::status status = http::status::not_found;
    std::string allow;                // for 405
  };
  // Fills req.params on a match.
  match find(request& req) const;

private:
  struct route {
    std::string method;
    std::vector<std::string> segments; // "{name}" or "*" or literal
    handler h;
  };
  std::vector<route> routes_;
};

} // namespace coronet::http
