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
  metrics::counter& round_trips; // of calls outside transactions (database::serve)
  metrics::counter& shared_statements;
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
      r.counters("coronet_pg_errors_total", "Failed PostgreSQL calls by kind (pg::errc).", {"kind"}),
      r.counters("coronet_pg_round_trips_total", "Round trips that carried the statements of calls outside "
        "transactions; statements per round trip is coronet_pg_round_trip_statements_total over this.").with({}),
      r.counters("coronet_pg_round_trip_statements_total", "Statements those round trips carried.").with({})};
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

// Calls outside a transaction share their worker's sessions. They queue, and
// a session takes all that are queued (up to max_round statements) into one
// round trip, each statement still with its own sync, so each its own
// implicit transaction as if alone. Under load, many requests' statements
// then cost the server one read and one wakeup. The round trip is driven by
// a task of the pool's (database::serve), not by a caller: a caller
// cancelled or past its deadline only stops waiting, and when nobody waits
// any more for what the server is running, that is cancelled there.
inline constexpr std::size_t max_round = 512;

struct round_trip;
struct worker_pool;

// A caller's statements, from the queue to their last result; in its frame.
struct shared_call {
  shared_call(std::span<const statement> s, const asio::any_io_executor& executor)
    : statements(s), rows(s.size()), woken(executor)
  {
  }
  shared_call(const shared_call&) = delete;
  shared_call& operator=(const shared_call&) = delete;
  ~shared_call() { leave(); }

  void leave() noexcept; // stops waiting: out of the queue, or out of its round trip
  void count_down() noexcept;

  std::span<const statement> statements;
  std::vector<result> rows;
  std::exception_ptr failure; // the first, positioned among its statements
  wakeup woken;
  worker_pool* queued = nullptr;
  round_trip* in = nullptr;
  std::size_t first = 0; // its first statement's place in the round trip
  std::size_t left = 0;  // statements not answered yet
  bool done = false;
};

// The statements of several calls in one round trip, and whose each is.
struct round_trip final : receiver {
  round_trip() = default;
  round_trip(const round_trip&) = delete;
  round_trip& operator=(const round_trip&) = delete;
  ~round_trip() { clear(); }

  void add(shared_call& c)
  {
    c.in = this;
    c.first = statements.size();
    c.left = c.statements.size();
    for (auto& s : c.statements) {
      statements.push_back(&s);
      owner.push_back(&c);
    }
  }
  void answered(std::size_t i, result r) noexcept override
  {
    next = i + 1;
    if (auto* c = owner[i]) {
      c->rows[i - c->first] = std::move(r);
      c->count_down();
    }
  }
  void failed(std::size_t i, std::exception_ptr why) noexcept override
  {
    next = i + 1;
    if (auto* c = owner[i]) {
      if (!c->failure)
        c->failure = at_position(std::move(why), i - c->first, c->statements.size());
      c->count_down();
    }
  }
  void drop(shared_call& c) noexcept
  {
    std::fill_n(owner.begin() + static_cast<std::ptrdiff_t>(c.first), c.statements.size(), nullptr);
    c.in = nullptr;
  }
  // A call stopped waiting: when nobody waits for what the server runs
  // now, or for anything after it, the server is asked to stop it.
  void gone(shared_call& c) noexcept
  {
    drop(c);
    auto rest = owner.begin() + static_cast<std::ptrdiff_t>(std::min(next, owner.size()));
    if (conn && rest != owner.end() && std::all_of(rest, owner.end(), [](auto* o) { return o == nullptr; }))
      conn->cancel();
  }
  void clear() noexcept
  {
    for (auto* c : owner)
      if (c)
        c->in = nullptr;
    statements.clear();
    owner.clear();
    next = 0;
    conn = nullptr;
  }

  connection* conn = nullptr;
  std::vector<const statement*> statements;
  std::vector<shared_call*> owner; // per statement: the call waiting for it, null once it is answered or gone
  std::size_t next = 0;            // the first statement not answered
};

// One worker's sessions.
struct worker_pool : coronet::detail::worker_pool<connection> {
  coronet::detail::series_cache durations{1024}; // each statement's, by its text
  std::deque<shared_call*> queue; // calls outside a transaction, waiting to be sent (database::serve)
  std::size_t servers = 0;        // serving tasks
  std::size_t taking = 0;         // of them, those about to take what is queued
  std::vector<std::unique_ptr<round_trip>> spare_trips; // kept by serving tasks that ended, for the next
};

namespace {

metrics::histogram& statement_duration(worker_pool& pool, const std::string& sql)
{
  return pool.durations.get(families().duration, sql, label_of);
}

} // namespace

struct database::state {
  state(runtime& r, options o) : rt(r), opts(std::move(o)), pools(r.size()) {}
  ~state() { worker_pool::forget_idle(pools, families().pool); }

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
  return coronet::detail::worker_of(rt, "pg::database");
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
task<std::unique_ptr<connection>> take(database::state& st, worker_pool& pool, clock::time_point deadline,
  const coronet::detail::pool_gauges& gauges)
{
  auto executor = co_await asio::this_coro::executor;
  auto open = [&] { return connection::open(executor, st.opts.session, deadline); }; // a local: GCC 12
  auto got = co_await pool.take(st.opts.pool_size, deadline, gauges, open);
  if (!got.conn)
    throw error(errc::timeout, fmt::format("no PostgreSQL session free before the deadline (all {} of this "
      "worker's are busy: pg.pool_size)", st.opts.pool_size));
  co_return std::move(got.conn);
}

void count_error(const std::exception_ptr& e)
{
  coronet::detail::count_error<error>(families().errors, e);
}

// A refusal that means the session was closed under the statement before
// it could take effect (the server shutting down, pg_terminate_backend).
bool session_was_ended(const std::exception_ptr& failure)
{
  try {
    std::rethrow_exception(failure);
  } catch (const error& e) {
    return e.sqlstate() == "57P01" || e.sqlstate() == "57P02" || e.sqlstate() == "57P03";
  } catch (...) {
  }
  return false;
}

} // namespace

task<database::lease> database::acquire()
{
  lease l;
  l.worker = this_worker(state_->rt);
  auto deadline = state_->call_deadline();
  l.conn = co_await take(*state_, state_->pools[l.worker], deadline, families().pool);
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

void shared_call::leave() noexcept
{
  if (queued) {
    std::erase(queued->queue, this);
    queued = nullptr;
    families().pool.waiting.add(-1);
  }
  if (in)
    in->gone(*this);
}

void shared_call::count_down() noexcept
{
  if (--left == 0) {
    in->drop(*this);
    done = true;
    woken.wake();
  }
}

namespace {

// The calls queued on a worker, into one round trip (at least one call).
void collect(worker_pool& pool, round_trip& trip)
{
  while (!pool.queue.empty()) {
    auto* c = pool.queue.front();
    if (!trip.statements.empty() && trip.statements.size() + c->statements.size() > max_round)
      break;
    pool.queue.pop_front();
    c->queued = nullptr;
    families().pool.waiting.add(-1);
    trip.add(*c);
  }
}

// No session for the queued calls: each fails with why.
void fail_queued(worker_pool& pool, const std::exception_ptr& why)
{
  while (!pool.queue.empty()) {
    auto* c = pool.queue.front();
    pool.queue.pop_front();
    c->queued = nullptr;
    families().pool.waiting.add(-1);
    c->failure = why;
    c->done = true;
    c->woken.wake();
  }
}

// The pool's gauges for a serving task's take: it is no call waiting.
const coronet::detail::pool_gauges& serving_gauges()
{
  static metrics::gauge uncounted;
  static const coronet::detail::pool_gauges g{families().pool.in_use, families().pool.idle, uncounted};
  return g;
}

} // namespace

// Serves the worker's queued calls, a round trip at a time, on one session
// while there are any (given back between round trips when a transaction
// waits for one).
task<void> database::serve(std::shared_ptr<state> st, std::size_t worker)
{
  auto& pool = st->pools[worker];
  struct slot {
    worker_pool& pool;
    bool taking = true;
    void took() noexcept
    {
      if (taking) {
        taking = false;
        --pool.taking;
      }
    }
    ~slot()
    {
      took();
      --pool.servers;
    }
  } serving{pool};
  std::unique_ptr<round_trip> kept;
  if (!pool.spare_trips.empty()) {
    kept = std::move(pool.spare_trips.back());
    pool.spare_trips.pop_back();
  } else {
    kept = std::make_unique<round_trip>();
  }
  round_trip& trip = *kept;
  lease l;
  while (!pool.queue.empty()) {
    if (!l.conn) {
      std::exception_ptr failure;
      try {
        l.conn = co_await take(*st, pool, st->call_deadline(), serving_gauges());
        l.st = st;
        l.worker = worker;
      } catch (...) {
        failure = std::current_exception();
      }
      if (failure) {
        fail_queued(pool, failure);
        break;
      }
      if (pool.queue.empty())
        break; // the calls gave up while the session was taken
    }
    serving.took();
    collect(pool, trip);
    families().round_trips.inc();
    families().shared_statements.inc(trip.statements.size());
    trip.conn = l.conn.get();
    co_await l.conn->run_each(trip.statements, st->call_deadline(), trip);
    trip.clear();
    if (!l.conn->reusable() || pool.has_waiters()) {
      lease given = std::move(l); // closed, or given back to take again behind the transaction waiting
    }
  }
  pool.spare_trips.push_back(std::move(kept));
}

// Starts a serving task when none is about to take what is queued and the
// pool has room.
void database::start_serving(const std::shared_ptr<state>& st, std::size_t worker)
{
  auto& pool = st->pools[worker];
  if (pool.taking == 0 && pool.servers < st->opts.pool_size) {
    ++pool.servers;
    ++pool.taking;
    coronet::spawn(serve(st, worker));
  }
}

// Queues the call and waits for its last result. Another session starts
// serving when more calls queue than there are sessions serving, or when
// the call has waited in the queue for `patience` (the sessions are all
// stuck on slow statements). Fewer sessions, each with more statements per
// round trip, cost the server less than many with one each.
task<void> database::submit(std::shared_ptr<state> st, std::size_t worker, shared_call& c)
{
  constexpr auto patience = std::chrono::milliseconds(10);
  auto& pool = st->pools[worker];
  pool.queue.push_back(&c);
  c.queued = &pool;
  families().pool.waiting.add(1);
  if (pool.queue.size() > pool.servers)
    start_serving(st, worker);
  const auto deadline = st->call_deadline();
  bool answered = co_await c.woken.wait_until(std::min(deadline, clock::now() + patience));
  if (!answered) {
    if (c.queued)
      start_serving(st, worker);
    answered = co_await c.woken.wait_until(deadline);
  }
  if (!answered) {
    bool sent = c.in != nullptr;
    c.leave();
    if (sent)
      throw error(errc::timeout, "PostgreSQL: no answer before the deadline");
    throw error(errc::timeout, fmt::format("no PostgreSQL session free before the deadline (all {} of this "
      "worker's are busy: pg.pool_size)", st->opts.pool_size));
  }
}

task<std::vector<result>> database::pipeline(std::vector<statement> batch)
{
  if (batch.empty())
    co_return std::vector<result>{};
  const auto start = clock::now();
  auto st = state_; // what the call links into outlives a database destroyed under it
  const auto worker = this_worker(st->rt);
  auto& duration = statement_duration(st->pools[worker], batch.front().sql);
  auto executor = co_await asio::this_coro::executor;
  std::exception_ptr failure;
  for (int attempt = 0; attempt < 2; ++attempt) {
    shared_call c{batch, executor};
    try {
      co_await submit(st, worker, c);
      failure = c.failure;
    } catch (const error&) {
      failure = std::current_exception();
    }
    if (!failure) {
      duration.observe(std::chrono::duration<double>(clock::now() - start).count());
      co_return std::move(c.rows);
    }
    if (attempt > 0 || !session_was_ended(failure))
      break;
    spdlog::debug("PostgreSQL session ended under a statement; running it once more");
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

task<subscription> database::listen(std::string channel, std::size_t buffer)
{
  this_worker(state_->rt);
  auto executor = co_await asio::this_coro::executor;
  auto conn = co_await connection::open(executor, state_->opts.session, state_->call_deadline());
  co_await conn->listen(channel, state_->call_deadline());
  auto reopen = [db = state_, channel]() -> task<std::unique_ptr<connection>> {
    auto executor = co_await asio::this_coro::executor; // a local: GCC 12 and temporaries in co_await
    auto c = co_await connection::open(executor, db->opts.session, db->call_deadline());
    co_await c->listen(channel, db->call_deadline());
    co_return c;
  };
  auto receive = [](connection& c, coronet::channel<notification>& out) -> task<void> {
    std::vector<notification> got;
    co_await c.wait_notifications(got);
    for (auto& n : got)
      co_await out.send(std::move(n));
  };
  auto st = std::make_shared<coronet::detail::feed_state<notification>>(buffer);
  coronet::spawn(coronet::detail::feed_loop(st, std::move(conn), std::move(reopen), receive,
                   fmt::format("PostgreSQL: listening on '{}'", channel)),
    st->stop.slot());
  co_return subscription{coronet::detail::feed<notification>{st}};
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
