#include <coronet/pg/database.hpp>

#include <coronet/detail/pool.hpp>
#include <coronet/metrics.hpp>
#include <coronet/runtime.hpp>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <deque>
#include <exception>
#include <unordered_map>

namespace coronet::pg {

options options::from(const config& cfg, std::string_view url_key)
{
  options o;
  o.session.url = cfg.get_string(url_key);
  if (o.session.url.empty())
    throw config_error(fmt::format("{}: empty; name the database, e.g. postgres://user@localhost:5432/app", url_key));
  o.pool_size = static_cast<std::size_t>(cfg.get_int("pg.pool_size"));
  o.session.connect_timeout = cfg.get_ms("pg.connect_timeout_ms");
  o.session.statement_timeout = cfg.get_ms("pg.statement_timeout_ms");
  o.session.max_prepared = static_cast<std::size_t>(cfg.get_int("pg.max_prepared"));
  o.session.tls_mode = cfg.get_string("pg.tls_mode");
  o.session.tls_ca = cfg.get_string("pg.tls_ca");
  o.session.tls_cert = cfg.get_string("pg.tls_cert");
  o.session.tls_key = cfg.get_string("pg.tls_key");
  static constexpr std::string_view modes[] = {"", "disable", "allow", "prefer", "require", "verify-ca", "verify-full"};
  if (std::find(std::begin(modes), std::end(modes), o.session.tls_mode) == std::end(modes))
    throw config_error(fmt::format("pg.tls_mode: '{}' is not one of disable, allow, prefer, require, verify-ca, "
      "verify-full", o.session.tls_mode));
  return o;
}

namespace {

// The series a call touches are found once (a family's with() locks and
// builds a key); only the duration's, one per statement, is looked up, and
// that through each worker's cache (statement_duration).
struct pg_metrics {
  coronet::detail::pool_gauges pool;
  metrics::family<metrics::histogram>& duration;
  metrics::family<metrics::counter>& errors;
};

pg_metrics& families()
{
  static pg_metrics m = [] {
    auto& r = metrics::registry::global();
    auto& sessions = r.gauges("coronet_pg_sessions", "PostgreSQL sessions of every worker's pool, in use or idle.",
      {"state"});
    return pg_metrics{{sessions.with({"in_use"}), sessions.with({"idle"}),
      r.gauges("coronet_pg_waiting", "Calls waiting for a free PostgreSQL session.").with({})},
      r.histograms("coronet_pg_query_duration_seconds", "PostgreSQL calls by statement (its first 60 characters), "
        "from taking a session to the last result.", {"statement"}),
      r.counters("coronet_pg_errors_total", "Failed PostgreSQL calls by kind (pg::errc).", {"kind"})};
  }();
  return m;
}

// A statement's text as a metric label: whitespace folded, 60 characters.
std::string label_of(std::string_view sql)
{
  std::string out;
  for (char c : sql) {
    if (out.size() >= 60)
      break;
    bool space = c == ' ' || c == '\n' || c == '\t' || c == '\r';
    if (space && (out.empty() || out.back() == ' '))
      continue;
    out += space ? ' ' : c;
  }
  return out;
}

} // namespace

// One worker's sessions.
struct worker_pool : coronet::detail::worker_pool<connection> {
  // Each statement's duration series, by its text (at most 1024 kept).
  std::unordered_map<std::string, metrics::histogram*> durations;
};

namespace {

metrics::histogram& statement_duration(worker_pool& pool, const std::string& sql)
{
  if (auto it = pool.durations.find(sql); it != pool.durations.end())
    return *it->second;
  auto& h = families().duration.with({label_of(sql)});
  if (pool.durations.size() < 1024)
    pool.durations.emplace(sql, &h);
  return h;
}

} // namespace

struct database::state {
  state(runtime& r, options o) : rt(r), opts(std::move(o)), pools(r.size()) {}
  ~state()
  {
    std::size_t n = 0;
    for (auto& p : pools)
      n += p.idle_count();
    families().pool.idle.add(-static_cast<std::int64_t>(n));
  }

  runtime& rt;
  options opts;
  std::vector<worker_pool> pools;

  clock::time_point call_deadline() const
  {
    auto t = opts.session.statement_timeout;
    return t.count() > 0 ? clock::now() + t + std::chrono::seconds(1) : clock::time_point::max();
  }
};

namespace {

std::size_t this_worker(const runtime& rt)
{
  auto w = runtime::current_worker();
  if (!w || runtime::current() != &rt)
    throw std::logic_error("pg::database called from outside its runtime's workers");
  return *w;
}

} // namespace

database::lease::~lease()
{
  if (st)
    st->pools[worker].give_back(std::move(conn), families().pool);
}

namespace {

// A session of this worker's pool: an idle one still open, a new one while
// the pool has room, or the first one given back before the deadline.
task<std::unique_ptr<connection>> take(database::state& st, worker_pool& pool, clock::time_point deadline)
{
  auto executor = co_await asio::this_coro::executor;
  auto open = [&] { return connection::open(executor, st.opts.session, deadline); }; // a local: GCC 12
  auto got = co_await pool.take(st.opts.pool_size, deadline, families().pool, open);
  if (!got.conn)
    throw error(errc::timeout, fmt::format("no PostgreSQL session free before the deadline (all {} of this "
      "worker's are busy: pg.pool_size)", st.opts.pool_size));
  co_return std::move(got.conn);
}

void count_error(const std::exception_ptr& e)
{
  try {
    std::rethrow_exception(e);
  } catch (const error& err) {
    families().errors.with({to_string(err.kind())}).inc();
  } catch (...) {
  }
}

// A refusal that means the session was closed under the statement before
// it could take effect (the server shutting down, pg_terminate_backend).
bool session_was_ended(const error& e)
{
  return e.sqlstate() == "57P01" || e.sqlstate() == "57P02" || e.sqlstate() == "57P03";
}

} // namespace

task<database::lease> database::acquire()
{
  lease l;
  l.worker = this_worker(state_->rt);
  auto deadline = state_->call_deadline();
  l.conn = co_await take(*state_, state_->pools[l.worker], deadline);
  l.st = state_;
  co_return l;
}

task<result> database::run(statement s)
{
  std::vector<statement> one; // (not a braced list inside co_await: GCC 12 rejects it)
  one.push_back(std::move(s));
  auto batch = co_await pipeline(std::move(one));
  co_return std::move(batch.front());
}

task<std::vector<result>> database::pipeline(std::vector<statement> batch)
{
  const auto start = clock::now();
  static const std::string nothing;
  auto& pool = state_->pools[this_worker(state_->rt)];
  auto& duration = statement_duration(pool, batch.empty() ? nothing : batch.front().sql);
  std::exception_ptr failure;
  for (int attempt = 0; attempt < 2; ++attempt) {
    try {
      auto l = co_await acquire();
      auto out = co_await l.conn->run(batch, state_->call_deadline());
      duration.observe(std::chrono::duration<double>(clock::now() - start).count());
      co_return out;
    } catch (const error& e) {
      failure = std::current_exception();
      if (attempt == 0 && session_was_ended(e)) {
        spdlog::debug("PostgreSQL session ended under a statement ({}); running it once more", e.what());
        continue;
      }
    } catch (...) {
      failure = std::current_exception();
    }
    break;
  }
  count_error(failure);
  std::rethrow_exception(failure);
}

task<database::lease> database::begin()
{
  auto l = co_await acquire();
  auto s = pg::sql("BEGIN"); // a local: GCC 12 destroys a temporary in a co_await twice
  co_await l.conn->run(s, state_->call_deadline());
  co_return l;
}

bool database::keep_for_rollback(lease& l, const std::exception_ptr& failure)
{
  count_error(failure);
  bool cancelled = false;
  try {
    std::rethrow_exception(failure);
  } catch (const std::system_error& e) {
    cancelled = e.code() == asio::error::operation_aborted;
  } catch (...) {
  }
  if (cancelled || l.conn->broken()) {
    l.conn.reset();
    return false;
  }
  return true;
}

task<void> database::roll_back(lease& l)
{
  try {
    auto s = pg::sql("ROLLBACK"); // a local: GCC 12 destroys a temporary in a co_await twice
    co_await l.conn->run(s, state_->call_deadline());
  } catch (...) {
    l.conn.reset(); // closing the session rolls back
  }
}

task<void> database::commit(lease& l)
{
  auto s = pg::sql("COMMIT"); // a local: GCC 12 destroys a temporary in a co_await twice
  co_await l.conn->run(s, state_->call_deadline());
}

struct subscription::state {
  state(std::string name, std::size_t buffer) : channel_name(std::move(name)), out(buffer) {}
  std::string channel_name;
  channel<notification> out;
  asio::cancellation_signal stop;
};

namespace {

// Reads the subscription's session until it is cancelled; opens another
// when it breaks, waiting longer each time (up to 5 s).
task<void> listen_loop(std::shared_ptr<subscription::state> st, std::unique_ptr<connection> conn,
  std::shared_ptr<database::state> db)
{
  auto backoff = std::chrono::milliseconds(100);
  std::vector<notification> got;
  try {
    for (;;) {
      bool failed = false;
      try {
        if (!conn) {
          auto executor = co_await asio::this_coro::executor; // a local: GCC 12 and temporaries in co_await
          conn = co_await connection::open(executor, db->opts.session, db->call_deadline());
          co_await conn->listen(st->channel_name, db->call_deadline());
          spdlog::info("PostgreSQL: listening on '{}' again", st->channel_name);
          backoff = std::chrono::milliseconds(100);
        }
        co_await conn->wait_notifications(got);
        for (auto& n : got)
          co_await st->out.send(std::move(n));
        got.clear();
      } catch (const error& e) {
        spdlog::warn("PostgreSQL: listening on '{}': {}; again in {} ms", st->channel_name, e.what(), backoff.count());
        conn.reset();
        failed = true;
      }
      if (failed) {
        co_await sleep_for(backoff);
        backoff = std::min(backoff * 2, std::chrono::milliseconds(5000));
      }
    }
  } catch (const std::system_error&) {
    // cancelled: the subscription is gone, or the channel closed
  }
  st->out.close();
}

} // namespace

task<subscription> database::listen(std::string channel, std::size_t buffer)
{
  this_worker(state_->rt);
  auto executor = co_await asio::this_coro::executor;
  auto conn = co_await connection::open(executor, state_->opts.session, state_->call_deadline());
  co_await conn->listen(channel, state_->call_deadline());
  auto st = std::make_shared<subscription::state>(std::move(channel), buffer);
  coronet::spawn(listen_loop(st, std::move(conn), state_), st->stop.slot());
  co_return subscription{st};
}

void subscription::stop() noexcept
{
  if (state_) {
    state_->out.close();
    state_->stop.emit(asio::cancellation_type::terminal);
  }
}

subscription& subscription::operator=(subscription&& other) noexcept
{
  if (this != &other) {
    stop();
    state_ = std::move(other.state_);
  }
  return *this;
}

subscription::~subscription()
{
  stop();
}

const channel<notification>& subscription::notifications() const noexcept
{
  return state_->out;
}

database::database(runtime& rt, options o) : state_(std::make_shared<state>(rt, std::move(o)))
{
  families();
}

database::~database() = default;

task<result> transaction::run(statement s)
{
  co_return co_await conn_.run(s, state_.call_deadline());
}

task<std::vector<result>> transaction::pipeline(std::vector<statement> batch)
{
  co_return co_await conn_.run(batch, state_.call_deadline());
}

} // namespace coronet::pg
