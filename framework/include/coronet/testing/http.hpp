#pragma once
// Testing handlers without sockets (Go's httptest): a request goes through a
// router as the server would send it (middleware, error mapping, streamed
// bodies, the deadline header), and the response comes back.
//
//   http::router routes = make_routes();
//   http::testing::client t{routes};
//   auto r = t.get("/users/7");
//   CHECK(r.status == 200);
//   CHECK(r.json()["name"] == "User 7");
//   CHECK(t.post("/users", R"({"name":1})").status == 400);
//
// Inside a task (a handler's own runtime), await call() instead.
//
// For client code, upstream_server is a scripted HTTP/1.1 server on a
// loopback port: each request gets the answer a test says (status, headers,
// body, a delay, a reset instead, or a body cut short).
#include <coronet/http/headers.hpp>
#include <coronet/http/request.hpp>
#include <coronet/http/response.hpp>
#include <coronet/http/router.hpp>
#include <coronet/runtime.hpp>
#include <coronet/task.hpp>

#include <nlohmann/json_fwd.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace coronet::http::testing {

struct result {
  int status = 0;
  http::headers headers;
  std::string body; // a streamed body, gathered
  http::headers trailers; // the response's, and those its producer added
  std::optional<std::string_view> header(std::string_view name) const noexcept { return headers.get(name); }
  // The body parsed as JSON; throws nlohmann::json::parse_error when it is not.
  nlohmann::json json() const;
};

class client final {
public:
  // Calls run on `rt` when given (from outside its workers), else on a
  // one-worker runtime of the client's own.
  explicit client(const router& routes, runtime* rt = nullptr);
  ~client();
  client(const client&) = delete;
  client& operator=(const client&) = delete;

  result get(std::string target, http::headers headers = {});
  // A body with a Content-Type (application/json unless headers say another).
  result post(std::string target, std::string body, http::headers headers = {});
  result send(std::string method, std::string target, std::string body = {}, http::headers headers = {});

  // The same from a task on a runtime's worker.
  task<result> call(std::string method, std::string target, std::string body = {}, http::headers headers = {});

private:
  const router& routes_;
  std::unique_ptr<runtime> own_;
  runtime* rt_;
};

// What upstream_server answers one request with.
struct answer {
  int status = 200;
  http::headers headers;
  std::string body;
  std::chrono::milliseconds delay{0}; // before answering
  bool reset = false;                 // close the connection instead, without a byte
  std::size_t cut_after = 0;          // >0: send only this many bytes of the response, then close
};

// What upstream_server saw of one request.
struct seen_request {
  std::string method, target;
  http::headers headers;
  std::string body;
};

class upstream_server final {
public:
  // Listens on 127.0.0.1 (an ephemeral port) on `rt`; `script` decides each
  // answer from the request (and how many came before it, from 0).
  using script = std::function<answer(const seen_request&, std::size_t index)>;
  upstream_server(runtime& rt, script answer_with);
  ~upstream_server(); // stops listening; connections end with the runtime
  upstream_server(const upstream_server&) = delete;
  upstream_server& operator=(const upstream_server&) = delete;

  unsigned short port() const noexcept;
  std::string url(std::string_view path = "/") const;
  // Every request so far, in order (read it from the runtime's workers, or
  // once the calls have ended).
  const std::vector<seen_request>& requests() const noexcept;

  struct state;

private:
  std::shared_ptr<state> state_;
};

} // namespace coronet::http::testing
