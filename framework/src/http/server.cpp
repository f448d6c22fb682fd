#include <coronet/http/server.hpp>

#include <coronet/config.hpp>
#include <coronet/detail/intrusive_list.hpp>
#include <coronet/net/tcp_server.hpp>
#include <coronet/sync/select.hpp>

#include "http1_connection.hpp"

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
  o.tls = net::tls_server::from(cfg);
  return o;
}

namespace {

// A worker's HTTP/1 connections, for the drain. Only that worker touches it.
using connection_list = coronet::detail::intrusive_list<detail::http1_connection>;

struct server_state {
  server_state(runtime& r, server_options o, router rs)
    : rt(r), options(std::move(o)), routes(std::move(rs)), settings{rt, options, routes}, connections(rt.size())
  {
  }
  runtime& rt;
  server_options options;
  router routes;
  detail::http1_settings settings;
  std::vector<connection_list> connections; // per worker
  channel<std::monostate> finished;         // closed when the server has ended (or failed to start)
};

// Unlinks the connection from its worker's list however it ends.
struct list_guard {
  connection_list& list;
  detail::http1_connection& c;
  ~list_guard() { list.remove(&c); }
};

task<void> serve_connection(net::stream& s, std::shared_ptr<server_state> st)
{
  detail::http1_connection c{s, st->settings};
  auto& list = st->connections[runtime::current_worker().value_or(0)];
  list.push_back(&c);
  list_guard unlink{list, c};
  if (st->rt.stop_requested())
    c.drain();
  co_await c.serve();
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
