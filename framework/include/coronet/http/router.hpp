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
//
// Middleware wraps every request, matched or not, in the order added. It can
// act before and after the rest of the chain, or answer early by not calling
// it. The route is found first, so middleware sees req.route:
//
//   r.use([](http::request& req, http::next next) -> task<http::response> {
//     if (!req.header("Authorization"))
//       co_return http::response::text(http::status::unauthorized, "who are you?\n");
//     co_return co_await next(req);
//   });
//
// An exception from a handler or a middleware becomes a response right where
// it is thrown (http::error → its status, anything else → 500 and one log
// line), so middleware further out, such as the access log, sees it.
#include <coronet/http/request.hpp>
#include <coronet/http/response.hpp>
#include <coronet/task.hpp>

#include <cstddef>
#include <exception>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace coronet::http {

using handler = std::function<task<response>(request&)>;

class router;
struct route_match;

// The rest of a middleware chain; call it at most once.
class next final {
public:
  task<response> operator()(request& req) const;

private:
  friend class router;
  next(const router& r, std::size_t index, const route_match& m) : router_(&r), index_(index), match_(&m) {}
  const router* router_;
  std::size_t index_;
  const route_match* match_;
};

using middleware = std::function<task<response>(request&, next)>;

struct route_match {
  const handler* target = nullptr;  // nullptr: see `status`
  http::status status = http::status::not_found;
  std::string allow;                // for 405
};

struct file_options;

class router final {
public:
  void add(std::string method, std::string_view pattern, handler h);
  void get(std::string_view pattern, handler h) { add("GET", pattern, std::move(h)); }
  void post(std::string_view pattern, handler h) { add("POST", pattern, std::move(h)); }
  void put(std::string_view pattern, handler h) { add("PUT", pattern, std::move(h)); }
  void patch(std::string_view pattern, handler h) { add("PATCH", pattern, std::move(h)); }
  void del(std::string_view pattern, handler h) { add("DELETE", pattern, std::move(h)); }

  // Static files from `dir` for GET and HEAD under `pattern` ("/static/*"):
  // see files.hpp. Throws std::invalid_argument when `dir` is not a
  // directory.
  void files(std::string_view pattern, std::string dir);
  void files(std::string_view pattern, std::string dir, const file_options& options);

  // Adds a middleware around everything added before or after it.
  void use(middleware m) { middleware_.push_back(std::move(m)); }

  using match = route_match;
  // Fills req.params and req.route on a match.
  match find(request& req) const;

  // Routes `req` and runs the middleware and the handler. Never throws, but
  // for a cancellation (operation_aborted: the request was cancelled, and
  // nobody is left to answer), which unwinds the chain unlogged.
  task<response> handle(request& req) const;

  // What the server calls: like handle(), but when there is no middleware
  // the handler's own task is returned, and an exception from it reaches
  // the awaiter, which turns it into a response with answer_failure()
  // (http/error.hpp). Two coroutine frames less per request.
  task<response> dispatch(request& req) const;

private:
  friend class next;
  struct route {
    std::string method;
    std::string pattern;
    std::vector<std::string> segments; // "{name}" or "*" or literal
    handler h;
  };
  task<response> run(request& req, std::size_t index, const match& m) const;

  std::vector<route> routes_;
  std::vector<middleware> middleware_;
};

} // namespace coronet::http
