#pragma once
// PostgreSQL from coroutines: a pool of sessions per worker, each query a
// task that suspends (Go's database/sql with pgx, on the runtime's workers).
//
//   pg::database db{rt, pg::options::from(cfg)};            // [pg] keys: pg.url, pg.pool_size, ...
//   struct user { std::int64_t id; std::string name; std::optional<std::string> email; };
//   auto users = co_await db.query<user>("select id, name, email from users where id = $1", id);
//   co_await db.execute("update users set name = $1 where id = $2", name, id);
//   auto n = co_await db.transaction([&](pg::transaction& tx) -> task<std::int64_t> {
//     co_await tx.execute("insert into orders (user_id, item) values ($1, $2)", id, item);
//     co_return co_await tx.query_one<std::int64_t>("select count(*) from orders where user_id = $1", id).value();
//   });
//   std::vector<pg::statement> batch{pg::sql("select 1"), pg::sql("select $1::int", 2)};
//   auto rs = co_await db.pipeline(std::move(batch));   // one round trip
//
// Parameters and rows: value.hpp and result.hpp. Calls outside a
// transaction share their worker's sessions (up to pg.pool_size): they
// queue, and a session takes everything queued into one round trip, each
// statement still with its own sync, so each its own implicit transaction
// as if alone. Under load many requests' statements then cost the server
// one read and one wakeup (coronet_pg_round_trip_statements_total over
// coronet_pg_round_trips_total says how many per trip). Another session
// starts serving when more calls queue than sessions serve, or when a call
// has waited 10 ms. A statement's text is prepared once per session.
//
// A call is bounded by pg.statement_timeout_ms (at the server, and here
// with a second's grace) and by the deadline of the task's request: a
// handler cancelled at its deadline stops waiting at once. Its statement
// is cancelled on the server when no other call waits behind it in the
// round trip; otherwise it runs on, and the calls behind it wait for it
// (a slow statement holds up those sharing its trip, at most for
// pg.statement_timeout_ms).
//
// A transaction holds a session of its own: commit when its function returns,
// rollback when it throws; a cancellation closes the session, which rolls
// it back. Errors are pg::error with a kind (error.hpp). A session found
// closed by the server (a restart, pg_terminate_backend) is replaced, and
// a statement it refused that way, outside a transaction, is run once more
// on a new one.
#include <coronet/config.hpp>
#include <coronet/detail/feed.hpp>
#include <coronet/pg/connection.hpp>
#include <coronet/pg/error.hpp>
#include <coronet/pg/result.hpp>
#include <coronet/sync/channel.hpp>
#include <coronet/task.hpp>
#include <coronet/time.hpp>

#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace coronet {
class runtime;
}

namespace coronet::pg {

// [pg]: read by options::from.
inline constexpr config_key pg_keys[] = {
  {"pg.url", "", "PostgreSQL: a postgres:// URI or key=value string, as libpq reads them; empty: none"},
  {"pg.pool_size", 8, "sessions per worker", 1, 10000},
  {"pg.connect_timeout_ms", 2000, "TCP connect, TLS and the session's start", 1},
  {"pg.statement_timeout_ms", 5000, "each statement's limit, at the server (statement_timeout) and here; 0: none", 0},
  {"pg.max_prepared", 256, "prepared statements kept per session", 0, 1000000},
  {"pg.tls_mode", "", "libpq's sslmode (disable, prefer, require, verify-ca, verify-full); empty: the URL's"},
  {"pg.tls_ca", "", "CA certificates to verify the server with (sslrootcert)"},
  {"pg.tls_cert", "", "a client certificate (sslcert)"},
  {"pg.tls_key", "", "the client certificate's key (sslkey)"},
};

struct options {
  session_settings session;
  std::size_t pool_size{config_default<std::size_t>(pg_keys, "pg.pool_size")};

  // Reads the [pg] keys, the URL from `url_key` (an app may name it its
  // own way); throws config_error when it is empty.
  static options from(const config& cfg, std::string_view url_key = "pg.url");
};

class transaction;
struct shared_call;

// The calls a database and a transaction both offer, on their run(statement).
template <class Session>
class calls {
public:
  // Every row as T (result.hpp says what T may be).
  template <class T, class... P>
  task<std::vector<T>> query(std::string sql, const P&... params)
  {
    auto s = pg::sql(std::move(sql), params...); // a local: GCC 12 destroys a temporary in a co_await twice
    auto r = co_await self().run(std::move(s));
    co_return r.template as<T>();
  }
  // The first row as T, or nullopt when there is none.
  template <class T, class... P>
  task<std::optional<T>> query_one(std::string sql, const P&... params)
  {
    auto s = pg::sql(std::move(sql), params...);
    auto r = co_await self().run(std::move(s));
    if (r.empty())
      co_return std::nullopt;
    co_return r[0].template as<T>();
  }
  template <class... P>
  task<result> execute(std::string sql, const P&... params)
  {
    return self().run(pg::sql(std::move(sql), params...));
  }

private:
  Session& self() { return static_cast<Session&>(*this); }
};

// NOTIFYs on one channel name, as they come (db.listen). A session of its
// own LISTENs; when it breaks, another is opened and LISTENs again (what
// was notified meanwhile is lost, as PostgreSQL keeps nothing for a
// listener that is gone). Destroying it stops listening and closes the
// channel. Use it on the worker that made it.
//
//   auto orders = co_await db.listen("orders");
//   while (auto n = co_await orders.notifications().receive())
//     spdlog::info("order {}", n->payload);
class subscription final {
public:
  explicit subscription(coronet::detail::feed<notification> f) : feed_(std::move(f)) {}

  // Closed once the subscription ends. When nobody takes them, the
  // notifications wait in it (up to its buffer), then at the server.
  const channel<notification>& notifications() const noexcept { return feed_.items(); }

private:
  coronet::detail::feed<notification> feed_;
};

class database final : public calls<database> {
public:
  database(runtime& rt, options o);
  ~database();
  database(const database&) = delete;
  database& operator=(const database&) = delete;

  task<result> run(statement s);
  // The statements in one round trip, each its own implicit transaction.
  task<std::vector<result>> pipeline(std::vector<statement> batch);

  // LISTENs on `channel` (any text: it is quoted) before returning.
  task<subscription> listen(std::string channel, std::size_t buffer = 1024);

  // Runs f(tx) -> task<R> in a transaction: COMMIT when it returns, ROLLBACK
  // when it throws (the exception goes on).
  template <class F>
  auto transaction(F f) -> std::invoke_result_t<F&, pg::transaction&>;

  struct state;

private:
  struct lease;
  static task<void> serve(std::shared_ptr<state> st, std::size_t worker);
  static void start_serving(const std::shared_ptr<state>& st, std::size_t worker);
  static task<void> submit(std::shared_ptr<state> st, std::size_t worker, shared_call& c);
  task<lease> acquire();
  task<lease> begin(); // a session, in a transaction
  bool keep_for_rollback(lease& l, const std::exception_ptr& failure);
  task<void> roll_back(lease& l);
  task<void> commit(lease& l);

  std::shared_ptr<state> state_;
};

// The session a transaction holds, with the calls of a database.
class transaction final : public calls<transaction> {
public:
  task<result> run(statement s);
  task<std::vector<result>> pipeline(std::vector<statement> batch);

private:
  friend class database;
  transaction(database::state& st, connection& c) : state_(st), conn_(c) {}
  database::state& state_;
  connection& conn_;
};

struct database::lease {
  std::shared_ptr<state> st;
  std::size_t worker = 0;
  std::unique_ptr<connection> conn;
  lease() = default;
  lease(lease&&) noexcept = default;
  lease& operator=(lease&&) noexcept = default;
  ~lease(); // gives the session back to its pool, or closes it
};

template <class F>
auto database::transaction(F f) -> std::invoke_result_t<F&, pg::transaction&>
{
  using R = typename std::invoke_result_t<F&, pg::transaction&>::value_type;
  lease l = co_await begin();
  pg::transaction tx{*state_, *l.conn};
  std::exception_ptr failure;
  std::optional<std::conditional_t<std::is_void_v<R>, int, R>> value;
  try {
    if constexpr (std::is_void_v<R>) {
      co_await f(tx);
      value.emplace(0);
    } else {
      value.emplace(co_await f(tx));
    }
  } catch (...) {
    failure = std::current_exception();
  }
  if (failure) {
    // A cancelled task cannot wait for a ROLLBACK (its next wait throws):
    // its session is closed instead, which rolls back as surely.
    if (keep_for_rollback(l, failure))
      co_await roll_back(l);
    std::rethrow_exception(failure);
  }
  co_await commit(l);
  if constexpr (!std::is_void_v<R>)
    co_return std::move(*value);
}

} // namespace coronet::pg
