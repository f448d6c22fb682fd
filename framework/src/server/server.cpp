#include <coronet/server/server.hpp>

#include <coronet/config.hpp>
#include <coronet/detail/intrusive_list.hpp>
#include <coronet/net/tcp_server.hpp>

#include "http1/connection.hpp"
#include "http2/connection.hpp"

#include <fmt/format.h>

#include <memory>
#include <utility>
#include <vector>

namespace coronet::http {

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
      connections(rt.size()),
      drained(rt.size(), 0)
  {
  }
  runtime& rt;
  server_options options;
  router routes;
  std::vector<detail::admission> admissions; // per worker
  detail::connection_settings settings;
  std::vector<connection_list> connections; // per worker
  std::vector<char> drained;                 // per worker: its acceptor closed at the stop, its connections told
};

// Links a connection in its worker's list for as long as it lives.
struct list_guard {
  list_guard(server_state& st, detail::server_connection& c)
    : list(st.connections[runtime::current_worker().value_or(0)]), conn(c)
  {
    list.push_back(&conn);
    if (st.drained[runtime::current_worker().value_or(0)])
      conn.drain(); // started after drain_worker: told now
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

// Once the server stops and this worker's acceptor is closed, connections
// that wait for their next request close after a short grace; those in the
// middle of one finish it first.
void drain_worker(server_state& st)
{
  auto worker = runtime::current_worker().value_or(0);
  st.drained[worker] = 1;
  for (auto* c = st.connections[worker].front(); c; c = c->next_)
    c->drain();
}

} // namespace

task<void> serve(runtime& rt, server_options options, router routes)
{
  auto state = std::make_shared<server_state>(rt, options, std::move(routes));
  net::tcp_options tcp;
  tcp.stopped_accepting = [state] { drain_worker(*state); };
  tcp.listen = options.listen;
  tcp.max_connections = options.max_connections;
  tcp.drain_timeout = options.shutdown_timeout;
  tcp.tls = options.tls;
  // Named, not a temporary inside the co_await: GCC 12 may destroy such a
  // temporary twice.
  net::connection_handler handler = [state](net::stream& s) { return serve_connection(s, state); };
  co_await net::serve_tcp(rt, tcp, std::move(handler));
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
