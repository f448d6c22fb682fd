#include <coronet/http/server.hpp>

#include <coronet/config.hpp>
#include <coronet/http/error.hpp>
#include <coronet/net/tcp_server.hpp>
#include <coronet/sync/select.hpp>
#include <coronet/time.hpp>

#include "request_parser.hpp"

#include <asio/experimental/as_tuple.hpp>
#include <asio/steady_timer.hpp>
#include <asio/write.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <ctime>
#include <memory>

namespace coronet::http {

using asio::ip::tcp;
using namespace std::chrono_literals;

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
  return o;
}

namespace {

constexpr auto use_tuple = asio::experimental::as_tuple(asio::use_awaitable);

// "Tue, 15 Nov 1994 08:12:31 GMT", formatted at most once a second per worker.
std::string_view date_now()
{
  thread_local std::time_t last = 0;
  thread_local char text[64] = {};
  std::time_t now = std::time(nullptr);
  if (now != last) {
    last = now;
    std::tm utc{};
    gmtime_r(&now, &utc);
    std::strftime(text, sizeof text, "%a, %d %b %Y %H:%M:%S GMT", &utc);
  }
  return text;
}

bool has_body(status s)
{
  int c = code(s);
  return c >= 200 && c != 204 && c != 304;
}

void serialize(const response& r, bool head, bool close, std::string& out)
{
  char number[16];
  auto code_end = std::to_chars(number, number + sizeof number, code(r.status)).ptr;
  out.append("HTTP/1.1 ").append(number, code_end).append(" ").append(reason(r.status)).append("\r\n");
  for (auto& [name, value] : r.headers) {
    if (iequals(name, "Content-Length") || iequals(name, "Connection") || iequals(name, "Date") ||
        iequals(name, "Transfer-Encoding"))
      continue; // the server owns the framing
    out.append(name).append(": ").append(value).append("\r\n");
  }
  if (has_body(r.status)) {
    auto len_end = std::to_chars(number, number + sizeof number, r.body.size()).ptr;
    out.append("Content-Length: ").append(number, len_end).append("\r\n");
  }
  out.append("Date: ").append(date_now()).append("\r\nServer: coronet\r\n");
  if (close)
    out.append("Connection: close\r\n");
  out.append("\r\n");
  if (!head && has_body(r.status))
    out.append(r.body);
}

struct server_state {
  runtime& rt;
  server_options options;
  router routes;
};

enum class phase { idle, headers, body, write };

// What the connection and its watchdog share.
struct connection_state {
  explicit connection_state(tcp::socket s) : socket(std::move(s)) {}
  tcp::socket socket;
  phase now = phase::idle;
  clock::time_point deadline;
  bool done = false;
  channel<std::monostate> finished; // closed with `done`, wakes the watchdog
  bool expired = false; // the watchdog closed the socket
  phase expired_in = phase::idle;
};

// Closes the socket when the current phase outlives its deadline, and closes
// an idle keep-alive connection as soon as the server stops. The connection
// only moves the deadline (no timer work per request); the watchdog never
// sleeps longer than the shortest timeout, so every deadline the connection
// can set lies after its next wake-up.
task<void> watchdog(std::shared_ptr<connection_state> st, runtime& rt, clock::duration longest_sleep)
{
  bool stopping = false;
  while (!st->done) {
    auto wait = std::min<clock::duration>(st->deadline - clock::now(), longest_sleep);
    if (wait > 0s) {
      if (!stopping) {
        auto r = co_await select(rt.done().on_receive(), st->finished.on_receive(), after(wait));
        stopping = r.index() == 0;
      } else {
        // Stopping, mid-request: the connection closes itself after the
        // response; look again shortly in case it goes idle first.
        co_await select(st->finished.on_receive(), after(std::min<clock::duration>(wait, 50ms)));
      }
    }
    if (st->done)
      break;
    if ((stopping && st->now == phase::idle) || clock::now() >= st->deadline) {
      st->expired = true;
      st->expired_in = st->now;
      std::error_code ignored;
      st->socket.cancel(ignored);
      st->socket.shutdown(tcp::socket::shutdown_receive, ignored);
      break;
    }
  }
}

task<response> dispatch(const server_state& s, request& req)
{
  auto m = s.routes.find(req);
  if (!m.target) {
    auto r = response::text(m.status, std::string(reason(m.status)) + "\n");
    if (m.status == status::method_not_allowed)
      r.headers.add("Allow", m.allow);
    co_return r;
  }
  try {
    co_return co_await (*m.target)(req);
  } catch (const error& e) {
    co_return response::text(e.status(), std::string(e.what()) + "\n");
  } catch (const std::exception& e) {
    spdlog::error("{} {}: handler failed: {}", req.method, req.target, e.what());
  }
  co_return response::text(status::internal_server_error, "Internal Server Error\n");
}

task<void> connection(tcp::socket socket, std::shared_ptr<const server_state> s)
{
  const auto& o = s->options;
  detail::request_parser parser{{o.max_request_line_bytes, o.max_header_bytes, o.max_headers, o.max_body_bytes}};
  auto st = std::make_shared<connection_state>(std::move(socket));
  st->deadline = clock::now() + o.idle_timeout;
  auto shortest = std::min({o.header_timeout, o.body_timeout, o.idle_timeout, o.write_timeout});
  spawn(watchdog(st, s->rt, shortest));

  std::string in(16 * 1024, '\0');
  std::size_t begin = 0, end = 0;
  std::string out;
  bool close = false;
  bool partial = false;       // bytes of an unfinished request are buffered
  bool sent_continue = false; // 100 Continue sent for the current request

  while (!close) {
    // Every complete request already buffered: answer in order, one write.
    while (begin < end) {
      std::size_t used = 0;
      auto r = parser.feed({in.data() + begin, end - begin}, used);
      begin += used;
      partial = used > 0 || partial;
      if (r == detail::request_parser::result::error) {
        spdlog::debug("bad request: {}", parser.error_message());
        serialize(response::text(parser.error_status(), std::string(reason(parser.error_status())) + "\n"), false,
          true, out);
        close = true;
        break;
      }
      if (r == detail::request_parser::result::need_more)
        break;
      partial = false;
      sent_continue = false;
      request req = parser.take();
      bool keep = req.keep_alive && !s->rt.stop_requested();
      auto resp = co_await dispatch(*s, req);
      serialize(resp, req.method == "HEAD", !keep, out);
      if (!keep) {
        close = true;
        break;
      }
    }
    if (!close && partial && parser.headers_complete() && !sent_continue) {
      auto expect = parser.pending().header("Expect");
      if (expect && iequals(*expect, "100-continue")) {
        out.append("HTTP/1.1 100 Continue\r\n\r\n");
        sent_continue = true;
      }
    }
    if (!out.empty()) {
      st->now = phase::write;
      st->deadline = clock::now() + o.write_timeout;
      auto [ec, n] = co_await asio::async_write(st->socket, asio::buffer(out), use_tuple);
      out.clear();
      if (ec)
        break;
    }
    if (close)
      break;

    // Read more. Keep the unparsed tail at the front of the buffer.
    if (begin == end) {
      begin = end = 0;
    } else if (begin > 0) {
      in.erase(0, begin);
      in.resize(in.capacity());
      end -= begin;
      begin = 0;
    }
    if (end == in.size())
      in.resize(in.size() * 2);
    st->now = !partial ? phase::idle : parser.headers_complete() ? phase::body : phase::headers;
    st->deadline = clock::now() + (st->now == phase::idle ? o.idle_timeout
                                   : st->now == phase::body ? o.body_timeout
                                                            : o.header_timeout);
    auto [ec, n] = co_await st->socket.async_read_some(asio::buffer(in.data() + end, in.size() - end), use_tuple);
    if (ec) {
      if (st->expired && st->expired_in == phase::headers) {
        std::string timeout;
        serialize(response::text(status::request_timeout, "Request Timeout\n"), false, true, timeout);
        co_await asio::async_write(st->socket, asio::buffer(timeout), use_tuple);
      }
      break;
    }
    end += n;
  }
  st->done = true;
  st->finished.close();
  std::error_code ignored;
  st->socket.shutdown(tcp::socket::shutdown_both, ignored);
  st->socket.close(ignored);
}

} // namespace

task<void> serve(runtime& rt, server_options options, router routes)
{
  auto state = std::make_shared<const server_state>(server_state{rt, options, std::move(routes)});
  net::tcp_options tcp;
  tcp.listen = options.listen;
  tcp.max_connections = options.max_connections;
  tcp.drain_timeout = options.shutdown_timeout;
  // Named, not a temporary inside the co_await: GCC 12 may destroy such a
  // temporary twice.
  net::connection_handler handler = [state](tcp::socket socket) { return connection(std::move(socket), state); };
  co_await net::serve_tcp(rt, tcp, std::move(handler));
}

task<void> serve(runtime& rt, const config& cfg, router routes)
{
  // A coroutine, so a bad [http] value fails the task (logged, exit 1)
  // instead of escaping main.
  server_options options = server_options::from(cfg);
  co_await serve(rt, std::move(options), std::move(routes));
}

} // namespace coronet::http
