#include <coronet/http/server.hpp>

#include <coronet/config.hpp>
#include <coronet/http/upgrade.hpp>
#include <coronet/detail/intrusive_list.hpp>
#include <coronet/net/tcp_server.hpp>
#include <coronet/sync/select.hpp>
#include <coronet/time.hpp>

#include "request_parser.hpp"

#include <asio/experimental/as_tuple.hpp>
#include <asio/write.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <ctime>
#include <memory>
#include <span>
#include <string_view>
#include <utility>
#include <system_error>

namespace coronet::http {

using asio::ip::tcp;
using namespace std::chrono_literals;
using namespace std::string_view_literals;

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

// The status line and headers of `r`, then its body unless it is streamed
// or answers a HEAD. A streamed body is chunked, or close-delimited when the
// client cannot take chunks (`close` is then already true).
void serialize(const response& r, bool head, bool close, bool chunked, std::string& out)
{
  char number[16];
  auto code_end = std::to_chars(number, number + sizeof number, code(r.status)).ptr;
  out.append("HTTP/1.1 "sv).append(number, code_end).append(" "sv).append(reason(r.status)).append("\r\n"sv);
  for (auto& [name, value] : r.headers) {
    if (iequals(name, "Content-Length") || iequals(name, "Connection") || iequals(name, "Date") ||
        iequals(name, "Transfer-Encoding"))
      continue; // the server owns the framing
    out.append(name).append(": "sv).append(value).append("\r\n"sv);
  }
  bool body = has_body(r.status);
  if (body && r.stream) {
    if (chunked)
      out.append("Transfer-Encoding: chunked\r\n"sv);
  } else if (body) {
    auto len_end = std::to_chars(number, number + sizeof number, r.body.size()).ptr;
    out.append("Content-Length: "sv).append(number, len_end).append("\r\n"sv);
  }
  out.append("Date: "sv).append(date_now()).append("\r\nServer: coronet\r\n"sv);
  if (r.upgrade && r.status == status::switching_protocols)
    out.append("Connection: Upgrade\r\n"sv);
  else if (close)
    out.append("Connection: close\r\n"sv);
  out.append("\r\n"sv);
  if (!head && body && !r.stream)
    out.append(r.body);
}

void serialize(const response& r, bool head, bool close, std::string& out)
{
  serialize(r, head, close, true, out);
}

// The answer to a request the server refuses itself (400, 408, 413...),
// after which the connection closes. Not inlined into the connection
// coroutine, so its temporaries take no room in every connection's frame.
[[gnu::noinline]] void serialize_error(status s, std::string& out)
{
  serialize(response::text(s, std::string(reason(s)) + "\n"), false, true, out);
}

enum class phase { idle, headers, body, write };

// A connection as its worker's watcher sees it.
struct connection_state {
  explicit connection_state(tcp::socket& s) : socket(s) {}
  tcp::socket& socket; // owned by the TCP server
  phase now = phase::idle;
  clock::time_point deadline; // of the current phase
  bool expired = false;       // the watcher closed the socket: a deadline passed
  phase expired_in = phase::idle;
  bool drained = false;       // the watcher ended an idle wait because the server stops

  // Links in the worker's watch list.
  connection_state* prev_ = nullptr;
  connection_state* next_ = nullptr;
  bool linked_ = false;
};

struct server_state {
  server_state(runtime& r, server_options o, router rs) : rt(r), options(std::move(o)), routes(std::move(rs))
  {
    auto shortest = std::min({options.header_timeout, options.body_timeout, options.idle_timeout,
      options.write_timeout});
    tick = std::clamp<clock::duration>(shortest / 4, 10ms, 250ms);
    watched.resize(rt.size());
  }
  runtime& rt;
  server_options options;
  router routes;
  clock::duration tick; // how often each worker looks at its connections' deadlines
  // Per worker; only that worker's thread touches its list.
  std::vector<coronet::detail::intrusive_list<connection_state>> watched;
  channel<std::monostate> finished; // closed when the server has stopped
};

// Writes a streamed body straight to the socket, each write under the
// write timeout.
class stream_writer final : public body_writer {
public:
  stream_writer(connection_state& st, clock::duration timeout, bool chunked)
    : st_(st), timeout_(timeout), chunked_(chunked)
  {
  }

  task<void> write(std::string_view data) override
  {
    if (data.empty())
      co_return; // an empty chunk would end the body
    char size[24];
    std::size_t size_len = 0;
    if (chunked_) {
      auto end = std::to_chars(size, size + sizeof size - 2, data.size(), 16).ptr;
      *end++ = '\r';
      *end++ = '\n';
      size_len = static_cast<std::size_t>(end - size);
    }
    std::array<asio::const_buffer, 3> buffers{asio::buffer(size, size_len), asio::buffer(data),
      asio::buffer("\r\n", chunked_ ? 2 : 0)};
    co_await send(buffers);
  }

  task<void> finish()
  {
    if (chunked_) {
      std::array<asio::const_buffer, 1> last{asio::buffer("0\r\n\r\n", 5)};
      co_await send(last);
    }
  }

private:
  template <class Buffers>
  task<void> send(const Buffers& buffers)
  {
    st_.now = phase::write;
    st_.deadline = clock::now() + timeout_;
    auto [ec, n] = co_await asio::async_write(st_.socket, buffers, use_tuple);
    if (ec)
      throw std::system_error(ec, "writing the response body");
  }

  connection_state& st_;
  clock::duration timeout_;
  bool chunked_;
};

// A keep-alive connection idle when the server stops is closed after this
// grace: a client that just got a response may already have sent its next
// request, and closing under it would cut that request off. In the grace the
// request is served (with Connection: close).
constexpr auto idle_close_grace = 20ms;

// One per worker: closes the sockets of that worker's connections whose
// current phase (headers, body, write, keep-alive idle) outlived its
// timeout, and, once the server stops, those that sit idle. Connections only
// move their deadline (no timer work per request or per connection); the
// watcher looks every `tick`, so a timeout fires up to one tick late.
task<void> watcher(std::shared_ptr<server_state> s, std::size_t worker)
{
  auto& connections = s->watched[worker];
  bool stopping = false;
  clock::time_point close_idle_at{};
  for (;;) {
    if (!stopping) {
      auto r = co_await select(s->finished.on_receive(), s->rt.done().on_receive(), after(s->tick));
      if (r.index() == 0)
        break;
      if (r.index() == 1) {
        stopping = true;
        close_idle_at = clock::now() + idle_close_grace;
      }
    } else {
      auto r = co_await select(s->finished.on_receive(), after(idle_close_grace / 2));
      if (r.index() == 0)
        break;
    }
    auto now = clock::now();
    std::error_code ignored;
    for (auto* c = connections.front(); c; c = c->next_) {
      if (c->expired || c->drained)
        continue;
      if (now >= c->deadline) {
        c->expired = true;
        c->expired_in = c->now;
        c->socket.cancel(ignored);
        c->socket.shutdown(tcp::socket::shutdown_receive, ignored);
      } else if (stopping && c->now == phase::idle && now >= close_idle_at) {
        c->drained = true; // the connection looks once more before closing
        c->socket.cancel(ignored);
      }
    }
  }
}

// Sends what `out` holds (this response's headers after any earlier
// pipelined responses), then the streamed body. False when the connection
// cannot go on: the client went away, or the producer failed after the
// headers were out, so the body is cut short and the client must see the
// connection close.
task<bool> stream_body(connection_state& st, const server_options& o, const response& resp, bool chunked,
  std::string& out)
{
  stream_writer writer{st, o.write_timeout, chunked};
  try {
    st.now = phase::write;
    st.deadline = clock::now() + o.write_timeout;
    auto [ec, n] = co_await asio::async_write(st.socket, asio::buffer(out), use_tuple);
    out.clear();
    if (ec)
      co_return false;
    co_await resp.stream(writer);
    co_await writer.finish();
    co_return true;
  } catch (const std::system_error& e) {
    spdlog::debug("streamed response cut short: {}", e.what());
  } catch (const std::exception& e) {
    spdlog::error("streamed response failed: {}", e.what());
  }
  co_return false;
}

// Sends the 101 response (after any earlier pipelined responses) and hands
// the connection to the upgrade handler, with the bytes already received
// after the request. The connection closes when the handler returns.
task<void> switch_protocols(connection_state& st, server_state& s, const response& resp,
  std::string_view rest, std::string& out)
{
  serialize(resp, false, false, out);
  st.now = phase::write;
  st.deadline = clock::now() + s.options.write_timeout;
  auto [ec, n] = co_await asio::async_write(st.socket, asio::buffer(out), use_tuple);
  if (ec)
    co_return;
  // The HTTP timeouts end here: the new protocol keeps its own.
  s.watched[runtime::current_worker().value_or(0)].remove(&st);
  upgraded u{st.socket, std::string(rest), s.rt};
  try {
    co_await resp.upgrade(u);
  } catch (const std::exception& e) {
    spdlog::error("upgraded connection failed: {}", e.what());
  }
}

// Where a worker's connections read what does not fit their small buffer
// (pipelined batches, big requests), parsed at once. The parser copies what
// it keeps, so only the bytes after a complete request are saved, and only
// before the handler might suspend.
std::span<char> read_scratch()
{
  thread_local std::array<char, 64 * 1024> scratch;
  return scratch;
}

// Unlinks the connection from its worker's watch list however it ends.
struct watched_guard {
  coronet::detail::intrusive_list<connection_state>& list;
  connection_state& st;
  ~watched_guard() { list.remove(&st); }
};

// GCC 12 misreads the coroutine frames' class-specific operator new/delete
// pair (Asio's recycling allocator) in this function as mismatched.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif
task<void> connection(tcp::socket& socket, std::shared_ptr<server_state> s)
{
  const auto& o = s->options;
  detail::request_parser parser{{o.max_request_line_bytes, o.max_header_bytes, o.max_headers, o.max_body_bytes}};
  connection_state state{socket};
  connection_state* st = &state;
  st->deadline = clock::now() + o.idle_timeout;
  auto& watch_list = s->watched[runtime::current_worker().value_or(0)];
  watch_list.push_back(st);
  watched_guard unlink{watch_list, state};
  std::error_code nb;
  st->socket.non_blocking(true, nb);

  std::string_view data;      // received, not yet parsed: in the scratch buffer or in `kept`
  std::string kept;           // pipelined bytes saved across a handler's suspension
  std::array<char, 256> head; // where a waiting read lands (requests are mostly smaller)
  bool data_in_scratch = false; // `data` points into the worker's scratch buffer
  bool data_kept = false;     // `data` points into `kept`
  bool socket_empty = false;  // the last read drained the socket
  std::string out;
  bool close = false;
  bool partial = false;       // an unfinished request is in the parser
  bool sent_continue = false; // 100 Continue sent for the current request

  while (!close) {
    // Every complete request received: answer in order, in one write.
    while (!data.empty()) {
      std::size_t used = 0;
      auto r = parser.feed(data, used);
      data.remove_prefix(used);
      partial = used > 0 || partial;
      if (r == detail::request_parser::result::error) {
        spdlog::debug("bad request: {}", parser.error_message());
        serialize_error(parser.error_status(), out);
        close = true;
        break;
      }
      if (r == detail::request_parser::result::need_more)
        break; // the parser took every byte
      partial = false;
      sent_continue = false;
      if (!data.empty() && data_in_scratch) {
        kept.assign(data); // the scratch buffer is shared: keep the rest before a suspension
        data = kept;
        data_in_scratch = false;
        data_kept = true;
      }
      request& req = parser.finished();
      response resp;
      try {
        resp = co_await s->routes.dispatch(req);
      } catch (...) {
        resp = router::answer(std::current_exception(), req);
      }
      // Decided after the handler: a request in flight when the server
      // began to stop gets Connection: close.
      bool keep = req.keep_alive && !s->rt.stop_requested();
      bool is_head = req.method == "HEAD";
      if (resp.upgrade && resp.status == status::switching_protocols) {
        co_await switch_protocols(*st, *s, resp, data, out);
        close = true;
        out.clear();
        break;
      }
      if (resp.stream && !is_head && has_body(resp.status)) {
        // HTTP/1.0 cannot take chunks: the body ends when the connection does.
        bool chunked = req.version_major > 1 || req.version_minor >= 1;
        keep = keep && chunked;
        serialize(resp, false, !keep, chunked, out);
        if (!co_await stream_body(*st, o, resp, chunked, out)) {
          close = true;
          out.clear();
          break;
        }
      } else {
        if (out.capacity() < 4096)
          out.reserve(!data.empty() ? 4096 : resp.body.size() + 256); // grow once, not by doubling
        serialize(resp, is_head, !keep, out);
      }
      if (!keep) {
        close = true;
        break;
      }
    }
    if (data.empty() && data_kept) {
      data_kept = false;
      kept.clear();
      if (kept.capacity() > 16 * 1024)
        kept.shrink_to_fit();
    }
    if (!close && partial && parser.headers_complete() && !sent_continue) {
      auto expect = parser.pending().header("Expect");
      if (expect && iequals(*expect, "100-continue")) {
        out.append("HTTP/1.1 100 Continue\r\n\r\n");
        sent_continue = true;
      }
    }
    // Responses wait while more requests may be in the socket (a pipelined
    // batch bigger than one read): the whole batch goes out in one write.
    if (!out.empty() && (socket_empty || close)) {
      st->now = phase::write;
      st->deadline = clock::now() + o.write_timeout;
      auto [ec, n] = co_await asio::async_write(st->socket, asio::buffer(out), use_tuple);
      // Going to wait for the next request: an idle connection keeps no
      // output buffer (this costs one allocation per response).
      std::string{}.swap(out);
      if (ec)
        break;
    }
    if (close)
      break;

    st->now = !partial ? phase::idle : parser.headers_complete() ? phase::body : phase::headers;
    st->deadline = clock::now() + (st->now == phase::idle ? o.idle_timeout
                                   : st->now == phase::body ? o.body_timeout
                                                            : o.header_timeout);
    // A read that filled its buffer may have left more in the socket: take
    // it at once into the worker's scratch buffer. Otherwise wait with a read
    // into the connection's small buffer, which needs one system call per
    // request (the reactor reads when the socket turns readable) and keeps an
    // idle connection small.
    auto scratch = read_scratch();
    std::error_code ec;
    std::size_t n = 0;
    bool in_scratch = false;
    if (!socket_empty) {
      n = st->socket.read_some(asio::buffer(scratch.data(), scratch.size()), ec);
      in_scratch = !ec;
      socket_empty = ec == asio::error::would_block || n < scratch.size();
      if (ec == asio::error::would_block) {
        if (!out.empty())
          continue; // nothing more now: send what is ready, then wait
        ec.clear();
      }
    }
    if (!ec && n == 0) {
      auto [rec, rn] = co_await st->socket.async_read_some(asio::buffer(head), use_tuple);
      ec = rec;
      n = rn;
      socket_empty = rn < head.size();
    }
    if (ec == asio::error::operation_aborted && st->drained && !st->expired) {
      // Stopping while idle. A request may have arrived just as the wait
      // was cancelled: serve it (with Connection: close) rather than reset
      // a client that sent it in good faith. Bounded by the drain timeout.
      n = st->socket.read_some(asio::buffer(scratch.data(), scratch.size()), ec);
      in_scratch = !ec;
    }
    if (ec) {
      if (st->expired && st->expired_in == phase::headers) {
        out.clear();
        serialize_error(status::request_timeout, out);
        co_await asio::async_write(st->socket, asio::buffer(out), use_tuple);
      }
      break;
    }
    if (n == 0)
      break; // unreachable: a 0-byte read is EOF, an error above
    data = std::string_view{in_scratch ? scratch.data() : head.data(), n};
    data_in_scratch = in_scratch;
  }
  std::error_code ignored;
  st->socket.shutdown(tcp::socket::shutdown_both, ignored);
  st->socket.close(ignored);
}
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

} // namespace

task<void> serve(runtime& rt, server_options options, router routes)
{
  auto state = std::make_shared<server_state>(rt, options, std::move(routes));
  for (std::size_t i = 0; i < rt.size(); ++i)
    rt.spawn(i, watcher(state, i));
  net::tcp_options tcp;
  tcp.listen = options.listen;
  tcp.max_connections = options.max_connections;
  tcp.drain_timeout = options.shutdown_timeout;
  // Named, not a temporary inside the co_await: GCC 12 may destroy such a
  // temporary twice.
  net::connection_handler handler = [state](tcp::socket& socket) { return connection(socket, state); };
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
  // A coroutine, so a bad [http] value fails the task (logged, exit 1)
  // instead of escaping main.
  server_options options = server_options::from(cfg);
  co_await serve(rt, std::move(options), std::move(routes));
}

} // namespace coronet::http
