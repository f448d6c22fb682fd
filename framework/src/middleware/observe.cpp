#include <coronet/middleware/observe.hpp>

#include <coronet/config.hpp>
#include <coronet/http/middleware.hpp>
#include <coronet/metrics.hpp>

#include <fmt/format.h>

#include <charconv>
#include <chrono>
#include <string>
#include <unordered_map>

namespace coronet::http {

namespace {

struct http_metrics {
  metrics::family<metrics::counter>& requests;
  metrics::family<metrics::histogram>& duration;
};

http_metrics& request_families()
{
  auto& r = metrics::registry::global();
  static http_metrics m{
    r.counters("coronet_http_requests_total", "HTTP requests answered, by route, method, status and protocol.",
      {"route", "method", "status", "protocol"}),
    r.histograms("coronet_http_request_duration_seconds", "Time from request to response, by route.", {"route"})};
  return m;
}

task<response> healthz(request&)
{
  co_return response::text(status::ok, "ok\n");
}

task<response> metrics_page(request&)
{
  auto r = response{status::ok, {}, metrics::registry::global().render(), {}, {}, {}};
  r.headers.add("Content-Type", "text/plain; version=0.0.4; charset=utf-8");
  co_return r;
}

} // namespace

middleware request_metrics()
{
  request_families();
  return [](request& req, next rest) -> task<response> {
    auto start = std::chrono::steady_clock::now();
    auto r = co_await rest(req);
    std::chrono::duration<double> took = std::chrono::steady_clock::now() - start;
    std::string_view route = req.route.empty() ? std::string_view{"unmatched"} : std::string_view{req.route};
    char code_text[8];
    auto end = std::to_chars(code_text, code_text + sizeof code_text, code(r.status)).ptr;
    std::string_view status_text(code_text, static_cast<std::size_t>(end - code_text));
    // Unknown methods are one series, not one per string a client sends.
    static constexpr std::string_view known[] = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"};
    std::string_view method = "OTHER";
    for (auto k : known)
      if (req.method == k)
        method = k;
    std::string_view protocol = req.version_major == 2 ? "HTTP/2" : req.version_minor == 0 ? "HTTP/1.0" : "HTTP/1.1";
    // The series of a route, method, status and protocol, looked up in the registry
    // (under its lock) once per worker thread, then from this cache.
    struct series {
      metrics::counter* requests;
      metrics::histogram* duration;
    };
    thread_local std::unordered_map<std::string, series> cache;
    thread_local std::string key;
    key.assign(route).append(1, ' ').append(method).append(1, ' ').append(status_text).append(1, ' ').append(protocol);
    auto it = cache.find(key);
    if (it == cache.end()) {
      auto& m = request_families();
      it = cache.emplace(key, series{&m.requests.with({route, method, status_text, protocol}), &m.duration.with({route})}).first;
    }
    it->second.requests->inc();
    it->second.duration->observe(took.count());
    co_return r;
  };
}

void observe(router& r, runtime& rt, const config& cfg)
{
  r.use(request_ids());
  if (cfg.get_bool("log.access"))
    r.use(access_log());
  r.use(request_metrics());

  runtime* at = &rt;
  metrics::registry::global().add_collector([at](std::string& out) {
    auto s = at->stats();
    out += fmt::format(
      "# HELP coronet_tasks_spawned_total Tasks started.\n# TYPE coronet_tasks_spawned_total counter\n"
      "coronet_tasks_spawned_total {}\n"
      "# HELP coronet_tasks_completed_total Tasks that finished normally.\n"
      "# TYPE coronet_tasks_completed_total counter\ncoronet_tasks_completed_total {}\n"
      "# HELP coronet_tasks_failed_total Tasks that ended by an exception.\n"
      "# TYPE coronet_tasks_failed_total counter\ncoronet_tasks_failed_total {}\n"
      "# HELP coronet_tasks_alive Tasks running or parked now.\n# TYPE coronet_tasks_alive gauge\n"
      "coronet_tasks_alive {}\n"
      "# HELP coronet_ready 1 while serving, 0 once draining.\n# TYPE coronet_ready gauge\ncoronet_ready {}\n",
      s.spawned, s.completed, s.failed, s.alive(), at->stop_requested() ? 0 : 1);
  });

  r.get("/metrics", metrics_page);
  r.get("/healthz", healthz);
  r.get("/readyz", [at](request&) -> task<response> {
    if (at->stop_requested())
      co_return response::text(status::service_unavailable, "draining\n");
    co_return response::text(status::ok, "ready\n");
  });
}

} // namespace coronet::http
