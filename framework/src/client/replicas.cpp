// Calls over replicas: which replica a call goes to (power of two choices
// on the calls in flight), which are left out (outlier ejection), and what
// happens when an attempt fails (another replica at once when nothing was
// sent; a retry within the budget when the call may be repeated) or is slow
// (a hedge to another replica, the first answer winning).
#include "client/replicas.hpp"

#include "client/pool.hpp"

#include <coronet/runtime.hpp>
#include <coronet/sync/select.hpp>
#include <coronet/sync/task_group.hpp>

#include <asio/experimental/as_tuple.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/use_awaitable.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <exception>
#include <random>

namespace coronet::http {

namespace detail {

host_pool::host_pool(asio::ip::tcp::endpoint to, std::size_t max_connections) : endpoint(to), slots(max_connections)
{
  for (std::size_t i = 0; i < max_connections; ++i)
    slots.try_send(std::monostate{});
  auto ip = to.address().to_string();
  address = to.address().is_v6() ? fmt::format("[{}]:{}", ip, to.port()) : fmt::format("{}:{}", ip, to.port());
}

replica::replica(std::size_t from, asio::ip::tcp::endpoint to, std::size_t max_connections)
  : origin(from), pool(to, max_connections)
{
}

replica_set::replica_set(std::string l, std::vector<url_parts> from, retry_budget b, std::size_t on)
  : label(std::move(l)), budget(b), worker(on)
{
  for (auto& u : from) {
    origin_entry e;
    std::error_code not_ip;
    asio::ip::make_address(u.host, not_ip);
    e.literal = !not_ip;
    e.u = std::move(u);
    origins.push_back(std::move(e));
  }
}

void replica_set::observe(clock::duration took) noexcept
{
  auto us = std::chrono::duration_cast<std::chrono::microseconds>(took).count();
  took_us_[observed_ % took_us_.size()] = static_cast<std::uint32_t>(std::clamp<std::int64_t>(us, 0, UINT32_MAX));
  ++observed_;
  if (observed_ % 32 != 0)
    return;
  auto n = std::min(observed_, took_us_.size());
  std::array<std::uint32_t, 256> sorted{};
  std::copy_n(took_us_.begin(), n, sorted.begin());
  auto at = sorted.begin() + static_cast<std::ptrdiff_t>(n * 95 / 100);
  std::nth_element(sorted.begin(), at, sorted.begin() + static_cast<std::ptrdiff_t>(n));
  p95_ = std::max<clock::duration>(std::chrono::microseconds{*at}, std::chrono::milliseconds{1});
}

void retry_budget::advance(clock::time_point now) noexcept
{
  auto second = std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count();
  if (second <= second_)
    return;
  // The buckets of the seconds passed since the last call expire.
  for (auto s = std::max(second_ + 1, second - window + 1); s <= second; ++s) {
    auto i = static_cast<std::size_t>(((s % window) + window) % window);
    calls_[i] = 0;
    retries_[i] = 0;
  }
  second_ = second;
}

void retry_budget::deposit(clock::time_point now) noexcept
{
  advance(now);
  ++calls_[static_cast<std::size_t>(((second_ % window) + window) % window)];
}

bool retry_budget::withdraw(clock::time_point now) noexcept
{
  advance(now);
  double calls = 0, retries = 0;
  for (int i = 0; i < window; ++i) {
    calls += calls_[static_cast<std::size_t>(i)];
    retries += retries_[static_cast<std::size_t>(i)];
  }
  if (retries + 1 > calls * percent_ / 100.0 + reserve_)
    return false;
  ++retries_[static_cast<std::size_t>(((second_ % window) + window) % window)];
  return true;
}

namespace {

struct policy_metrics {
  metrics::family<metrics::counter>& attempts;
  metrics::family<metrics::counter>& retries;
  metrics::family<metrics::counter>& retries_denied;
  metrics::family<metrics::counter>& hedges;
  metrics::family<metrics::counter>& ejections;
  metrics::family<metrics::gauge>& ejected;
  metrics::family<metrics::counter>& expired;
};

policy_metrics& policy_families()
{
  auto& r = metrics::registry::global();
  static policy_metrics m{
    r.counters("coronet_http_client_attempts_total",
      "HTTP client attempts by target, replica and outcome (status class, or the error); retries and hedges "
      "included.", {"target", "replica", "outcome"}),
    r.counters("coronet_http_client_retries_total",
      "HTTP client attempts made again, by target and why: connect (another replica at once), stale (a pooled "
      "connection the server had closed, or an HTTP/2 stream it did not process: at once, on a new connection), "
      "reset, 502, 503, 504.",
      {"target", "reason"}),
    r.counters("coronet_http_client_retries_denied_total",
      "HTTP client retries and hedges the retry budget refused, by target.", {"target"}),
    r.counters("coronet_http_client_hedges_total",
      "HTTP client hedged attempts by target: sent, and won (the hedge answered first).", {"target", "event"}),
    r.counters("coronet_http_client_ejections_total", "Replicas ejected for failing, by target and replica.",
      {"target", "replica"}),
    r.gauges("coronet_http_client_ejected_replicas",
      "Replicas ejected now, by target (summed over workers: each worker ejects on its own).", {"target"}),
    r.counters("coronet_http_client_deadline_exceeded_total",
      "HTTP client calls not made because their deadline had already passed, by target.", {"target"})};
  return m;
}

std::string_view outcome_of(int status) noexcept
{
  static constexpr std::string_view classes[] = {"0xx", "1xx", "2xx", "3xx", "4xx", "5xx"};
  return status >= 100 && status < 600 ? classes[status / 100] : "other";
}

clock::time_point never() noexcept
{
  return clock::time_point{};
}

// Makes the replica list match the addresses one origin's name resolved
// to: new ones added, ones no longer given dropped (a call in flight keeps
// its replica; the idle connections go with it), the rest kept with their
// connections and health.
void merge(client::state& st, replica_set& set, std::size_t origin, const std::vector<asio::ip::tcp::endpoint>& found)
{
  auto& all = set.replicas;
  std::erase_if(all, [&](const std::shared_ptr<replica>& r) {
    bool gone = r->origin == origin && std::find(found.begin(), found.end(), r->pool.endpoint) == found.end();
    if (!gone)
      return false;
    if (r->ejected_until != never()) {
      --set.ejected;
      policy_families().ejected.with({set.label}).add(-1);
    }
    st.idle_counts[set.worker].fetch_sub(r->pool.idle.size(), std::memory_order_relaxed);
    r->pool.idle.clear();
    return true;
  });
  for (auto& e : found) {
    bool known = std::any_of(all.begin(), all.end(),
      [&](auto& r) { return r->origin == origin && r->pool.endpoint == e; });
    if (!known)
      all.push_back(std::make_shared<replica>(origin, e, st.options.max_connections_per_host));
  }
}

task<std::vector<asio::ip::tcp::endpoint>> resolve(const client::state& st, const url_parts& u)
{
  std::vector<asio::ip::tcp::endpoint> found;
  if (st.options.resolve) {
    for (auto& e : st.options.resolve(u.host, u.port))
      if (std::find(found.begin(), found.end(), e) == found.end())
        found.push_back(e);
    if (found.empty())
      throw client_error(client_errc::resolve_failed, fmt::format("{}: cannot resolve: no address", u.key));
    co_return found;
  }
  auto executor = co_await asio::this_coro::executor;
  asio::ip::tcp::resolver resolver{executor};
  auto [ec, results] = co_await resolver.async_resolve(u.host, std::to_string(u.port),
    asio::experimental::as_tuple(asio::use_awaitable));
  if (ec)
    throw client_error(client_errc::resolve_failed, fmt::format("{}: cannot resolve: {}", u.key, ec.message()));
  for (auto& r : results)
    if (std::find(found.begin(), found.end(), r.endpoint()) == found.end())
      found.push_back(r.endpoint());
  co_return found;
}

// A refresh in the background: calls go on with the replicas known.
task<void> refresh(std::shared_ptr<client::state> st, std::shared_ptr<replica_set> set, std::size_t origin)
{
  try {
    auto found = co_await resolve(*st, set->origins[origin].u);
    merge(*st, *set, origin, found);
  } catch (const client_error& e) {
    spdlog::warn("{}: keeping the {} replicas known: {}", set->label, set->replicas.size(), e.what());
  }
  set->origins[origin].resolved_at = st->now();
  set->origins[origin].resolving = false;
}

// Every origin resolved at least once (the first call waits for it), and
// those due resolved again in the background.
task<void> resolve_due(const std::shared_ptr<client::state>& st, const std::shared_ptr<replica_set>& set)
{
  auto now = st->now();
  for (std::size_t i = 0; i < set->origins.size(); ++i) {
    auto& o = set->origins[i];
    if (o.resolved_at == never()) {
      std::vector<asio::ip::tcp::endpoint> found;
      if (o.literal) {
        found.emplace_back(asio::ip::make_address(o.u.host), o.u.port);
      } else {
        try {
          auto op = resolve(*st, o.u);
          found = co_await std::move(op);
        } catch (const client_error&) {
          if (set->origins.size() == 1)
            throw; // nothing to call
          spdlog::warn("{}: {} does not resolve; calling the other replicas", set->label, o.u.key);
          continue;
        }
      }
      if (set->origins[i].resolved_at == never()) { // not done meanwhile by a concurrent first call
        merge(*st, *set, i, found);
        set->origins[i].resolved_at = now;
      }
    } else if (!o.literal && !o.resolving && now - o.resolved_at >= st->options.dns_refresh) {
      o.resolving = true;
      spawn(refresh(st, set, i));
    }
  }
  if (set->replicas.empty())
    throw client_error(client_errc::resolve_failed, fmt::format("{}: no replica resolves", set->label));
}

// The replicas a call has tried, so that a retry goes elsewhere.
struct tried_list {
  std::array<const replica*, 8> at{};
  std::size_t n = 0;
  void add(const replica* r) noexcept
  {
    if (n < at.size() && !has(r))
      at[n++] = r;
  }
  bool has(const replica* r) const noexcept { return std::find(at.begin(), at.begin() + n, r) != at.begin() + n; }
};

// An ejected replica whose time is up goes on probation: one call at a time
// until one succeeds.
void end_ejections(replica_set& set, clock::time_point now)
{
  if (set.ejected == 0)
    return;
  for (auto& r : set.replicas)
    if (r->ejected_until != never() && now >= r->ejected_until) {
      r->ejected_until = never();
      r->probation = true;
      r->probing = false;
      --set.ejected;
      policy_families().ejected.with({set.label}).add(-1);
    }
}

bool usable(const replica& r) noexcept
{
  return r.ejected_until == never() && !(r.probation && r.probing);
}

// Power of two choices: of two replicas taken at random among those usable
// and not yet tried, the one with fewer calls in flight. When every usable
// one was tried, the least loaded of them; when none is usable, the least
// loaded of all (a call is never failed here for want of a healthy replica).
std::shared_ptr<replica> pick(client::state& st, replica_set& set, const tried_list& tried)
{
  end_ejections(set, st.now());
  thread_local std::vector<replica*> fresh;
  fresh.clear();
  for (auto& r : set.replicas)
    if (usable(*r) && !tried.has(r.get()))
      fresh.push_back(r.get());
  replica* chosen = nullptr;
  if (fresh.size() == 1) {
    chosen = fresh[0];
  } else if (fresh.size() > 1) {
    auto n = fresh.size();
    auto a = std::min(n - 1, static_cast<std::size_t>(st.random() * static_cast<double>(n)));
    auto b = std::min(n - 2, static_cast<std::size_t>(st.random() * static_cast<double>(n - 1)));
    if (b >= a)
      ++b;
    chosen = fresh[b]->outstanding < fresh[a]->outstanding ? fresh[b] : fresh[a];
  } else {
    auto least = [&](bool only_usable) {
      replica* best = nullptr;
      for (auto& r : set.replicas)
        if ((!only_usable || usable(*r)) && (!best || r->outstanding < best->outstanding))
          best = r.get();
      return best;
    };
    chosen = least(true);
    if (!chosen)
      chosen = least(false);
  }
  if (!chosen)
    return nullptr;
  if (chosen->probation)
    chosen->probing = true;
  for (auto& r : set.replicas)
    if (r.get() == chosen)
      return r;
  return nullptr;
}

void eject(client::state& st, replica_set& set, replica& r, clock::time_point now)
{
  auto& o = st.options;
  // At most max_ejected_percent of the replicas, so that a bad spell on
  // every replica does not leave none to call.
  if ((set.ejected + 1) * 100 > static_cast<std::size_t>(o.max_ejected_percent) * set.replicas.size()) {
    r.probation = false;
    r.probing = false;
    return;
  }
  auto length = o.eject_time * (1LL << std::min(r.ejections, 10u));
  r.ejected_until = now + length;
  ++r.ejections;
  r.failures = 0;
  r.probation = false;
  r.probing = false;
  ++set.ejected;
  auto& m = policy_families();
  m.ejections.with({set.label, r.pool.address}).inc();
  m.ejected.with({set.label}).add(1);
  spdlog::warn("{}: replica {} ejected for {} ms after failing", set.label, r.pool.address,
    std::chrono::duration_cast<std::chrono::milliseconds>(length).count());
}

void succeeded(replica& r) noexcept
{
  r.failures = 0;
  r.ejections = 0;
  r.probation = false;
  r.probing = false;
}

void failed(client::state& st, replica_set& set, replica& r)
{
  ++r.failures;
  if (r.ejected_until != never())
    return; // already out: calls picked before the ejection are still ending
  auto limit = st.options.eject_after_failures;
  if (r.probation || (limit > 0 && r.failures >= limit))
    eject(st, set, r, st.now());
}

// What one attempt came to.
struct attempt_result {
  std::optional<client_response> response;
  std::exception_ptr error;
  attempt_error::stage where = attempt_error::stage::response;
  bool cancelled = false;
  replica* from = nullptr;
  bool hedge = false;
  bool retry_answer = false; // request_options::retry_answer said so of the response
};

bool gateway_failure(int status) noexcept
{
  return status == 502 || status == 503 || status == 504;
}

// The exchange, and once more on a new connection when the first met a
// stale pooled connection (an idempotent call) or an HTTP/2 stream the
// server did not process (any call). Nothing reached the application, so
// this retry is outside the budget and max_retries, and is not a failure of
// the replica.
task<client_response> exchange_or_again(client::state& st, std::size_t worker, replica& r, const std::string& method,
  const url_parts& u, const request_options& o, clock::time_point deadline, bool* connecting, const std::string& label)
{
  using stage = attempt_error::stage;
  for (bool fresh = false;; fresh = true) {
    try {
      co_return co_await exchange(st, worker, r.pool, method, u, o, deadline, connecting, fresh);
    } catch (const attempt_error& e) {
      const bool again = e.where == stage::unprocessed || (e.where == stage::stale && idempotent(method));
      if (fresh || !again)
        throw;
    }
    st.retries.fetch_add(1, std::memory_order_relaxed);
    policy_families().retries.with({label, "stale"}).inc();
  }
}

// What an attempt's failure says of its replica's health: connect
// failures, resets, timeouts and TLS failures count against it.
void count_failure(client::state& st, replica_set& set, replica& r, attempt_result& out)
{
  auto& m = policy_families();
  try {
    std::rethrow_exception(out.error);
  } catch (const attempt_error& e) {
    out.where = e.where;
    m.attempts.with({set.label, r.pool.address, to_string(e.kind())}).inc();
    failed(st, set, r);
  } catch (const client_error& e) {
    m.attempts.with({set.label, r.pool.address, to_string(e.kind())}).inc();
    if (e.kind() == client_errc::timeout || e.kind() == client_errc::tls)
      failed(st, set, r);
  } catch (const std::system_error& e) {
    // Cancelled: a hedge that lost, or a caller gone.
    out.cancelled = e.code() == asio::error::operation_aborted;
  } catch (...) {
  }
}

// One attempt on replica `r`: counted in its load while it runs, and its
// outcome counted in its health (an attempt cancelled, a hedge that lost or
// a caller gone, counts for nothing).
task<attempt_result> attempt(client::state& st, std::size_t worker, replica_set& set, replica& r,
  const std::string& method, const url_parts& called, const request_options& o, clock::time_point deadline,
  const std::string& label, bool* connecting = nullptr)
{
  struct in_flight {
    replica& r;
    explicit in_flight(replica& of) : r(of) { ++r.outstanding; }
    ~in_flight() { --r.outstanding; }
  } counting{r};
  attempt_result out;
  out.from = &r;
  // The replica's own origin (Host, SNI) with the path called; no copy
  // when it is the URL's own.
  const url_parts& origin = set.origins[r.origin].u;
  std::optional<url_parts> elsewhere;
  if (origin.key != called.key) {
    elsewhere = origin;
    elsewhere->target = called.target;
  }
  const url_parts& u = elsewhere ? *elsewhere : called;
  try {
    const auto start = clock::now();
    auto op = exchange_or_again(st, worker, r, method, u, o, deadline, connecting, label);
    out.response = co_await std::move(op);
    out.retry_answer = o.retry_answer && o.retry_answer(*out.response);
    policy_families().attempts.with({set.label, r.pool.address, outcome_of(out.response->status)}).inc();
    if (out.response->status >= 500) {
      failed(st, set, r);
    } else {
      succeeded(r);
      set.observe(clock::now() - start);
    }
  } catch (...) {
    out.error = std::current_exception();
  }
  if (out.error)
    count_failure(st, set, r, out);
  // A probe that came to nothing either way (cancelled, a malformed
  // answer...): the next call may probe again.
  r.probing = false;
  co_return out;
}

// While any replica of the set has idle connections: every so often, the
// expired ones and those the server closed are closed (an idle client holds
// no descriptor past client.idle_timeout).
task<void> sweep(std::shared_ptr<client::state> st, std::shared_ptr<replica_set> set, std::size_t worker)
{
  auto every = std::clamp<clock::duration>(st->options.idle_timeout / 2, std::chrono::milliseconds{100},
    std::chrono::seconds{5});
  for (;;) {
    co_await sleep_for(every);
    std::size_t idle = 0;
    for (auto& r : set->replicas)
      idle += sweep_idle(*st, worker, r->pool);
    if (idle == 0)
      break;
  }
  set->sweeping = false;
}

void start_sweeping(const std::shared_ptr<client::state>& st, const std::shared_ptr<replica_set>& set,
  std::size_t worker)
{
  if (set->sweeping || std::none_of(set->replicas.begin(), set->replicas.end(), [](auto& r) {
        return !r->pool.idle.empty();
      }))
    return;
  set->sweeping = true;
  spawn(sweep(st, set, worker));
}

// What a hedged call's attempts share; they may outlive the call (a
// cancelled loser ends when its cancellation lands).
struct hedge_call {
  std::shared_ptr<client::state> st;
  std::shared_ptr<replica_set> set;
  std::size_t worker;
  std::string method;
  url_parts u;
  request_options o;
  clock::time_point deadline;
  std::string label;
};

task<void> hedge_attempt(std::shared_ptr<hedge_call> c, std::shared_ptr<replica> r, bool hedge,
  std::shared_ptr<bool> connecting, channel<attempt_result> results)
{
  auto op = attempt(*c->st, c->worker, *c->set, *r, c->method, c->u, c->o, c->deadline, c->label, connecting.get());
  auto out = co_await std::move(op);
  out.hedge = hedge;
  results.try_send(std::move(out)); // room for both attempts: never waits
}

bool answered(const attempt_result& a) noexcept
{
  return a.response && !gateway_failure(a.response->status) && !a.retry_answer;
}

// Each attempt of a hedged call: its replica, and whether it is still
// waiting for a new connection to open. A loser still connecting when the
// other attempt has already answered counts as a connect failure of its
// replica (a black-holed replica is found out, and ejected, by the hedges
// it needs).
struct running_attempt {
  std::shared_ptr<replica> r;
  std::shared_ptr<bool> connecting = std::make_shared<bool>(false);
  bool ended = false;
};

// The replica a hedge goes to: another one, if the budget allows.
std::shared_ptr<replica> hedge_to(client::state& st, replica_set& set, const std::shared_ptr<replica>& first,
  tried_list& tried, const std::string& label)
{
  auto second = pick(st, set, tried);
  if (!second || second == first)
    return nullptr;
  if (!set.budget.withdraw(st.now())) {
    policy_families().retries_denied.with({label}).inc();
    if (second->probation)
      second->probing = false;
    return nullptr;
  }
  tried.add(second.get());
  policy_families().hedges.with({label, "sent"}).inc();
  return second;
}

// The attempt that ends a hedged call: a hedge that won is counted, and a
// loser still connecting counts against its replica.
void settle(client::state& st, replica_set& set, const std::array<running_attempt, 2>& started,
  const attempt_result& got, const std::string& label)
{
  if (got.hedge && answered(got))
    policy_families().hedges.with({label, "won"}).inc();
  for (auto& other : started)
    if (other.r && !other.ended && *other.connecting)
      failed(st, set, *other.r);
}

// The first attempt, and when it has not answered after `delay`, a second
// to another replica if the budget allows: a select over the two.
// The first answer wins and the other attempt is cancelled; when both fail,
// the last failure is the call's (and the retry policy decides on it).
task<attempt_result> hedged(std::shared_ptr<client::state> st, std::size_t worker, std::shared_ptr<replica_set> set,
  std::shared_ptr<replica> first, tried_list& tried, const std::string& method, const url_parts& u,
  const request_options& o, clock::time_point deadline, const std::string& label, clock::duration delay)
{
  auto call = std::make_shared<hedge_call>(hedge_call{st, set, worker, method, u, o, deadline, label});
  channel<attempt_result> results{2};
  std::array<running_attempt, 2> started{running_attempt{first}, running_attempt{}};
  task_group attempts;
  attempts.spawn(hedge_attempt(call, first, false, started[0].connecting, results));
  std::size_t running = 1;
  bool hedge_due = clock::now() + delay < deadline;
  std::optional<attempt_result> last;
  while (running > 0) {
    std::optional<attempt_result> got;
    if (!hedge_due) {
      got = std::move(*co_await results.receive());
    } else if (auto r = co_await select(results.on_receive(), after(delay)); r.index() == 0) {
      got = std::move(*std::get<0>(r));
    } else {
      hedge_due = false;
      if (auto second = hedge_to(*st, *set, first, tried, label)) {
        started[1].r = second;
        attempts.spawn(hedge_attempt(call, std::move(second), true, started[1].connecting, results));
        ++running;
      }
      continue;
    }
    --running;
    started[got->hedge ? 1 : 0].ended = true;
    if (answered(*got) || running == 0) {
      settle(*st, *set, started, *got, label);
      attempts.cancel(); // the other attempt, if any, ends as cancelled
      co_return std::move(*got);
    }
    hedge_due = false; // one attempt failed: the other one is the hedge now
    last = std::move(got);
  }
  co_return std::move(*last);
}

std::chrono::milliseconds backoff(client::state& st, unsigned retry)
{
  auto base = st.options.retry_backoff * (1LL << std::min(retry, 16u));
  auto capped = std::min<std::chrono::milliseconds>(base, st.options.max_retry_backoff);
  return std::chrono::milliseconds{static_cast<std::int64_t>(static_cast<double>(capped.count()) *
    (0.5 + st.random()))};
}


clock::duration hedge_delay(replica_set& set, const request_options& o)
{
  if (o.hedge_after == request_options::hedge_at_p95)
    return set.p95();
  return o.hedge_after.count() > 0 ? clock::duration{o.hedge_after} : clock::duration{0};
}

bool untried_left(const replica_set& set, const tried_list& tried)
{
  return std::any_of(set.replicas.begin(), set.replicas.end(),
    [&](auto& other) { return usable(*other) && !tried.has(other.get()); });
}

// Why a failed attempt may be made again: "connect" (nothing reached the
// replica, or it said it processed nothing: another one at once), a gateway
// status, "answer" (one the call's retry_answer refuses) or "reset" (the
// retry policy: budgeted, after a backoff), or nothing (the call ends with it).
std::string_view retry_reason(const attempt_result& got, bool may_retry)
{
  using stage = attempt_error::stage;
  if (got.response) {
    static constexpr std::string_view statuses[] = {"502", "503", "504"};
    if (!may_retry)
      return {};
    if (gateway_failure(got.response->status))
      return statuses[got.response->status - 502];
    return got.retry_answer ? "answer" : "";
  }
  if (got.where == stage::connect || got.where == stage::unprocessed)
    return "connect";
  if ((got.where == stage::before_response || got.where == stage::stale) && may_retry)
    return "reset";
  return {};
}

// The pause before the next retry, or std::nullopt when the call gives up:
// max_retries reached, no time left after the backoff, or the budget spent.
std::optional<std::chrono::milliseconds> retry_pause(client::state& st, replica_set& set, unsigned retries,
  clock::time_point deadline, const std::string& label)
{
  if (retries >= st.options.max_retries)
    return std::nullopt;
  auto pause = backoff(st, retries);
  if (clock::now() + pause >= deadline)
    return std::nullopt;
  if (!set.budget.withdraw(st.now())) {
    policy_families().retries_denied.with({label}).inc();
    return std::nullopt;
  }
  return pause;
}

// The call ends with its last attempt: the answer it got, or its failure.
client_response give_up(attempt_result& got)
{
  if (got.response)
    return std::move(*got.response);
  std::rethrow_exception(got.error);
}

} // namespace

void count_deadline_exceeded(const std::string& label)
{
  policy_families().expired.with({label}).inc();
}

task<client_response> call_replicas(std::shared_ptr<client::state> st, std::size_t worker,
  std::shared_ptr<replica_set> set, const std::string& method, const url_parts& u, const request_options& o,
  clock::time_point deadline, const std::string& label)
{
  co_await resolve_due(st, set);
  set->budget.deposit(st->now());
  const bool may_retry = idempotent(method) || o.retryable;
  auto& m = policy_families();
  tried_list tried;
  unsigned retries = 0;
  for (bool first = true;; first = false) {
    auto r = pick(*st, *set, tried);
    if (!r)
      throw client_error(client_errc::resolve_failed, fmt::format("{}: no replica to call", label));
    tried.add(r.get());
    attempt_result got;
    const auto delay = hedge_delay(*set, o);
    if (first && may_retry && delay.count() > 0 && set->replicas.size() > 1) {
      auto op = hedged(st, worker, set, r, tried, method, u, o, deadline, label, delay);
      got = co_await std::move(op);
    } else {
      auto op = attempt(*st, worker, *set, *r, method, u, o, deadline, label);
      got = co_await std::move(op);
    }
    start_sweeping(st, set, worker);
    if (got.cancelled)
      std::rethrow_exception(got.error);
    if (got.response && (answered(got) || !may_retry))
      co_return std::move(*got.response);
    const auto reason = retry_reason(got, may_retry);
    if (reason == "connect" && untried_left(*set, tried) && clock::now() < deadline) {
      m.retries.with({label, reason}).inc();
      continue;
    }
    auto pause = reason.empty() || reason == "connect" ? std::nullopt
                                                       : retry_pause(*st, *set, retries, deadline, label);
    if (!pause)
      co_return give_up(got);
    ++retries;
    m.retries.with({label, reason}).inc();
    co_await sleep_for(*pause);
    if (!untried_left(*set, tried)) // a retry goes to a replica not yet tried, when there is one
      tried = {};
  }
}

task<std::shared_ptr<stream_call>> stream_replicas(std::shared_ptr<client::state> st, std::size_t worker,
  std::shared_ptr<replica_set> set, const std::string& method, const url_parts& u, const request_options& o,
  clock::time_point deadline, const std::string& label)
{
  using stage = attempt_error::stage;
  co_await resolve_due(st, set);
  tried_list tried;
  for (;;) {
    auto r = pick(*st, *set, tried);
    if (!r)
      throw client_error(client_errc::resolve_failed, fmt::format("{}: no replica to call", label));
    tried.add(r.get());
    url_parts at = set->origins[r->origin].u; // the replica's own origin (Host, SNI), the path called
    at.target = u.target;
    ++r->outstanding; // until the stream ends: its lease (whose deleter runs even if making it throws)
    std::shared_ptr<void> lease(nullptr, [r](void*) { --r->outstanding; });
    struct end_probe { // a probe that came to anything (or nothing) lets the next call probe again
      replica& r;
      ~end_probe() { r.probing = false; }
    } probe{*r};
    try {
      auto s = co_await open_stream(*st, worker, r->pool, method, at, o, deadline);
      s->lease = std::move(lease);
      co_return s;
    } catch (const attempt_error& e) {
      if (e.where != stage::connect && e.where != stage::unprocessed)
        throw;
      if (e.where == stage::connect)
        failed(*st, *set, *r);
      if (!untried_left(*set, tried) || clock::now() >= deadline)
        throw;
      policy_families().retries.with({label, "connect"}).inc();
    }
  }
}

} // namespace detail

double client::state::random() const
{
  if (options.random)
    return options.random();
  thread_local std::mt19937_64 generator{std::random_device{}()};
  return std::uniform_real_distribution<double>(0.0, 1.0)(generator);
}

std::shared_ptr<detail::replica_set> client::state::find_set(std::size_t worker, std::string_view key) const
{
  auto& map = sets[worker];
  auto it = map.find(key);
  return it == map.end() ? nullptr : it->second;
}

std::shared_ptr<detail::replica_set> client::state::add_set(std::size_t worker, std::string key,
  std::vector<detail::url_parts> origins, const std::string& label)
{
  auto workers = static_cast<double>(std::max<std::size_t>(rt.size(), 1));
  detail::retry_budget budget{options.retry_budget_percent, options.retry_budget_min_per_second / workers};
  auto set = std::make_shared<detail::replica_set>(label, std::move(origins), budget, worker);
  sets[worker][std::move(key)] = set;
  return set;
}

} // namespace coronet::http
