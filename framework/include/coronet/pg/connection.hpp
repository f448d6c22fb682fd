#pragma once
// One PostgreSQL session: libpq in non-blocking pipeline mode, its socket
// waited on through net::stream, so that a query suspends its task and never
// its worker. Most code uses pg::database (a pool per worker), which hands a
// connection to a transaction; a connection belongs to one worker.
//
//   auto c = co_await pg::connection::open(executor, settings, deadline);
//   auto results = co_await c->run(batch, deadline);   // every statement in one round trip
//
// Each statement of a batch runs in its own implicit transaction (or in the
// transaction the connection has open) and ends with its own sync, so one
// failing does not abort the next. Statements are prepared once per
// connection and then only executed (up to max_prepared texts).
//
// A wait that passes its deadline, or a task cancelled while waiting, asks
// the server to cancel what it runs and leaves the connection broken: the
// pool closes it (the server rolls back an open transaction).
#include <coronet/net/stream.hpp>
#include <coronet/pg/result.hpp>
#include <coronet/pg/value.hpp>
#include <coronet/task.hpp>
#include <coronet/time.hpp>

#include <chrono>
#include <cstddef>
#include <exception>
#include <memory>
#include <span>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

struct pg_conn; // libpq's PGconn

namespace coronet::pg {

// What one statement sends.
struct statement {
  std::string sql;
  std::vector<param> params;
};

// A statement and its parameters: pg::sql("select $1::int + $2", 1, 2).
template <class... P>
statement sql(std::string text, const P&... params)
{
  return statement{std::move(text), {to_param(params)...}};
}

// Where each statement of a round trip ends, as its results come in order
// (connection::run_each). Called on the connection's worker, never throws.
class receiver {
public:
  // Statement i's last rows or command status.
  virtual void answered(std::size_t i, result rows) noexcept = 0;
  // Why statement i failed: the server's error, or the connection's.
  virtual void failed(std::size_t i, std::exception_ptr why) noexcept = 0;

protected:
  ~receiver() = default;
};

// A NOTIFY a LISTENing session received.
struct notification {
  std::string channel;
  std::string payload;
  int sender = 0; // the notifying session's backend pid
};

// How sessions are opened (pg::options fills it from the [pg] keys).
struct session_settings {
  std::string url; // a postgres:// URI or a key=value string, as libpq reads them
  std::chrono::milliseconds connect_timeout{2000};
  std::chrono::milliseconds statement_timeout{0}; // the server's statement_timeout; 0: none
  std::string tls_mode;                           // libpq's sslmode, when set: disable, require, verify-full...
  std::string tls_ca;                             // sslrootcert
  std::string tls_cert;                           // sslcert (client certificate)
  std::string tls_key;                            // sslkey
  std::size_t max_prepared = 256;                 // prepared statements kept per connection
};

class connection final {
public:
  // Connects (TLS as the settings ask) and sets the session up: DateStyle
  // ISO, TimeZone UTC, UTF8, statement_timeout. Throws pg::error:
  // unavailable (refused, unreachable, no answer in connect_timeout, the
  // server refusing the session) or timeout (the deadline).
  static task<std::unique_ptr<connection>> open(
    const asio::any_io_executor& executor, const session_settings& settings, clock::time_point deadline);
  ~connection();
  connection(const connection&) = delete;
  connection& operator=(const connection&) = delete;

  // The statements in one round trip; their results in order. Once every
  // result has been read, the first failure is thrown (pg::error), with its
  // statement's position when the batch has more than one.
  task<std::vector<result>> run(std::span<const statement> batch, clock::time_point deadline);
  task<result> run(const statement& s, clock::time_point deadline);
  // The statements in one round trip, each one's outcome given to `to` as
  // it comes. A failure of the connection itself (lost, the deadline, a
  // cancellation) is the outcome of every statement not answered yet, and
  // leaves the connection broken. The statements are read only until the
  // first suspension (they are then in libpq's buffer).
  task<void> run_each(std::span<const statement* const> batch, clock::time_point deadline, receiver& to);
  // Asks the server to cancel the statement it runs now. The connection is
  // no longer reusable: a cancel that comes late would hit a later one.
  void cancel() noexcept;

  // LISTEN on a channel name (quoted here: any text will do).
  task<void> listen(std::string_view channel, clock::time_point deadline);
  // Waits, with no deadline, until NOTIFYs have come; appends them to `out`.
  task<void> wait_notifications(std::vector<notification>& out);

  // Healthy, and outside any transaction: fit for the next user.
  bool reusable() const noexcept;
  bool broken() const noexcept { return broken_; }
  bool in_transaction() const noexcept;
  // Reads what the server sent while the connection sat idle (a
  // termination notice, the end of the connection): false when it is gone.
  bool still_open() noexcept;
  // Where it is connected: "host:port/database", for messages.
  const std::string& where() const noexcept { return where_; }

private:
  connection(pg_conn* conn, std::unique_ptr<net::stream> stream);
  static void notice(void* self, const pg_result* r);

  task<void> set_up(const std::string& sql, clock::time_point deadline);
  void send(std::span<const statement* const> batch);
  task<void> flush();
  task<pg_result*> next_result();
  task<result> read_statement(std::exception_ptr& failure);
  void forget_prepared(std::size_t index) noexcept;
  task<void> wait(bool for_read);
  void check(std::error_code ec);
  [[noreturn]] void fail(errc kind, const std::string& what);
  void cancel_on_server() noexcept;

  pg_conn* conn_;
  std::unique_ptr<net::stream> stream_;
  std::unordered_map<std::string, std::string> prepared_; // text → statement name
  std::size_t max_prepared_ = 256;
  std::size_t next_name_ = 0;
  std::vector<std::pair<std::size_t, std::string>> preparing_; // statements of this round trip prepared in it
  std::string where_;
  bool broken_ = false;
  bool cancel_sent_ = false;
};

} // namespace coronet::pg
