// coronet-gateway: the microservice showcase. GET /api/users/{id}/dashboard
// asks the users, orders and recommendations services at once (one task per
// call in a task group, which cancels them if the request is cancelled;
// results through a channel), each call under its own timeout and all under
// the request's deadline, and answers
//
//   {"user":{...},"orders":[...],"recommendations":[...],"partial":false,"errors":[]}
//
// When orders or recommendations fail or time out the answer is still 200,
// with that field null, "partial":true and the reason in "errors". When the
// users service fails the answer is 502, or 404 when it says 404.
//
// Each backend may be several replicas (backends.orders = ["http://a:8082",
// "http://b:8082"]) or a name with several addresses (a Kubernetes headless
// Service): calls balance over them, skip and eject the failing ones, retry
// within the client's budget and hedge after gateway.hedge_after_ms.
//
// backends.users = "grpc://host:port" calls the users service over gRPC
// instead (demo.Users, apps/proto/users.proto, over h2c): scripts/run.sh --grpc.
#ifdef CORONET_DEMO_GRPC
#include "users.coronet.hpp"
#endif
#include <coronet/app/app.hpp>
#include <coronet/client/client.hpp>
#include <coronet/middleware/compress.hpp>
#include <coronet/middleware/cors.hpp>
#include <coronet/http/error.hpp>
#include <coronet/http/json.hpp>
#include <coronet/http/middleware.hpp>
#include <coronet/middleware/observe.hpp>
#include <coronet/server/server.hpp>
#include <coronet/runtime.hpp>
#include <coronet/sync/channel.hpp>
#include <coronet/sync/task_group.hpp>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <array>
#include <optional>
#include <vector>

namespace http = coronet::http;
using coronet::task;
using json = nlohmann::json;

namespace {

constexpr coronet::config_key gateway_keys[] = {
  {"log.access", true, "one access log line per request on stdout, with the request id"},
  {"gateway.backend_timeout_ms", 200, "each backend call, connect to last byte", 1},
  {"gateway.request_timeout_ms", 1000, "the whole dashboard request", 1},
  {"gateway.hedge_after_ms", -1,
    "a call unanswered this long is also sent to another replica; -1: after that backend's own p95 latency; 0: never",
    -1},
  {"backends.users", "http://127.0.0.1:8081",
    "the users service: a URL, or several (replicas), comma-separated; or one grpc://host:port (demo.Users over "
    "h2c; grpcs:// over TLS)"},
  {"backends.orders", "http://127.0.0.1:8082", "the orders service"},
  {"backends.recommendations", "http://127.0.0.1:8083", "the recommendations service"},
};

enum service { users, orders, recommendations };
constexpr std::array<const char*, 3> service_names{"users", "orders", "recommendations"};

struct settings {
  std::chrono::milliseconds backend_timeout{coronet::config_default<std::int64_t>(gateway_keys, "gateway.backend_timeout_ms")};
  std::chrono::milliseconds request_timeout{coronet::config_default<std::int64_t>(gateway_keys, "gateway.request_timeout_ms")};
  std::chrono::milliseconds hedge_after{0};
  std::array<std::vector<std::string>, 3> replicas; // URLs per service
  std::string users_grpc;                           // "http://host:port" when the users service is called over gRPC
};

// backends.users = "grpc://host:port": one target, called over h2c
// ("grpcs://": over TLS, h2 by ALPN).
void read_grpc_users(const coronet::config& cfg, settings& s)
{
  auto& urls = s.replicas[users];
  bool tls = !urls.empty() && urls[0].rfind("grpcs://", 0) == 0;
  if (urls.empty() || (urls[0].rfind("grpc://", 0) != 0 && !tls))
    return;
#ifdef CORONET_DEMO_GRPC
  if (urls.size() != 1)
    cfg.fail("backends.users", "a grpc:// backend is one URL, not a list of replicas");
  s.users_grpc = (tls ? "https://" : "http://") + urls[0].substr(tls ? 8 : 7);
  urls[0] = s.users_grpc;
#else
  cfg.fail("backends.users", "grpc:// needs a gateway built with protoc and libprotobuf (scripts/setup.sh)");
#endif
}

settings read_settings(const coronet::config& cfg)
{
  settings s;
  s.backend_timeout = cfg.get_ms("gateway.backend_timeout_ms"); // bounds: gateway_keys
  s.request_timeout = cfg.get_ms("gateway.request_timeout_ms");
  s.hedge_after = cfg.get_ms("gateway.hedge_after_ms");
  if (s.hedge_after.count() == -1)
    s.hedge_after = http::request_options::hedge_at_p95;
  for (std::size_t i = 0; i < service_names.size(); ++i) {
    auto key = std::string("backends.") + service_names[i];
    s.replicas[i] = cfg.get_list(key);
    if (s.replicas[i].empty())
      cfg.fail(key, "needs at least one http:// or https:// URL");
    if (i == users)
      read_grpc_users(cfg, s);
    for (auto& url : s.replicas[i])
      if (url.rfind("http://", 0) != 0 && url.rfind("https://", 0) != 0)
        cfg.fail(key, fmt::format("'{}' is not an http:// or https:// URL", url));
  }
  return s;
}

struct gateway {
  gateway(coronet::runtime& rt, settings from, const http::client_options& options)
    : s(std::move(from)), client(rt, options),
      services{http::upstream{client, s.replicas[users], service_names[users]},
        http::upstream{client, s.replicas[orders], service_names[orders]},
        http::upstream{client, s.replicas[recommendations], service_names[recommendations]}}
  {
  }
  settings s;
  http::client client;
  std::array<http::upstream, 3> services;
#ifdef CORONET_DEMO_GRPC
  std::optional<coronet::grpc::channel> users_channel; // when s.users_grpc
  std::optional<demo::UsersClient> users_stub;
#endif
};

// One backend's answer, or why there is none.
struct part {
  service from = users;
  int status = 0;           // the backend's status, 0 when there was no response
  std::optional<json> body; // on 200
  std::string reason;       // when there is no usable body
};

// GCC 12 misreads these coroutine frames' class-specific operator new/delete
// pair (Asio's recycling allocator) as mismatched.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

#ifdef CORONET_DEMO_GRPC
// The users service over gRPC: its answer as the HTTP call's would be (the
// user as JSON, or 404 for NOT_FOUND, or the status as the reason).
task<void> call_users_grpc(gateway& g, std::int64_t id, coronet::grpc::call_options options,
  coronet::channel<part> results)
{
  part p;
  p.from = users;
  try {
    demo::UserRequest q;
    q.set_id(id);
    auto op = g.users_stub->GetUser(q, std::move(options));
    auto u = co_await std::move(op);
    p.status = 200;
    p.body = json{{"id", u.id()}, {"name", u.name()}, {"email", u.email()}};
  } catch (const coronet::grpc::error& e) {
    p.status = e.code() == coronet::grpc::code::not_found ? 404 : 0;
    p.reason = fmt::format("grpc {}", coronet::grpc::name(e.code()));
    spdlog::debug("users call failed: {} {}", coronet::grpc::name(e.code()), e.what());
  }
  results.try_send(std::move(p));
}
#endif

// One backend call, its answer sent to `results` (a handle: the call may
// outlive a dashboard that was cancelled, until its own cancellation ends it).
task<void> call(gateway& g, service which, std::string path, http::request_options options,
  coronet::channel<part> results)
{
  part p;
  p.from = which;
  try {
    auto op = g.services[which].get(std::move(path), std::move(options));
    auto r = co_await std::move(op);
    p.status = r.status;
    if (r.status == 200) {
      p.body = json::parse(r.body, nullptr, false);
      if (p.body->is_discarded()) {
        p.body.reset();
        p.reason = "malformed JSON";
      }
    } else {
      p.reason = fmt::format("status {}", r.status);
    }
  } catch (const http::client_error& e) {
    p.reason = std::string(http::to_string(e.kind()));
    spdlog::debug("{} call failed: {}", service_names[which], e.what());
  }
  // The channel holds one slot per call: this never waits.
  results.try_send(std::move(p));
}

http::response json_answer(http::status s, const json& body)
{
  return http::json_response(s, body);
}

task<http::response> dashboard(gateway& g, http::request& req)
{
  auto id = http::positive_integer(req.param("id"), "user id");
  // Its own budget, or less when the caller's deadline (X-Request-Timeout-Ms) is nearer.
  auto deadline = std::min(coronet::clock::now() + g.s.request_timeout, req.deadline);
  const std::array<std::string, 3> paths{
    fmt::format("/users/{}", id), fmt::format("/orders?user={}", id), fmt::format("/recommendations/{}", id)};

  // The calls run as a task group: if this request is cancelled (the
  // client reset its HTTP/2 stream, or went away), so are they, and their
  // backend streams are reset in turn.
  coronet::channel<part> results{3};
  coronet::task_group calls;
  for (auto which : {users, orders, recommendations}) {
    auto o = http::call_options(req); // its request id and trace, a new span
    o.timeout = g.s.backend_timeout;
    o.deadline = deadline;
    o.hedge_after = g.s.hedge_after;
#ifdef CORONET_DEMO_GRPC
    if (which == users && g.users_stub) {
      coronet::grpc::call_options rpc;
      rpc.metadata = std::move(o.headers); // the request id and trace
      rpc.timeout = g.s.backend_timeout;
      rpc.deadline = deadline;
      calls.spawn(call_users_grpc(g, id, std::move(rpc), results));
      continue;
    }
#endif
    calls.spawn(call(g, which, paths[which], std::move(o), results));
  }
  co_await calls.wait();
  results.close();

  std::array<part, 3> got;
  while (auto p = results.try_receive())
    got[p->from] = std::move(*p);

  auto& user = got[users];
  if (!user.body) {
    if (user.status == 404)
      co_return json_answer(http::status::not_found, {{"error", "no such user"}, {"id", id}});
    spdlog::warn("dashboard {} id={}: users service failed: {}", id, req.id, user.reason);
    co_return json_answer(http::status::bad_gateway, {{"error", "users service: " + user.reason}});
  }

  json doc = {{"user", std::move(*user.body)}, {"orders", nullptr}, {"recommendations", nullptr},
    {"partial", false}, {"errors", json::array()}};
  auto fill = [&](service which, const char* field, const char* inner) {
    auto& p = got[which];
    if (p.body && p.body->contains(inner)) {
      doc[field] = std::move((*p.body)[inner]);
      return;
    }
    doc["partial"] = true;
    doc["errors"].push_back({{"service", service_names[which]}, {"reason", p.body ? "malformed JSON" : p.reason}});
  };
  fill(orders, "orders", "orders");
  fill(recommendations, "recommendations", "items");
  co_return json_answer(http::status::ok, doc);
}

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

} // namespace

int main(int argc, char** argv)
{
  auto cfg = coronet::load_config(argc, argv, "gateway", gateway_keys);
  settings s;
  http::client_options client_options;
  http::cors_options cors;
  http::compress_options compression;
  try {
    s = read_settings(cfg);
    client_options = http::client_options::from(cfg);
    cors = http::cors_options::from(cfg);
    compression = http::compress_options::from(cfg);
  } catch (const coronet::config_error& e) {
    spdlog::critical("config error: {}", e.what());
    return 2;
  }
  if (s.users_grpc.starts_with("http://")) // gRPC is HTTP/2: h2c to it, whatever client.http2 says
    client_options.http2_targets[s.users_grpc] = http::http2_mode::prior_knowledge;
  coronet::runtime rt{cfg};
  std::optional<gateway> g;
  try {
    g.emplace(rt, s, client_options);
  } catch (const http::client_error& e) { // a URL the client cannot call
    spdlog::critical("config error: backends: {}", e.what());
    return 2;
  }
#ifdef CORONET_DEMO_GRPC
  if (!s.users_grpc.empty()) {
    g->users_channel.emplace(g->client, s.users_grpc, coronet::grpc::options::from(cfg));
    g->users_stub.emplace(*g->users_channel);
  }
#endif
  http::router router;
  http::observe(router, rt, cfg);
  // Browsers on the origins in cors.allowed_origins may call the API (none by default).
  router.use(http::cors(std::move(cors)));
  router.use(http::compress(compression)); // answers over compress.min_bytes, as Accept-Encoding allows
  gateway* at = &*g;
  router.get("/api/users/{id}/dashboard", [at](http::request& req) { return dashboard(*at, req); });
  auto list = [](const std::vector<std::string>& urls) { return fmt::format("{}", fmt::join(urls, ", ")); };
  auto hedge = s.hedge_after == http::request_options::hedge_at_p95 ? std::string("at each backend's p95")
    : s.hedge_after.count() > 0 ? fmt::format("after {} ms", s.hedge_after.count()) : std::string("never");
  spdlog::info("gateway: users {}{}, orders {}, recommendations {}; {} ms per call, {} ms per request, hedge {}",
    list(s.replicas[users]), s.users_grpc.empty() ? "" : " (gRPC)", list(s.replicas[orders]), list(s.replicas[recommendations]), s.backend_timeout.count(),
    s.request_timeout.count(), hedge);
  return rt.run_until_signal(http::serve(rt, cfg, std::move(router)));
}
