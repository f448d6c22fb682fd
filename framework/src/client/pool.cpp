#include "client/pool.hpp"

#include "http1/response_parser.hpp"
#include "client/http2.hpp"

#include <coronet/net/stream.hpp>
#include <coronet/sync/channel.hpp>

#include <asio/experimental/as_tuple.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/ssl/error.hpp>
#include <fmt/format.h>
#include <openssl/ssl.h>

#include <charconv>
#include <optional>

#include <sys/socket.h>

namespace coronet::http {

using asio::ip::tcp;

namespace {

constexpr auto use_tuple = asio::experimental::as_tuple(asio::use_awaitable);

} // namespace

namespace {

using namespace detail;

// Gives the slot back however the exchange ends.
struct slot_guard {
  channel<std::monostate>& slots;
  ~slot_guard() { slots.try_send(std::monostate{}); }
};

// True when a pooled connection still looks usable: the server has neither
// closed it nor sent anything unasked.
bool alive(connection& c)
{
  if (c.stream.is_tls()) {
    // Through TLS: records the server sent after the handshake (TLS 1.3
    // session tickets) are no data, and only OpenSSL can tell them apart
    // from an answer nobody asked for, or from its close_notify.
    char one;
    return c.stream.read_now(asio::buffer(&one, 1)).ec == asio::error::would_block;
  }
  char byte;
  auto n = ::recv(c.stream.lowest_layer().native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

std::string request_bytes(std::string_view method, const url_parts& u, const request_options& o)
{
  std::string wire;
  wire.reserve(128 + o.body.size());
  wire.append(method).append(" ").append(u.target).append(" HTTP/1.1\r\n");
  if (!o.headers.contains("Host"))
    wire.append("Host: ").append(u.authority).append("\r\n");
  for (auto& [name, value] : o.headers) {
    if (iequals(name, "Content-Length") || iequals(name, "Transfer-Encoding") || iequals(name, "Connection"))
      continue; // the client owns the framing
    wire.append(name).append(": ").append(value).append("\r\n");
  }
  if (!o.body.empty() || method == "POST" || method == "PUT" || method == "PATCH")
    wire.append("Content-Length: ").append(std::to_string(o.body.size())).append("\r\n");
  wire.append("\r\n").append(o.body);
  return wire;
}

// A new connection to the pool's address: connected, and for https:// the
// TLS handshake, with the session of an earlier connection resumed. All of
// it within the connect timeout and the call's deadline. A failure to
// connect is an attempt_error at the connect stage: nothing was sent.
task<std::unique_ptr<connection>> open(client::state& st, host_pool& pool, const url_parts& u,
  clock::time_point deadline, bool offer_h2 = false)
{
  using stage = attempt_error::stage;
  auto executor = co_await asio::this_coro::executor;
  auto c = std::make_unique<connection>(executor, u.tls ? st.options.tls_context : nullptr);
  auto connect_by = std::min(deadline, clock::now() + st.options.connect_timeout);
  c->stream.set_write_deadline(connect_by);
  c->stream.set_read_deadline(connect_by);
  auto timed_out = [&](std::string_view what) {
    return connect_by == deadline
      ? attempt_error(client_errc::timeout, fmt::format("{}: the call's time ran out while {}", u.key, what),
          stage::connect)
      : attempt_error(client_errc::timeout,
          fmt::format("{} ({}): {} timed out after {} ms", u.key, pool.address, what,
            st.options.connect_timeout.count()), stage::connect);
  };
  auto ec = co_await c->stream.connect(std::span(&pool.endpoint, 1));
  if (ec == net::timed_out)
    throw timed_out("connecting");
  if (ec == asio::error::operation_aborted)
    throw std::system_error(ec, "call cancelled");
  if (ec == asio::error::connection_refused)
    throw attempt_error(client_errc::refused, fmt::format("{} ({}): connection refused", u.key, pool.address),
      stage::connect);
  if (ec)
    throw attempt_error(client_errc::connect_failed,
      fmt::format("{} ({}): connect failed: {}", u.key, pool.address, ec.message()), stage::connect);
  if (u.tls) {
    auto* ssl = static_cast<SSL*>(c->stream.native_tls());
    if (pool.session)
      SSL_set_session(ssl, pool.session.get());
    if (offer_h2) {
      static constexpr unsigned char h2_first[] = "\x02h2\x08http/1.1";
      SSL_set_alpn_protos(ssl, h2_first, sizeof h2_first - 1);
    }
    ec = co_await c->stream.handshake(u.host);
    if (ec == net::timed_out)
      throw timed_out("in the TLS handshake");
    if (ec) // a certificate that does not verify, no common version...: not retried
      throw client_error(client_errc::tls, fmt::format("{}: TLS handshake failed: {}", u.key,
        net::tls_error_message(ec, ssl)));
    if (SSL_session_reused(ssl))
      st.resumed.fetch_add(1, std::memory_order_relaxed);
  }
  st.connects.fetch_add(1, std::memory_order_relaxed);
  co_return c;
}

// Keeps the TLS session of a connection that served a whole response, for
// the next connection to resume (TLS 1.3 tickets arrive after the handshake,
// so this is taken after the response, not right after the handshake). A
// copy: OpenSSL marks a connection's own session unresumable when the
// connection is freed without a TLS shutdown, as a pooled one may later be.
void keep_session(host_pool& pool, connection& c)
{
  auto* ssl = static_cast<SSL*>(c.stream.native_tls());
  if (!ssl)
    return;
  SSL_SESSION* own = SSL_get1_session(ssl);
  if (!own)
    return;
  if (SSL_SESSION_is_resumable(own))
    if (SSL_SESSION* copy = SSL_SESSION_dup(own))
      pool.session.reset(copy, SSL_SESSION_free);
  SSL_SESSION_free(own);
}

// An HTTP/2 connection to u's host with room for one more stream: one that
// is open, else a new one (one opening at a time per host and worker; the
// other callers wait for it). nullptr when the server turned out to speak
// only HTTP/1.1: the connection opened to learn that is pooled for it.
task<std::shared_ptr<detail::h2_client_connection>> h2_connection(client::state& st, std::size_t worker,
  host_pool& pool, const url_parts& u, clock::time_point deadline)
{
  for (;;) {
    std::erase_if(pool.h2, [](auto& c) { return c->ended(); });
    for (auto& c : pool.h2)
      if (c->can_take()) {
        st.reuses.fetch_add(1, std::memory_order_relaxed);
        co_return c;
      }
    if (pool.protocol == host_pool::speaks::http1)
      co_return nullptr;
    if (pool.h2_opening) {
      auto opening = *pool.h2_opening;
      try {
        auto wait = opening.receive();
        co_await with_deadline(std::move(wait), deadline);
      } catch (const timeout_error&) {
        throw client_error(client_errc::timeout, fmt::format("{}: the call's time ran out while connecting", u.key));
      }
      continue;
    }
    // What the server allows per connection, as its open ones learnt it: the
    // new one keeps to it until its own SETTINGS arrive.
    for (auto& c : pool.h2)
      if (auto limit = c->stream_limit())
        pool.h2_stream_limit = *limit;
    channel<std::monostate> opening;
    pool.h2_opening = opening;
    struct done_opening {
      host_pool& pool;
      channel<std::monostate> opening;
      ~done_opening()
      {
        pool.h2_opening.reset();
        opening.close(); // wakes the waiters, who look again
      }
    } done{pool, opening};
    auto c = co_await open(st, pool, u, deadline, true);
    if (u.tls && c->stream.alpn() != "h2") {
      pool.protocol = host_pool::speaks::http1;
      c->idle_since = clock::now();
      pool.idle.push_back(std::move(c));
      st.idle_counts[worker].fetch_add(1, std::memory_order_relaxed);
      co_return nullptr;
    }
    pool.protocol = host_pool::speaks::http2;
    keep_session(pool, *c);
    detail::h2_client_connection::settings settings{st.options.max_response_header_bytes,
      st.options.max_response_body_bytes, st.options.idle_timeout, st.options.request_timeout};
    std::shared_ptr<connection> owner = std::move(c);
    auto& s = owner->stream;
    pool.h2.push_back(detail::h2_client_connection::start(std::move(owner), s, settings));
    pool.h2.back()->set_stream_limit_hint(pool.h2_stream_limit);
    co_return pool.h2.back();
  }
}

// A call over HTTP/2; std::nullopt when the host speaks only HTTP/1.1. A
// stream the server refused, or left unprocessed under a GOAWAY, is an
// h2_not_processed (stage unprocessed): the retry layer sends it again.
task<std::optional<client_response>> exchange_h2(client::state& st, std::size_t worker, host_pool& pool,
  const std::string& method, const url_parts& u, const request_options& o, clock::time_point deadline,
  bool& connecting)
{
  detail::h2_target target{u.tls, u.authority, u.target, u.key};
  auto c = co_await h2_connection(st, worker, pool, u, deadline);
  connecting = false;
  if (!c)
    co_return std::nullopt;
  auto r = co_await c->call(method, target, o, deadline);
  st.http2.fetch_add(1, std::memory_order_relaxed);
  co_return r;
}

// What an exchange's failures say: "GET orders:8082/x (10.0.0.5:8082): ...".
struct exchange_errors {
  const std::string& method;
  const url_parts& u;
  const host_pool& pool;

  client_error timed_out() const
  {
    return client_error(client_errc::timeout, fmt::format("{} {}{}: no response in time", method, u.key, u.target));
  }
  client_error plain(client_errc kind, std::string_view why) const
  {
    return client_error(kind, fmt::format("{} {}{}: {}", method, u.key, u.target, why));
  }
  attempt_error at(attempt_error::stage where, client_errc kind, std::string_view why) const
  {
    return attempt_error(kind, fmt::format("{} {}{} ({}): {}", method, u.key, u.target, pool.address, why), where);
  }
  // Timeouts and cancellation, the same for a write and a read.
  void check_wait(const std::error_code& ec) const
  {
    if (ec == net::timed_out)
      throw timed_out();
    if (ec == asio::error::operation_aborted)
      throw std::system_error(ec, "call cancelled");
  }
};

// A pooled connection that still looks usable, or nullptr; the expired and
// dead ones met on the way are dropped.
std::unique_ptr<connection> take_idle(client::state& st, std::size_t worker, host_pool& pool)
{
  while (!pool.idle.empty()) {
    std::unique_ptr<connection> c = std::move(pool.idle.back());
    pool.idle.pop_back();
    st.idle_counts[worker].fetch_sub(1, std::memory_order_relaxed);
    if (clock::now() - c->idle_since <= st.options.idle_timeout && alive(*c))
      return c;
  }
  return nullptr;
}

// A read that ended in an error or the end of the stream: the parser's last
// word on an orderly end, else the attempt's failure. `reused`: a request
// on a pooled connection that got no byte back met a server that had closed
// it (stage stale: an idempotent call may go again on a new connection).
response_parser::result read_failed(const connection& c, response_parser& parser, const std::error_code& ec,
  bool reused, const exchange_errors& say)
{
  say.check_wait(ec);
  using stage = attempt_error::stage;
  const bool stale = reused && !parser.started();
  const stage where = stale ? stage::stale : parser.started() ? stage::response : stage::before_response;
  if (ec == asio::error::eof || ec == asio::ssl::error::stream_truncated) {
    auto r = parser.finish();
    if (r != response_parser::result::complete)
      throw say.at(where, client_errc::closed, parser.error_message());
    return r;
  }
  if (stale && (ec == asio::error::connection_reset || c.stream.is_tls()))
    throw say.at(stage::stale, client_errc::reset, ec.message());
  if (ec.category() == asio::error::get_ssl_category()) // an alert: a client certificate refused...
    throw say.plain(client_errc::tls, net::tls_error_message(ec));
  throw say.at(stale ? stage::before_response : where, client_errc::reset, ec.message());
}

// Writes the request and reads its response into `parser`.
task<void> round_trip(connection& c, response_parser& parser, std::string_view wire, bool reused,
  clock::time_point deadline, const exchange_errors& say)
{
  c.stream.set_write_deadline(deadline);
  c.stream.set_read_deadline(deadline);
  if (auto ec = co_await c.stream.write(asio::buffer(wire))) {
    say.check_wait(ec);
    throw say.at(reused ? attempt_error::stage::stale : attempt_error::stage::before_response, client_errc::reset,
      ec.message());
  }
  for (;;) {
    auto [ec, n] = co_await c.stream.read_some(asio::buffer(c.buffer.get(), connection::buffer_size));
    auto r = ec ? read_failed(c, parser, ec, reused, say) : parser.feed({c.buffer.get(), n});
    if (r == response_parser::result::error)
      throw say.plain(parser.too_large() ? client_errc::response_too_large : client_errc::malformed_response,
        parser.error_message());
    if (r == response_parser::result::complete)
      co_return;
  }
}

// After a complete response: the connection back to the pool when both
// sides allow keep-alive and there is room, else closed.
void give_back(client::state& st, std::size_t worker, host_pool& pool, std::unique_ptr<connection> c, bool reused,
  bool keep_alive)
{
  if (!reused)
    keep_session(pool, *c); // once per connection: a copy per response would cost an allocation each
  if (keep_alive && pool.idle.size() < st.options.max_idle_per_host) {
    c->idle_since = clock::now();
    pool.idle.push_back(std::move(c));
    st.idle_counts[worker].fetch_add(1, std::memory_order_relaxed);
  } else {
    c->stream.close(); // TLS: close_notify, an orderly end
  }
}

bool over_http2(client::state& st, const host_pool& pool, const url_parts& u)
{
  auto mode = st.mode_for(u);
  return mode != http2_mode::off && (u.tls || mode == http2_mode::prior_knowledge) &&
         pool.protocol != host_pool::speaks::http1;
}

} // namespace

namespace detail {

task<client_response> exchange(client::state& st, std::size_t worker, host_pool& pool, const std::string& method,
  const url_parts& u, const request_options& o, clock::time_point deadline, bool* connecting, bool fresh)
{
  bool ignored = false;
  bool& opening = connecting ? *connecting : ignored;
  if (over_http2(st, pool, u)) {
    opening = pool.h2.empty();
    auto r = co_await exchange_h2(st, worker, pool, method, u, o, deadline, opening);
    if (r)
      co_return std::move(*r);
  }
  const exchange_errors say{method, u, pool};
  if (!pool.slots.try_receive()) {
    try { // at the per-host limit: wait for a connection, within the deadline
      auto wait = pool.slots.receive(); // named: GCC 12 may destroy a temporary in a co_await twice
      co_await with_deadline(std::move(wait), deadline);
    } catch (const timeout_error&) {
      throw say.timed_out();
    }
  }
  slot_guard guard{pool.slots};
  // A fresh attempt follows a stale one: the other idle connections are
  // likely as stale (a server that closes idle connections).
  std::unique_ptr<connection> c = fresh ? nullptr : take_idle(st, worker, pool);
  const bool reused = c != nullptr;
  if (reused) {
    st.reuses.fetch_add(1, std::memory_order_relaxed);
  } else {
    opening = true;
    c = co_await open(st, pool, u, deadline);
    opening = false;
  }
  response_parser parser{st.options.max_response_header_bytes, st.options.max_response_body_bytes, method == "HEAD"};
  const std::string wire = request_bytes(method, u, o); // named: it must outlive the co_await
  co_await round_trip(*c, parser, wire, reused, deadline, say);
  auto& got = parser.response();
  give_back(st, worker, pool, std::move(c), reused, got.keep_alive);
  co_return client_response{got.status, std::move(got.headers), std::move(got.body)};
}

task<std::shared_ptr<stream_call>> open_stream(client::state& st, std::size_t worker, host_pool& pool, const std::string& method,
  const url_parts& u, const request_options& o, clock::time_point deadline)
{
  const exchange_errors say{method, u, pool};
  if (!over_http2(st, pool, u))
    throw say.plain(client_errc::http2_required, "a streamed call needs HTTP/2 (an https:// server offering h2, "
      "or an h2c target: client.h2c_targets)");
  auto c = co_await h2_connection(st, worker, pool, u, deadline);
  if (!c)
    throw say.plain(client_errc::http2_required, "the server does not offer HTTP/2, which a streamed call needs");
  auto s = std::make_shared<stream_call>();
  s->p = c->open(method, h2_target{u.tls, u.authority, u.target, u.key}, o);
  s->conn = std::move(c);
  s->deadline = deadline;
  st.http2.fetch_add(1, std::memory_order_relaxed);
  co_return s;
}

std::size_t sweep_idle(client::state& st, std::size_t worker, host_pool& pool)
{
  auto now = clock::now();
  auto before = pool.idle.size();
  std::erase_if(pool.idle, [&](const std::unique_ptr<connection>& c) {
    if (now - c->idle_since <= st.options.idle_timeout && alive(*c))
      return false;
    c->stream.close();
    return true;
  });
  st.idle_counts[worker].fetch_sub(before - pool.idle.size(), std::memory_order_relaxed);
  return pool.idle.size();
}

} // namespace detail

} // namespace coronet::http
