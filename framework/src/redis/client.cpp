#include <coronet/redis/client.hpp>

#include "redis/connection.hpp"

#include <coronet/detail/pool.hpp>
#include <coronet/metrics.hpp>
#include <coronet/net/tls.hpp>
#include <coronet/runtime.hpp>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <deque>
#include <exception>
#include <unordered_map>

namespace coronet::redis {

std::string command::format_double(double v)
{
  return fmt::format("{}", v);
}

void options::parse_url(std::string_view url, options& o)
{
  auto bad = [&](std::string_view why) {
    return config_error(fmt::format("'{}' {}; e.g. redis://:password@localhost:6379/0", url, why));
  };
  std::string_view rest;
  if (url.starts_with("redis://"))
    rest = url.substr(8);
  else if (url.starts_with("rediss://"))
    rest = url.substr(9), o.tls = true;
  else
    throw bad("is not a redis:// or rediss:// URL");
  auto slash = rest.find('/');
  auto authority = rest.substr(0, slash);
  if (auto at = authority.rfind('@'); at != std::string_view::npos) {
    auto userinfo = authority.substr(0, at);
    authority = authority.substr(at + 1);
    auto colon = userinfo.find(':');
    o.user = std::string(userinfo.substr(0, colon));
    o.password = colon == std::string_view::npos ? std::string() : std::string(userinfo.substr(colon + 1));
    if (colon == std::string_view::npos)
      std::swap(o.user, o.password); // redis://password@host
  }
  std::string_view port;
  if (authority.starts_with('[')) { // [::1]:6379
    auto close = authority.find(']');
    if (close == std::string_view::npos)
      throw bad("has an unclosed '['");
    o.host = std::string(authority.substr(1, close - 1));
    if (close + 1 < authority.size() && authority[close + 1] == ':')
      port = authority.substr(close + 2);
  } else {
    auto colon = authority.rfind(':');
    o.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos)
      port = authority.substr(colon + 1);
  }
  if (o.host.empty())
    throw bad("names no host");
  auto number = [&](std::string_view text, long max, std::string_view what) {
    long v = -1;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (ec != std::errc{} || end != text.data() + text.size() || v < 0 || v > max)
      throw bad(fmt::format("has a bad {} '{}'", what, text));
    return v;
  };
  if (!port.empty())
    o.port = static_cast<std::uint16_t>(number(port, 65535, "port"));
  if (slash != std::string_view::npos && slash + 1 < rest.size())
    o.db = static_cast<int>(number(rest.substr(slash + 1), 1 << 20, "database number"));
}

options options::from(const config& cfg, std::string_view url_key)
{
  options o;
  auto url = cfg.get_string(url_key);
  if (url.empty())
    throw config_error(fmt::format("{}: empty; name the server, e.g. redis://localhost:6379", url_key));
  try {
    parse_url(url, o);
  } catch (const config_error& e) {
    throw config_error(fmt::format("{}: {}", url_key, e.what()));
  }
  o.pool_size = static_cast<std::size_t>(cfg.get_int("redis.pool_size"));
  o.connect_timeout = cfg.get_ms("redis.connect_timeout_ms");
  o.command_timeout = cfg.get_ms("redis.command_timeout_ms");
  o.tls_ca = cfg.get_string("redis.tls_ca");
  o.tls_cert = cfg.get_string("redis.tls_cert");
  o.tls_key = cfg.get_string("redis.tls_key");
  return o;
}

namespace {

struct redis_metrics {
  coronet::detail::pool_gauges pool;
  metrics::family<metrics::histogram>& duration;
  metrics::family<metrics::counter>& errors;
};

redis_metrics& families()
{
  static redis_metrics m = [] {
    auto& r = metrics::registry::global();
    auto& conns = r.gauges("coronet_redis_connections", "Redis connections of every worker's pool, in use or idle.",
      {"state"});
    return redis_metrics{{conns.with({"in_use"}), conns.with({"idle"}),
      r.gauges("coronet_redis_waiting", "Calls waiting for a free Redis connection.").with({})},
      r.histograms("coronet_redis_command_duration_seconds", "Redis calls by their first command, from taking a "
        "connection to the last reply.", {"command"}),
      r.counters("coronet_redis_errors_total", "Failed Redis calls by kind (redis::errc).", {"kind"})};
  }();
  return m;
}

// A TLS context for rediss://, from the redis.tls_* keys.
std::shared_ptr<asio::ssl::context> tls_context(const options& o)
{
  if (!o.tls)
    return nullptr;
  net::tls_client_options t;
  t.ca_file = o.tls_ca;
  t.cert_file = o.tls_cert;
  t.key_file = o.tls_key;
  t.alpn.clear();
  try {
    return net::make_client_tls(t);
  } catch (const config_error& e) {
    std::string m = e.what(); // names the client.* keys: say which redis.* key it was
    for (auto [from, to] : {std::pair{"client.ca_file", "redis.tls_ca"}, std::pair{"client.cert_file", "redis.tls_cert"},
           std::pair{"client.key_file", "redis.tls_key"}})
      if (auto at = m.find(from); at != std::string::npos)
        m.replace(at, std::string_view(from).size(), to);
    throw config_error(m);
  }
}

} // namespace

// One worker's connections.
struct worker_pool : coronet::detail::worker_pool<detail::connection> {
  coronet::detail::series_cache durations{256}; // by the first command's name, as the call spells it

  metrics::histogram& duration_of(std::string_view name)
  {
    return durations.get(families().duration, name, [](std::string_view n) {
      std::string label(n.substr(0, 32));
      std::transform(label.begin(), label.end(), label.begin(), [](unsigned char c) { return std::toupper(c); });
      return label;
    });
  }
};

struct client::state {
  state(runtime& r, options o) : rt(r), opts(std::move(o)), tls(tls_context(opts)), pools(r.size()) {}
  ~state() { worker_pool::forget_idle(pools, families().pool); }

  runtime& rt;
  options opts;
  std::shared_ptr<asio::ssl::context> tls;
  std::vector<worker_pool> pools;

  clock::time_point call_deadline() const
  {
    auto t = opts.command_timeout;
    return t.count() > 0 ? clock::now() + t : clock::time_point::max();
  }
  clock::time_point connect_deadline(clock::time_point call) const
  {
    return std::min(call, clock::now() + opts.connect_timeout);
  }
};

namespace {

std::size_t this_worker(const runtime& rt)
{
  return coronet::detail::worker_of(rt, "redis::client");
}

// A connection of one worker's pool for one call; given back at its end.
struct lease {
  std::shared_ptr<client::state> st;
  std::size_t worker = 0;
  std::unique_ptr<detail::connection> conn;
  bool reused = false; // taken from the idle ones: it may have gone stale

  lease() = default;
  lease(lease&&) noexcept = default;
  lease& operator=(lease&&) = delete;
  ~lease()
  {
    if (!st)
      return;
    if (conn)
      conn->given_back();
    st->pools[worker].give_back(std::move(conn), families().pool);
  }
};

task<lease> acquire(const std::shared_ptr<client::state>& st, clock::time_point deadline)
{
  lease l;
  l.worker = this_worker(st->rt);
  auto open = [&] { return detail::connection::open(st->opts, st->tls, st->connect_deadline(deadline)); };
  auto got = co_await st->pools[l.worker].take(st->opts.pool_size, deadline, families().pool, open);
  if (!got.conn)
    throw error(errc::timeout, fmt::format("no Redis connection free before the deadline (all {} of this "
      "worker's are busy: redis.pool_size)", st->opts.pool_size));
  l.conn = std::move(got.conn);
  l.reused = got.reused;
  l.st = st;
  co_return l;
}

void count_error(const std::exception_ptr& e)
{
  coronet::detail::count_error<error>(families().errors, e);
}

// The batch on a connection of this worker's pool. A connection that had
// sat idle and broke before any reply came is one the server closed while
// it waited: the call is made once more, on a new one.
task<std::vector<reply>> call_pool(const std::shared_ptr<client::state>& st, std::span<const command> batch)
{
  const auto start = clock::now();
  const auto deadline = st->call_deadline();
  auto& duration = st->pools[this_worker(st->rt)].duration_of(batch.empty() ? "" : batch.front().name());
  std::exception_ptr failure;
  for (int attempt = 0; attempt < 2; ++attempt) {
    bool again = false;
    try {
      auto l = co_await acquire(st, deadline);
      try {
        auto out = co_await l.conn->round_trip(batch, deadline);
        duration.observe(std::chrono::duration<double>(clock::now() - start).count());
        co_return out;
      } catch (const error& e) {
        again = attempt == 0 && l.reused && e.kind() == errc::connection && !l.conn->heard_back();
        if (!again)
          throw;
        spdlog::debug("Redis: a pooled connection had gone ({}); the call is made again", e.what());
      }
    } catch (...) {
      failure = std::current_exception();
    }
    if (!again)
      break;
  }
  count_error(failure);
  std::rethrow_exception(failure);
}

} // namespace

client::client(runtime& rt, options o) : state_(std::make_shared<state>(rt, std::move(o)))
{
  families();
}

client::~client() = default;

task<reply> client::run(redis::command c)
{
  auto replies = co_await call_pool(state_, std::span(&c, 1));
  auto& r = replies.front();
  if (r.is_error()) {
    families().errors.with({to_string(errc::server)}).inc();
    throw error(errc::server, fmt::format("Redis {}: {}", c.name(), r.text));
  }
  co_return std::move(r);
}

task<std::vector<reply>> client::pipeline(std::vector<redis::command> batch)
{
  co_return co_await call_pool(state_, batch);
}

task<std::vector<reply>> client::transaction(std::vector<redis::command> batch)
{
  std::vector<redis::command> all;
  all.reserve(batch.size() + 2);
  all.emplace_back("MULTI");
  for (auto& c : batch)
    all.push_back(std::move(c));
  all.emplace_back("EXEC");
  auto replies = co_await call_pool(state_, all);
  auto& exec = replies.back();
  if (exec.type == reply::kind::array)
    co_return std::move(exec.elements);
  // EXECABORT: say which command Redis refused to queue, and why.
  std::string why = exec.is_nil() ? "aborted (a WATCHed key changed)" : exec.text;
  for (std::size_t i = 1; i + 1 < replies.size(); ++i)
    if (replies[i].is_error()) {
      why = fmt::format("{} refused: {}", all[i].name(), replies[i].text);
      break;
    }
  families().errors.with({to_string(errc::server)}).inc();
  throw error(errc::server, fmt::format("Redis MULTI/EXEC: {}", why));
}

task<std::optional<std::string>> client::get(std::string key)
{
  redis::command c{"GET", key}; // a local: GCC 12 destroys a temporary in a co_await twice
  auto r = co_await run(std::move(c));
  co_return r.as_string();
}

task<void> client::set(std::string key, std::string value, std::chrono::milliseconds ttl)
{
  redis::command c{"SET", key, value};
  if (ttl.count() > 0)
    c.add("PX").add(ttl.count());
  co_await run(std::move(c));
}

task<std::int64_t> client::del(std::string key)
{
  redis::command c{"DEL", key};
  auto r = co_await run(std::move(c));
  co_return r.as_integer();
}

task<std::int64_t> client::publish(std::string channel, std::string payload)
{
  redis::command c{"PUBLISH", channel, payload};
  auto r = co_await run(std::move(c));
  co_return r.as_integer();
}

namespace {

// SUBSCRIBE (PSUBSCRIBE) on `c`, and its confirmations read.
task<void> subscribe_on(detail::connection& c, const std::vector<std::string>& names, bool patterns,
  clock::time_point deadline)
{
  redis::command sub{patterns ? "PSUBSCRIBE" : "SUBSCRIBE"};
  for (auto& n : names)
    sub.add(n);
  co_await c.send(std::span(&sub, 1), deadline);
  for (std::size_t i = 0; i < names.size(); ++i) {
    auto r = co_await c.next(deadline);
    if (r.is_error())
      throw error(errc::server, fmt::format("Redis {}: {}", sub.name(), r.text));
  }
}

// A published message, from the reply that carries it; nullopt for others.
std::optional<message> message_of(reply r)
{
  auto& e = r.elements;
  if (r.type != reply::kind::array || e.empty())
    return std::nullopt;
  if (e[0].text == "message" && e.size() == 3)
    return message{std::move(e[1].text), std::move(e[2].text), {}};
  if (e[0].text == "pmessage" && e.size() == 4)
    return message{std::move(e[2].text), std::move(e[3].text), std::move(e[1].text)};
  return std::nullopt;
}

} // namespace

task<subscription> client::start_subscription(std::vector<std::string> names, bool patterns, std::size_t buffer)
{
  this_worker(state_->rt);
  if (names.empty())
    throw std::invalid_argument("redis: subscribe to at least one channel");
  auto deadline = state_->connect_deadline(state_->call_deadline());
  auto conn = co_await detail::connection::open(state_->opts, state_->tls, deadline);
  co_await subscribe_on(*conn, names, patterns, deadline);
  auto what = fmt::format("Redis: subscription to {} {}", names.size(), patterns ? "patterns" : "channels");
  auto reopen = [cl = state_, names = std::move(names), patterns]() -> task<std::unique_ptr<detail::connection>> {
    auto deadline = cl->connect_deadline(cl->call_deadline());
    auto c = co_await detail::connection::open(cl->opts, cl->tls, deadline);
    co_await subscribe_on(*c, names, patterns, deadline);
    co_return c;
  };
  auto receive = [](detail::connection& c, coronet::channel<message>& out) -> task<void> {
    auto r = co_await c.next(clock::time_point::max());
    if (auto m = message_of(std::move(r)))
      co_await out.send(std::move(*m));
  };
  auto st = std::make_shared<coronet::detail::feed_state<message>>(buffer);
  coronet::spawn(coronet::detail::feed_loop(st, std::move(conn), std::move(reopen), receive, std::move(what)),
    st->stop.slot());
  co_return subscription{coronet::detail::feed<message>{st}};
}

task<subscription> client::subscribe(std::vector<std::string> channels, std::size_t buffer)
{
  return start_subscription(std::move(channels), false, buffer);
}

task<subscription> client::psubscribe(std::vector<std::string> patterns, std::size_t buffer)
{
  return start_subscription(std::move(patterns), true, buffer);
}

} // namespace coronet::redis
