#include <coronet/client/client.hpp>

#include <coronet/config.hpp>
#include <coronet/http/middleware.hpp>
#include <coronet/metrics.hpp>
#include <coronet/sync/channel.hpp>

#include "client/pool.hpp"
#include "client/replicas.hpp"

#include <coronet/net/stream.hpp>

#include <asio/experimental/as_tuple.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/post.hpp>
#include <asio/ssl/error.hpp>
#include <fmt/format.h>
#include <openssl/ssl.h>

#include <atomic>
#include <charconv>
#include <optional>
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
  case client_errc::tls: return "tls";
  case client_errc::http2_required: return "http2_required";
  }
  return "unknown";
}

namespace {

constexpr auto use_tuple = asio::experimental::as_tuple(asio::use_awaitable);

} // namespace

namespace detail {

url_parts parse_url(std::string_view url)
{
  auto bad = [&](const char* why) { return client_error(client_errc::bad_url, fmt::format("bad URL '{}': {}", url, why)); };
  url_parts u;
  std::string_view rest;
  if (url.substr(0, 7) == "http://") {
    rest = url.substr(7);
  } else if (url.substr(0, 8) == "https://") {
    rest = url.substr(8);
    u.tls = true;
    u.port = 443;
  } else {
    throw bad("only http:// and https:// are supported");
  }
  auto slash = rest.find_first_of("/?");
  auto authority = rest.substr(0, slash);
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
  u.authority = std::string(authority);
  u.key = (u.tls ? "https://" : "http://") + u.authority;
  return u;
}

bool idempotent(std::string_view method) noexcept
{
  return method == "GET" || method == "HEAD" || method == "PUT" || method == "DELETE" || method == "OPTIONS";
}

} // namespace detail

namespace {

using namespace detail;


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

client_options client_options::from(const config& cfg)
{
  client_options o;
  // Bounds are client_keys'; what is checked here is what a bound cannot say.
  auto size = [&](const char* key) { return static_cast<std::size_t>(cfg.get_int(key)); };
  o.max_connections_per_host = size("client.max_connections_per_host");
  o.max_idle_per_host = size("client.max_idle_per_host");
  o.connect_timeout = cfg.get_ms("client.connect_timeout_ms");
  o.request_timeout = cfg.get_ms("client.request_timeout_ms");
  o.idle_timeout = cfg.get_ms("client.idle_timeout_ms");
  o.max_response_body_bytes = size("client.max_response_body_bytes");
  o.tls = net::tls_client_options::from(cfg);
  o.tls_context = net::make_client_tls(o.tls, &cfg);
  auto mode = cfg.get_string("client.http2");
  if (mode == "auto")
    o.http2 = http2_mode::automatic;
  else if (mode == "prior_knowledge")
    o.http2 = http2_mode::prior_knowledge;
  else if (mode == "off")
    o.http2 = http2_mode::off;
  else
    cfg.fail("client.http2", fmt::format("'{}' is not one of \"auto\", \"prior_knowledge\", \"off\"", mode));
  // Per target: a comma-separated list of origins, each as written in a URL.
  for (std::string_view item : cfg.get_list("client.h2c_targets")) {
    while (!item.empty() && item.back() == '/')
      item.remove_suffix(1); // "http://host:8081/" names the origin too
    url_parts u;
    try {
      u = parse_url(item);
    } catch (const client_error& e) {
      cfg.fail("client.h2c_targets", e.what());
    }
    if (u.tls || u.target != "/")
      cfg.fail("client.h2c_targets", fmt::format("'{}' is not an http:// origin (http://host:port)", item));
    o.http2_targets[u.key] = http2_mode::prior_knowledge;
  }
  auto count = [&](const char* key) { return static_cast<unsigned>(cfg.get_int(key)); };
  o.dns_refresh = cfg.get_ms("client.dns_refresh_ms");
  o.eject_after_failures = count("client.eject_after_failures");
  o.eject_time = cfg.get_ms("client.eject_ms");
  o.max_ejected_percent = count("client.max_ejected_percent");
  o.retry_budget_percent = count("client.retry_budget_percent");
  o.retry_budget_min_per_second = count("client.retry_budget_min_per_second");
  o.max_retries = count("client.max_retries");
  o.retry_backoff = cfg.get_ms("client.retry_backoff_ms");
  return o;
}

client::state::state(runtime& r, client_options o) : rt(r), options(std::move(o)), sets(r.size())
{
  if (!options.tls_context)
    options.tls_context = net::make_client_tls(options.tls);
}

http2_mode client::state::mode_for(const url_parts& u) const
{
  auto it = options.http2_targets.find(u.key);
  return it != options.http2_targets.end() ? it->second : options.http2;
}


namespace {

std::string outcome_of(int status)
{
  return fmt::format("{}xx", status / 100);
}

} // namespace

namespace {

// The state holds every worker's pools, and so sockets of every worker; it
// is let go of worker by worker, wherever its last owner (the client, an
// upstream, a call or a sweep in flight) drops it: each worker drops its own
// pools, and the last one what is left. Never on a thread where the worker
// whose sockets it closes may be running. When the runtime has stopped, its
// teardown destroys these posts unrun, and the state goes with the last of
// them while every worker's io_context is still there.
struct release_on_workers {
  void operator()(client::state* st) const
  {
    std::shared_ptr<client::state> whole(st);
    for (std::size_t w = 0; w < st->sets.size(); ++w)
      asio::post(st->rt.executor(w), [whole, w] { whole->sets[w].clear(); });
  }
};

} // namespace

client::client(runtime& rt, client_options options)
  : state_(new state(rt, std::move(options)), release_on_workers{})
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

namespace {

// What every call and stream starts with, once its deadline is known: the
// caller's worker, the budget left sent on as X-Request-Timeout-Ms (rounded
// up, so the next service's deadline is never before this call's; none
// without a deadline), the metrics label, and the end of a call whose
// deadline has already passed (nobody is called).
struct call_start {
  std::size_t worker;
  clock::time_point start;
  std::string label;

  // Counts the call's end in the client's metrics.
  void record(std::string_view outcome) const
  {
    auto& m = client_families();
    m.calls.with({label, outcome}).inc();
    m.duration.with({label}).observe(std::chrono::duration<double>(clock::now() - start).count());
  }
};

call_start begin_call(const client::state& st, const std::string& method, const url_parts& u, std::string_view name,
  request_options& options, clock::time_point start, clock::time_point deadline)
{
  auto worker = runtime::current_worker();
  if (!worker || runtime::current() != &st.rt)
    throw std::logic_error("http::client called from outside its runtime's workers");
  if (deadline != clock::time_point::max() && !options.headers.contains("X-Request-Timeout-Ms")) {
    auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - start);
    options.headers.add("X-Request-Timeout-Ms", std::to_string(std::max<std::int64_t>(left.count(), 0)));
  }
  call_start c{*worker, start, !options.name.empty() ? options.name : !name.empty() ? std::string(name) : u.key};
  if (deadline <= start) {
    c.record("timeout");
    detail::count_deadline_exceeded(c.label);
    throw client_error(client_errc::timeout, fmt::format("{} {}{}: the deadline passed before the call",
      method, u.key, u.target));
  }
  return c;
}

// Every call, by URL or through an upstream: its deadline, the replica set
// it goes to (made on this worker's first call), the policies over it, and
// the metrics of the whole call.
task<client_response> send_call(std::shared_ptr<client::state> st, std::string_view key,
  std::vector<url_parts> (*origins)(const void* of, const url_parts& u), const void* of, std::string method, url_parts u, std::string_view name,
  request_options options)
{
  const auto start = clock::now();
  auto budget = options.timeout.count() > 0 ? options.timeout : st->options.request_timeout;
  auto deadline = start + budget;
  if (options.deadline && *options.deadline < deadline)
    deadline = *options.deadline;
  const auto call = begin_call(*st, method, u, name, options, start, deadline);
  try {
    auto set = st->find_set(call.worker, key);
    if (!set)
      set = st->add_set(call.worker, std::string(key), origins(of, u), call.label);
    auto op = detail::call_replicas(st, call.worker, std::move(set), method, u, options, deadline, call.label);
    auto r = co_await std::move(op);
    // A 504 once the deadline has passed is the server's end of the deadline
    // this call carried: the same timeout as this side's, whichever fired first.
    if (r.status == 504 && clock::now() >= deadline)
      throw client_error(client_errc::timeout, fmt::format("{} {}{}: no response in time", method, u.key, u.target));
    call.record(outcome_of(r.status));
    co_return r;
  } catch (const client_error& e) {
    call.record(to_string(e.kind()));
    if (e.kind() == client_errc::timeout && std::string_view(e.what()).ends_with("no response in time"))
      throw client_error(client_errc::timeout, fmt::format("{} {}{}: no response within {} ms", method, u.key,
        u.target, std::chrono::duration_cast<std::chrono::milliseconds>(deadline - start).count()));
    throw;
  }
}

// A URL's replica set: its own origin.
std::vector<url_parts> own_origin(const void*, const url_parts& called)
{
  url_parts o = called;
  o.target = "/";
  return {std::move(o)};
}

} // namespace

task<client_response> client::send(std::string method, std::string url, request_options options)
{
  url_parts u = parse_url(url);
  std::string key = u.key;
  co_return co_await send_call(state_, key, own_origin, nullptr, std::move(method), std::move(u), {},
    std::move(options));
}

task<client_stream> client::stream(std::string method, std::string url, request_options options)
{
  auto st = state_;
  url_parts u = parse_url(url);
  const auto start = clock::now();
  auto deadline = options.timeout.count() > 0 ? start + options.timeout : clock::time_point::max();
  if (options.deadline)
    deadline = std::min(deadline, *options.deadline);
  const auto call = begin_call(*st, method, u, {}, options, start, deadline);
  const auto& label = call.label;
  std::shared_ptr<detail::stream_call> s;
  try {
    auto set = st->find_set(call.worker, u.key);
    if (!set)
      set = st->add_set(call.worker, u.key, own_origin(nullptr, u), label);
    auto op = detail::stream_replicas(st, call.worker, std::move(set), method, u, options, deadline, label);
    s = co_await std::move(op);
  } catch (const client_error& e) {
    call.record(to_string(e.kind()));
    throw;
  }
  s->on_end = [call](std::string_view outcome) { call.record(outcome); };
  co_return client_stream(std::move(s));
}

upstream::upstream(client& c, const std::vector<std::string>& urls, std::string name)
  : state_(c.state_), name_(std::move(name))
{
  if (urls.empty())
    throw client_error(client_errc::bad_url, fmt::format("upstream '{}': no URLs", name_));
  key_ = "upstream";
  for (auto url : urls) {
    while (url.size() > 1 && url.back() == '/')
      url.pop_back();
    auto u = parse_url(url);
    if (u.target != "/")
      throw client_error(client_errc::bad_url, fmt::format("bad URL '{}': an upstream's URLs name origins "
        "(http://host:port), without a path", url));
    key_.append(" ").append(u.key);
    urls_.push_back(std::move(url));
  }
  if (name_.empty())
    name_ = parse_url(urls_.front()).key;
}

task<client_response> upstream::get(std::string path, request_options options)
{
  return send("GET", std::move(path), std::move(options));
}

task<client_response> upstream::post(std::string path, std::string body, request_options options)
{
  options.body = std::move(body);
  return send("POST", std::move(path), std::move(options));
}

task<client_response> upstream::send(std::string method, std::string path, request_options options)
{
  if (path.empty() || (path.front() != '/' && path.front() != '?'))
    path.insert(0, "/");
  url_parts u = parse_url(urls_.front() + path);
  auto origins = [](const void* of, const url_parts&) {
    std::vector<url_parts> all;
    for (auto& url : static_cast<const upstream*>(of)->urls_)
      all.push_back(parse_url(url));
    return all;
  };
  co_return co_await send_call(state_, key_, origins, this, std::move(method), std::move(u), name_,
    std::move(options));
}

client::pool_stats client::stats() const
{
  pool_stats s;
  s.connects = state_->connects.load(std::memory_order_relaxed);
  s.reuses = state_->reuses.load(std::memory_order_relaxed);
  s.retries = state_->retries.load(std::memory_order_relaxed);
  s.resumed = state_->resumed.load(std::memory_order_relaxed);
  s.http2 = state_->http2.load(std::memory_order_relaxed);
  for (auto& n : state_->idle_counts)
    s.idle += n.load(std::memory_order_relaxed);
  return s;
}

request_options call_options(const request& req)
{
  request_options o;
  if (req.deadline != clock::time_point::max())
    o.deadline = req.deadline;
  if (!req.id.empty())
    o.headers.add("X-Request-Id", req.id);
  if (auto child = child_traceparent(req.traceparent); !child.empty()) // the same trace, a new span
    o.headers.add("traceparent", std::move(child));
  return o;
}

} // namespace coronet::http
