#include <coronet/http/server.hpp>

#include <coronet/config.hpp>
#include <coronet/detail/intrusive_list.hpp>
#include <coronet/net/tcp_server.hpp>
#include <coronet/sync/select.hpp>

#include "http1_connection.hpp"
#include "http2_connection.hpp"

#include <fmt/format.h>

#include <memory>
#include <utility>
#include <vector>

namespace coronet::http {


server_options server_options::from(const config& cfg)
{
  server_options o;
  auto ms = [&](const char* key) { return cfg.get_positive_ms(key); };
  auto size = [&](const char* key) { return static_cast<std::size_t>(cfg.get_positive(key)); };
  o.listen = cfg.get_string("server.listen");
  try {
    net::parse_endpoint(o.listen);
  } catch (const std::invalid_argument& e) {
    cfg.fail("server.listen", e.what());
  }
  o.max_request_line_bytes = size("http.max_request_line_bytes");
  o.max_header_bytes = size("http.max_header_bytes");
  o.max_headers = size("http.max_headers");
  o.max_body_bytes = size("http.max_body_bytes");
  o.header_timeout = ms("http.header_timeout_ms");
  o.body_timeout = ms("http.body_timeout_ms");
  o.idle_timeout = ms("http.idle_timeout_ms");
  o.write_timeout = ms("http.write_timeout_ms");
  o.max_connections = size("http.max_connections");
  o.shutdown_timeout = ms("http.shutdown_timeout_ms");
  auto concurrent = cfg.get_int("http.max_concurrent_requests");
  if (concurrent < 0)
    cfg.fail("http.max_concurrent_requests", "must be 0 (no limit) or more");
  o.max_concurrent_requests = static_cast<std::size_t>(concurrent);
  o.queue_timeout = cfg.get_ms("http.queue_timeout_ms");
  for (auto& item : cfg.get_list("http.trusted_proxies")) {
    auto network = ip_network::parse(item);
    if (!network)
      cfg.fail("http.trusted_proxies", fmt::format("'{}' is not an IP address or network (10.0.0.0/8, fd00::/8)", item));
    o.trusted_proxies.push_back(*network);
  }
  o.request_timeout = cfg.get_ms("http.request_timeout_ms");
  if (o.request_timeout.count() < 0)
    cfg.fail("http.request_timeout_ms", "must be 0 (none) or more");
  if (o.queue_timeout.count() < 0)
    cfg.fail("http.queue_timeout_ms", "must be 0 (refuse at once) or more");
  auto& h2 = o.http2;
  h2.enabled = cfg.get_bool("http2.enabled");
  auto bounded = [&](const char* key, std::int64_t low, std::int64_t high) {
    auto v = cfg.get_positive(key);
    if (v < low || v > high)
      cfg.fail(key, fmt::format("must be between {} and {}", low, high));
    return static_cast<std::uint32_t>(v);
  };
  h2.max_concurrent_streams = bounded("http2.max_concurrent_streams", 1, 1 << 20);
  h2.initial_window_bytes = bounded("http2.initial_window_bytes", 1, 0x7fffffff);
  h2.connection_window_bytes = bounded("http2.connection_window_bytes", 65535, 0x7fffffff);
  h2.max_header_list_bytes = bounded("http2.max_header_list_bytes", 1024, 16 << 20);
  h2.max_frame_bytes = bounded("http2.max_frame_bytes", 16384, 16777215);
  auto tls = net::tls_server_options::from(cfg);
  if (tls.enabled()) {
    if (h2.enabled)
      tls.alpn = {"h2", "http/1.1"};
    o.tls = std::make_shared<net::tls_server>(std::move(tls), &cfg);
  }
  return o;
}

namespace {

// A worker's connections, for the drain. Only that worker touches it.
using connection_list = coronet::detail::intrusive_list<detail::server_connection>;

struct server_state {
  server_state(runtime& r, server_options o, router rs)
    : rt(r),
      options(std::move(o)),
      routes(std::move(rs)),
      admissions(rt.size()),
      settings{rt, options, routes, admissions},
      connections(rt.size())
  {
  }
  runtime& rt;
  server_options options;
  router routes;
  std::vector<detail::admission> admissions; // per worker
  detail::connection_settings settings;
  std::vector<connection_list> connections; // per worker
  channel<std::monostate> finished;         // closed when the server has ended (or failed to start)
};

// Links a connection in its worker's list for as long as it lives.
struct list_guard {
  list_guard(server_state& st, detail::server_connection& c)
    : list(st.connections[runtime::current_worker().value_or(0)]), conn(c)
  {
    list.push_back(&conn);
    if (st.rt.stop_requested())
      conn.drain();
  }
  ~list_guard() { list.remove(&conn); }
  connection_list& list;
  detail::server_connection& conn;
};

task<void> serve_http2(net::stream& s, std::shared_ptr<server_state> st, std::string preface)
{
  detail::http2_connection c{s, st->settings, preface};
  list_guard linked{*st, c};
  co_await c.serve();
}

// HTTP/2 when TLS chose it by ALPN, or when a plain connection opens with
// its preface (h2c with prior knowledge); else HTTP/1.1.
task<void> serve_connection(net::stream& s, std::shared_ptr<server_state> st)
{
  if (s.alpn() == "h2") {
    co_await serve_http2(s, st, {});
    co_return;
  }
  std::string preface;
  {
    detail::http1_connection c{s, st->settings};
    list_guard linked{*st, c};
    co_await c.serve();
    if (!c.http2_preface())
      co_return;
    preface.assign(c.preface_bytes());
  }
  co_await serve_http2(s, st, std::move(preface));
}

// Once the server stops, connections that wait for their next request close
// after a short grace; those in the middle of one finish it first.
task<void> drain_on_stop(std::shared_ptr<server_state> st, std::size_t worker)
{
  auto got = co_await select(st->rt.done().on_receive(), st->finished.on_receive());
  if (got.index() == 1)
    co_return;
  for (auto* c = st->connections[worker].front(); c; c = c->next_)
    c->drain();
}

} // namespace

task<void> serve(runtime& rt, server_options options, router routes)
{
  auto state = std::make_shared<server_state>(rt, options, std::move(routes));
  for (std::size_t i = 0; i < rt.size(); ++i)
    rt.spawn(i, drain_on_stop(state, i));
  net::tcp_options tcp;
  tcp.listen = options.listen;
  tcp.max_connections = options.max_connections;
  tcp.drain_timeout = options.shutdown_timeout;
  tcp.tls = options.tls;
  // Named, not a temporary inside the co_await: GCC 12 may destroy such a
  // temporary twice.
  net::connection_handler handler = [state](net::stream& s) { return serve_connection(s, state); };
  try {
    co_await net::serve_tcp(rt, tcp, std::move(handler));
  } catch (...) {
    state->finished.close();
    throw;
  }
  state->finished.close();
}

task<void> serve(runtime& rt, const config& cfg, router routes)
{
  // A coroutine, so a bad [http] or [tls] value fails the task (logged,
  // exit 2) instead of escaping main. SIGHUP reloads the certificate.
  server_options options = server_options::from(cfg);
  if (options.tls)
    rt.on_reload([tls = options.tls] { tls->reload(); });
  co_await serve(rt, std::move(options), std::move(routes));
}

} // namespace coronet::http
