#include <coronet/http/client.hpp>

#include <coronet/config.hpp>
#include <coronet/metrics.hpp>
#include <coronet/sync/channel.hpp>

#include "response_parser.hpp"

#include <asio/connect.hpp>
#include <asio/steady_timer.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/write.hpp>
#include <fmt/format.h>

#include <atomic>
#include <charconv>
#include <unordered_map>
#include <vector>

#include <sys/socket.h>

namespace coronet::http {

using asio::ip::tcp;

std::string_view to_string(client_errc e) noexcept
{
  switch (e) {
  case client_errc::bad_url: return "bad_url";
  case client_errc::resolve_failed: return "resolve_failed";
  case client_errc::refused: return "refused";
  case client_errc::connect_failed: return "connect_failed";
  case client_errc::reset: return "reset";
  case client_errc::closed: return "closed";
  case client_errc::timeout: return "timeout";
  case client_errc::malformed_response: return "malformed_response";
  case client_errc::response_too_large: return "response_too_large";
  }
  return "unknown";
}

client_options client_options::from(const config& cfg)
{
  client_options o;
  auto size = [&](const char* key) { return static_cast<std::size_t>(cfg.get_positive(key)); };
  o.max_connections_per_host = size("client.max_connections_per_host");
  o.max_idle_per_host = size("client.max_idle_per_host");
  o.connect_timeout = cfg.get_positive_ms("client.connect_timeout_ms");
  o.request_timeout = cfg.get_positive_ms("client.request_timeout_ms");
  o.idle_timeout = cfg.get_positive_ms("client.idle_timeout_ms");
  o.max_response_body_bytes = size("client.max_response_body_bytes");
  return o;
}

namespace {

constexpr auto use_tuple = asio::experimental::as_tuple(asio::use_awaitable);

struct url_parts {
  std::string host;
  unsigned short port = 80;
  std::string target; // "/path?query"
  std::string key;    // "host:port", the pool's name
};

url_parts parse_url(std::string_view url)
{
  auto bad = [&](const char* why) { return client_error(client_errc::bad_url, fmt::format("bad URL '{}': {}", url, why)); };
  constexpr std::string_view scheme = "http://";
  if (url.substr(0, scheme.size()) != scheme)
    throw bad("only http:// is supported");
  auto rest = url.substr(scheme.size());
  auto slash = rest.find_first_of("/?");
  auto authority = rest.substr(0, slash);
  url_parts u;
  u.target = slash == std::string_view::npos ? "/" : std::string(rest.substr(slash));
  if (u.target.front() == '?')
    u.target.insert(0, "/");
  std::string_view host = authority, port;
  if (!authority.empty() && authority.front() == '[') {
    auto close = authority.find(']');
    if (close == std::string_view::npos)
      throw bad("unclosed '[' in the host");
    host = authority.substr(1, close - 1);
    if (close + 1 < authority.size()) {
      if (authority[close + 1] != ':')
        throw bad("junk after the IPv6 address");
      port = authority.substr(close + 2);
    }
  } else if (auto colon = authority.rfind(':'); colon != std::string_view::npos) {
    host = authority.substr(0, colon);
    port = authority.substr(colon + 1);
  }
  if (host.empty())
    throw bad("no host");
  if (!port.empty() || authority.back() == ':') {
    unsigned value = 0;
    auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
    if (port.empty() || ec != std::errc{} || end != port.data() + port.size() || value == 0 || value > 65535)
      throw bad("bad port");
    u.port = static_cast<unsigned short>(value);
  }
  for (char c : u.target)
    if (static_cast<unsigned char>(c) <= ' ' || c == 0x7f)
      throw bad("spaces or control characters in the path");
  u.host = std::string(host);
  u.key = std::string(authority);
  return u;
}

bool idempotent(std::string_view method)
{
  return method == "GET" || method == "HEAD" || method == "PUT" || method == "DELETE" || method == "OPTIONS";
}

struct connection {
  explicit connection(const asio::any_io_executor& ex) : socket(ex), buffer(new char[buffer_size]) {}
  static constexpr std::size_t buffer_size = 8 * 1024;
  tcp::socket socket;
  std::unique_ptr<char[]> buffer; // responses are read here; reused while the connection is
  clock::time_point idle_since;
};

struct host_pool {
  explicit host_pool(std::size_t max_connections) : slots(max_connections)
  {
    for (std::size_t i = 0; i < max_connections; ++i)
      slots.try_send(std::monostate{});
  }
  std::vector<tcp::endpoint> endpoints;
  std::vector<std::unique_ptr<connection>> idle; // most recently used last
  channel<std::monostate> slots;                 // a token per connection in use
};

// Gives the slot back however the exchange ends.
struct slot_guard {
  channel<std::monostate>& slots;
  ~slot_guard() { slots.try_send(std::monostate{}); }
};

// True when a pooled connection still looks usable: the server has neither
// closed it nor sent anything unasked.
bool alive(connection& c)
{
  char byte;
  auto n = ::recv(c.socket.native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

struct client_metrics {
  metrics::family<metrics::counter>& calls;
  metrics::family<metrics::histogram>& duration;
};

client_metrics& client_families()
{
  auto& r = metrics::registry::global();
  static client_metrics m{
    r.counters("coronet_http_client_requests_total",
      "HTTP client calls by target and outcome (status class, or the error).", {"target", "outcome"}),
    r.histograms("coronet_http_client_request_duration_seconds", "HTTP client call time by target.", {"target"})};
  return m;
}

} // namespace

struct client::state {
  state(runtime& r, client_options o) : rt(r), options(o), pools(r.size()) {}
  runtime& rt;
  client_options options;
  // Per worker: only that worker's thread touches its map.
  std::vector<std::unordered_map<std::string, std::unique_ptr<host_pool>>> pools;
  std::atomic<std::size_t> connects{0}, reuses{0}, retries{0};
  std::vector<std::atomic<std::size_t>> idle_counts = std::vector<std::atomic<std::size_t>>(rt.size());

  host_pool& pool(std::size_t worker, const url_parts& u)
  {
    auto& map = pools[worker];
    auto it = map.find(u.key);
    if (it == map.end())
      it = map.emplace(u.key, std::make_unique<host_pool>(options.max_connections_per_host)).first;
    return *it->second;
  }
};

namespace {

std::string request_bytes(std::string_view method, const url_parts& u, const request_options& o)
{
  std::string wire;
  wire.reserve(128 + o.body.size());
  wire.append(method).append(" ").append(u.target).append(" HTTP/1.1\r\n");
  if (!o.headers.contains("Host"))
    wire.append("Host: ").append(u.key).append("\r\n");
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

task<std::error_code> connect_to(tcp::socket& socket, const std::vector<tcp::endpoint>& endpoints)
{
  auto [ec, at] = co_await asio::async_connect(socket, endpoints, use_tuple);
  (void)at;
  co_return ec;
}

// A call's deadline without a task or a parallel group per call: a timer
// whose handler marks the call late and cancels the socket operation it is
// waiting on. The call checks `fired` before each new operation.
struct call_timer {
  explicit call_timer(const asio::any_io_executor& ex) : timer(ex) {}
  asio::steady_timer timer;
  bool fired = false;
  tcp::socket* waiting_on = nullptr;

  static std::shared_ptr<call_timer> start(const asio::any_io_executor& ex, clock::time_point deadline)
  {
    auto t = std::make_shared<call_timer>(ex);
    t->timer.expires_at(deadline);
    t->timer.async_wait([t](std::error_code ec) {
      if (ec || t->fired)
        return;
      t->fired = true;
      if (t->waiting_on) {
        std::error_code ignored;
        t->waiting_on->cancel(ignored);
      }
    });
    return t;
  }
  void stop()
  {
    waiting_on = nullptr;
    timer.cancel();
  }
};

// Stops the call's timer however the call ends.
struct call_timer_guard {
  call_timer& t;
  ~call_timer_guard() { t.stop(); }
};

task<std::unique_ptr<connection>> open(client::state& st, host_pool& pool, const url_parts& u, call_timer& late)
{
  auto executor = co_await asio::this_coro::executor;
  if (pool.endpoints.empty()) {
    std::error_code bad;
    auto address = asio::ip::make_address(u.host, bad);
    if (!bad) {
      pool.endpoints.emplace_back(address, u.port);
    } else {
      tcp::resolver resolver{executor};
      auto [ec, results] = co_await resolver.async_resolve(u.host, std::to_string(u.port), use_tuple);
      if (ec)
        throw client_error(client_errc::resolve_failed, fmt::format("{}: cannot resolve: {}", u.key, ec.message()));
      for (auto& r : results)
        pool.endpoints.push_back(r.endpoint());
    }
  }
  auto c = std::make_unique<connection>(executor);
  std::error_code ec;
  late.waiting_on = &c->socket;
  try {
    auto op = connect_to(c->socket, pool.endpoints);
    ec = co_await with_timeout(std::move(op), st.options.connect_timeout);
  } catch (const timeout_error&) {
    late.waiting_on = nullptr;
    throw client_error(client_errc::timeout,
      fmt::format("{}: connect timed out after {} ms", u.key, st.options.connect_timeout.count()));
  }
  late.waiting_on = nullptr;
  if (late.fired)
    throw client_error(client_errc::timeout, fmt::format("{}: the call's time ran out while connecting", u.key));
  if (ec == asio::error::connection_refused)
    throw client_error(client_errc::refused, fmt::format("{}: connection refused", u.key));
  if (ec) {
    pool.endpoints.clear(); // resolve again next time
    throw client_error(client_errc::connect_failed, fmt::format("{}: connect failed: {}", u.key, ec.message()));
  }
  c->socket.set_option(tcp::no_delay(true), ec);
  st.connects.fetch_add(1, std::memory_order_relaxed);
  co_return c;
}

task<client_response> exchange(client::state& st, std::size_t worker, const std::string& method, const url_parts& u,
  const request_options& o, clock::time_point deadline)
{
  auto& pool = st.pool(worker, u);
  auto executor = co_await asio::this_coro::executor;
  auto late_ptr = call_timer::start(executor, deadline);
  call_timer& late = *late_ptr;
  call_timer_guard stop_timer{late};
  auto timed_out = [&] {
    return client_error(client_errc::timeout, fmt::format("{} {}{}: no response in time", method, u.key, u.target));
  };
  if (!pool.slots.try_receive()) {
    // At the per-host limit: wait for a connection, within the deadline.
    try {
      auto wait = pool.slots.receive();
      co_await with_deadline(std::move(wait), deadline);
    } catch (const timeout_error&) {
      throw timed_out();
    }
  }
  slot_guard guard{pool.slots};
  const std::string wire = request_bytes(method, u, o);
  const bool may_retry = idempotent(method);

  for (int attempt = 0;; ++attempt) {
    std::unique_ptr<connection> c;
    while (!pool.idle.empty() && !c) {
      c = std::move(pool.idle.back());
      pool.idle.pop_back();
      st.idle_counts[worker].fetch_sub(1, std::memory_order_relaxed);
      if (clock::now() - c->idle_since > st.options.idle_timeout || !alive(*c))
        c.reset();
    }
    const bool reused = c != nullptr;
    if (reused)
      st.reuses.fetch_add(1, std::memory_order_relaxed);
    else
      c = co_await open(st, pool, u, late);
    const bool retry_allowed = reused && may_retry && attempt == 0;

    detail::response_parser parser{st.options.max_response_header_bytes, st.options.max_response_body_bytes,
      method == "HEAD"};
    if (late.fired)
      throw timed_out();
    late.waiting_on = &c->socket;
    auto [wec, written] = co_await asio::async_write(c->socket, asio::buffer(wire), use_tuple);
    (void)written;
    if (late.fired)
      throw timed_out();
    bool stale = false;
    if (wec) {
      if (!retry_allowed)
        throw client_error(client_errc::reset, fmt::format("{} {}{}: sending failed: {}", method, u.key, u.target,
          wec.message()));
      stale = true;
    }
    while (!stale) {
      if (late.fired)
        throw timed_out();
      auto [ec, n] = co_await c->socket.async_read_some(asio::buffer(c->buffer.get(), connection::buffer_size),
        use_tuple);
      if (late.fired)
        throw timed_out();
      detail::response_parser::result r;
      if (ec == asio::error::eof) {
        if (!parser.started() && retry_allowed) {
          stale = true;
          break;
        }
        r = parser.finish();
        if (r != detail::response_parser::result::complete)
          throw client_error(client_errc::closed, fmt::format("{} {}{}: {}", method, u.key, u.target,
            parser.error_message()));
      } else if (ec) {
        if (!parser.started() && retry_allowed && ec == asio::error::connection_reset) {
          stale = true;
          break;
        }
        throw client_error(client_errc::reset, fmt::format("{} {}{}: {}", method, u.key, u.target, ec.message()));
      } else {
        r = parser.feed({c->buffer.get(), n});
      }
      if (r == detail::response_parser::result::error)
        throw client_error(parser.too_large() ? client_errc::response_too_large : client_errc::malformed_response,
          fmt::format("{} {}{}: {}", method, u.key, u.target, parser.error_message()));
      if (r == detail::response_parser::result::complete)
        break;
    }
    late.waiting_on = nullptr;
    if (stale) {
      st.retries.fetch_add(1, std::memory_order_relaxed);
      continue;
    }
    auto& got = parser.response();
    if (got.keep_alive && pool.idle.size() < st.options.max_idle_per_host) {
      c->idle_since = clock::now();
      pool.idle.push_back(std::move(c));
      st.idle_counts[worker].fetch_add(1, std::memory_order_relaxed);
    }
    co_return client_response{got.status, std::move(got.headers), std::move(got.body)};
  }
}

std::string outcome_of(int status)
{
  return fmt::format("{}xx", status / 100);
}

} // namespace

client::client(runtime& rt, client_options options) : state_(std::make_shared<state>(rt, options))
{
  client_families();
}

client::~client() = default;

task<client_response> client::get(std::string url, request_options options)
{
  return send("GET", std::move(url), std::move(options));
}

task<client_response> client::post(std::string url, std::string body, request_options options)
{
  options.body = std::move(body);
  return send("POST", std::move(url), std::move(options));
}

task<client_response> client::send(std::string method, std::string url, request_options options)
{
  std::shared_ptr<state> st = state_; // outlives the client if the call does
  auto worker = runtime::current_worker();
  if (!worker || runtime::current() != &st->rt)
    throw std::logic_error("http::client called from outside its runtime's workers");
  const url_parts u = parse_url(url);
  const auto start = clock::now();
  auto budget = options.timeout.count() > 0 ? options.timeout : st->options.request_timeout;
  auto deadline = start + budget;
  if (options.deadline && *options.deadline < deadline)
    deadline = *options.deadline;
  const std::string label = options.name.empty() ? u.key : options.name;
  auto& m = client_families();
  auto record = [&](std::string_view outcome) {
    m.calls.with({label, outcome}).inc();
    m.duration.with({label}).observe(std::chrono::duration<double>(clock::now() - start).count());
  };

  try {
    auto op = exchange(*st, *worker, method, u, options, deadline);
    auto r = co_await std::move(op);
    record(outcome_of(r.status));
    co_return r;
  } catch (const client_error& e) {
    record(to_string(e.kind()));
    if (e.kind() == client_errc::timeout && std::string_view(e.what()).ends_with("no response in time"))
      throw client_error(client_errc::timeout, fmt::format("{} {}: no response within {} ms", method, url,
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - start).count()));
    throw;
  }
}

client::pool_stats client::stats() const
{
  pool_stats s;
  s.connects = state_->connects.load(std::memory_order_relaxed);
  s.reuses = state_->reuses.load(std::memory_order_relaxed);
  s.retries = state_->retries.load(std::memory_order_relaxed);
  for (auto& n : state_->idle_counts)
    s.idle += n.load(std::memory_order_relaxed);
  return s;
}

} // namespace coronet::http
