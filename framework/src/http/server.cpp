#include <coronet/http/server.hpp>

#include <coronet/config.hpp>
#include <coronet/net/tcp_server.hpp>
#include <coronet/sync/select.hpp>
#include <coronet/time.hpp>

#include "request_parser.hpp"

#include <asio/experimental/as_tuple.hpp>
#include <asio/steady_timer.hpp>
#include <asio/write.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <ctime>
#include <memory>
#include <system_error>

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

// The status line and headers of `r`, then its body unless it is streamed
// or answers a HEAD. A streamed body is chunked, or close-delimited when the
// client cannot take chunks (`close` is then already true).
void serialize(const response& r, bool head, bool close, bool chunked, std::string& out)
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
  bool body = has_body(r.status);
  if (body && r.stream) {
    if (chunked)
      out.append("Transfer-Encoding: chunked\r\n");
  } else if (body) {
    auto len_end = std::to_chars(number, number + sizeof number, r.body.size()).ptr;
    out.append("Content-Length: ").append(number, len_end).append("\r\n");
  }
  out.append("Date: ").append(date_now()).append("\r\nServer: coronet\r\n");
  if (close)
    out.append("Connection: close\r\n");
  out.append("\r\n");
  if (!head && body && !r.stream)
    out.append(r.body);
}

void serialize(const response& r, bool head, bool close, std::string& out)
{
  serialize(r, head, close, true, out);
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
  bool drained = false; // the watchdog ended an idle wait because the server stops
  phase expired_in = phase::idle;
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

// Closes the socket when the current phase outlives its deadline, and closes
// an idle keep-alive connection once the server stops. The connection only
// moves the deadline (no timer work per request); the watchdog never sleeps
// longer than the shortest timeout, so every deadline the connection can set
// lies after its next wake-up.
task<void> watchdog(std::shared_ptr<connection_state> st, runtime& rt, clock::duration longest_sleep)
{
  bool stopping = false;
  clock::time_point close_idle_at{};
  while (!st->done) {
    auto wait = std::min<clock::duration>(st->deadline - clock::now(), longest_sleep);
    if (wait > 0s) {
      if (!stopping) {
        auto r = co_await select(rt.done().on_receive(), st->finished.on_receive(), after(wait));
        stopping = r.index() == 0;
        close_idle_at = clock::now() + idle_close_grace;
      } else {
        // Stopping: the connection closes itself after its response; look
        // again shortly in case it is, or goes, idle.
        co_await select(st->finished.on_receive(), after(std::min<clock::duration>(wait, idle_close_grace / 2)));
      }
    }
    if (st->done)
      break;
    std::error_code ignored;
    if (clock::now() >= st->deadline) {
      st->expired = true;
      st->expired_in = st->now;
      st->socket.cancel(ignored);
      st->socket.shutdown(tcp::socket::shutdown_receive, ignored);
      break;
    }
    if (stopping && st->now == phase::idle && clock::now() >= close_idle_at) {
      st->drained = true; // the connection looks once more before closing
      st->socket.cancel(ignored);
      break;
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
      auto resp = co_await s->routes.handle(req);
      // Decided after the handler: a request in flight when the server
      // began to stop gets Connection: close.
      bool keep = req.keep_alive && !s->rt.stop_requested();
      bool head = req.method == "HEAD";
      if (resp.stream && !head && has_body(resp.status)) {
        // HTTP/1.0 cannot take chunks: the body ends when the connection does.
        bool chunked = req.version_major > 1 || req.version_minor >= 1;
        keep = keep && chunked;
        serialize(resp, false, !keep, chunked, out);
        if (!co_await stream_body(*st, o, resp, chunked, out))
          break;
      } else {
        serialize(resp, head, !keep, out);
      }
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
    if (ec == asio::error::operation_aborted && st->drained && !st->expired) {
      // Stopping while idle. A request may have arrived just as the wait
      // was cancelled: serve it (with Connection: close) rather than reset
      // a client that sent it in good faith. Bounded by the drain timeout.
      std::error_code ignored;
      if (st->socket.available(ignored) > 0) {
        n = st->socket.read_some(asio::buffer(in.data() + end, in.size() - end), ec);
        if (!ec) {
          end += n;
          continue;
        }
      }
    }
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
