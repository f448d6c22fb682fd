#include <coronet/pg/connection.hpp>

#include <asio/experimental/awaitable_operators.hpp>
#include <asio/ip/tcp.hpp>
#include <fmt/format.h>
#include <libpq-fe.h>
#include <spdlog/spdlog.h>

#include <cerrno>
#include <thread>

#include <sys/socket.h>

namespace coronet::pg {

namespace {

// libpq's socket under a net::stream, for waits only: libpq reads and
// writes it, and closes it (the stream lets go of it first).
std::unique_ptr<net::stream> adopt(const asio::any_io_executor& executor, int fd)
{
  asio::ip::tcp::socket socket(executor);
  std::error_code ec;
  socket.assign(asio::ip::tcp::v4(), fd, ec); // TCP or a Unix socket: only readiness is asked of it
  if (ec)
    throw error(errc::unavailable, fmt::format("cannot wait on the PostgreSQL socket: {}", ec.message()));
  return std::make_unique<net::stream>(std::move(socket));
}

void let_go(std::unique_ptr<net::stream>& s) noexcept
{
  if (!s)
    return;
  std::error_code ignored;
  s->lowest_layer().release(ignored);
  s.reset();
}

std::string message_of(const PGconn* c)
{
  std::string m = PQerrorMessage(c);
  while (!m.empty() && (m.back() == '\n' || m.back() == ' '))
    m.pop_back();
  for (auto& ch : m)
    if (ch == '\n')
      ch = ' ';
  return m;
}

std::string field(const PGresult* r, int code)
{
  const char* v = PQresultErrorField(r, code);
  return v ? v : "";
}

error error_of(const PGresult* r, std::string_view context)
{
  auto state = field(r, PG_DIAG_SQLSTATE);
  auto text = field(r, PG_DIAG_MESSAGE_PRIMARY);
  if (text.empty())
    text = PQresultErrorMessage(r);
  auto detail = field(r, PG_DIAG_MESSAGE_DETAIL);
  auto message = fmt::format("{}{}{} (SQLSTATE {})", context, text, detail.empty() ? "" : ": " + detail, state);
  return error(kind_of(state), message, state, field(r, PG_DIAG_CONSTRAINT_NAME));
}

// The session's settings, sent as one simple query before pipeline mode.
std::string session_setup(const session_settings& s)
{
  return fmt::format("SET DateStyle = ISO; SET TimeZone = 'UTC'; SET client_encoding = 'UTF8'; "
                     "SET bytea_output = 'hex'; SET statement_timeout = {}",
    s.statement_timeout.count());
}

} // namespace

connection::connection(pg_conn* conn, std::unique_ptr<net::stream> stream)
  : conn_(conn), stream_(std::move(stream))
{
  where_ = fmt::format("{}:{}/{}", PQhost(conn_) ? PQhost(conn_) : "", PQport(conn_) ? PQport(conn_) : "",
    PQdb(conn_) ? PQdb(conn_) : "");
  PQsetNoticeReceiver(conn_, &connection::notice, this);
}

// The server's notices and warnings go to the log, not to stderr.
void connection::notice(void* self, const pg_result* r)
{
  auto* c = static_cast<connection*>(self);
  auto severity = field(r, PG_DIAG_SEVERITY_NONLOCALIZED);
  auto text = field(r, PG_DIAG_MESSAGE_PRIMARY);
  if (severity == "WARNING")
    spdlog::warn("PostgreSQL at {}: {}", c->where_, text);
  else
    spdlog::debug("PostgreSQL at {}: {}: {}", c->where_, severity, text);
}

connection::~connection()
{
  // Dropped with a statement running (its task cancelled, or an exception
  // from elsewhere): the server is told to stop it rather than run it out.
  if (!cancel_sent_ && PQtransactionStatus(conn_) == PQTRANS_ACTIVE)
    cancel_on_server();
  let_go(stream_);
  PQfinish(conn_);
}

namespace {

struct conn_deleter {
  void operator()(PGconn* c) const noexcept { PQfinish(c); }
};
using owned_conn = std::unique_ptr<PGconn, conn_deleter>;

owned_conn start(const session_settings& s)
{
  auto timeout = std::to_string(std::max<std::int64_t>(1, (s.connect_timeout.count() + 999) / 1000));
  std::vector<const char*> keys{"dbname", "connect_timeout", "client_encoding"};
  std::vector<const char*> values{s.url.c_str(), timeout.c_str(), "UTF8"};
  auto add = [&](const char* key, const std::string& value) {
    if (!value.empty()) {
      keys.push_back(key);
      values.push_back(value.c_str());
    }
  };
  add("sslmode", s.tls_mode);
  add("sslrootcert", s.tls_ca);
  add("sslcert", s.tls_cert);
  add("sslkey", s.tls_key);
  keys.push_back(nullptr);
  values.push_back(nullptr);
  owned_conn c{PQconnectStartParams(keys.data(), values.data(), 1)};
  if (!c)
    throw std::bad_alloc();
  if (PQstatus(c.get()) == CONNECTION_BAD)
    throw error(errc::unavailable, fmt::format("PostgreSQL: {}", message_of(c.get())));
  return c;
}

// Waits as PQconnectPoll asks, on whatever socket it uses now (it may open
// another for the next host or after refusing TLS).
task<void> poll_wait(PGconn* c, PostgresPollingStatusType want, clock::time_point deadline,
  std::chrono::milliseconds connect_timeout)
{
  auto s = adopt(co_await asio::this_coro::executor, PQsocket(c));
  s->set_read_deadline(deadline);
  s->set_write_deadline(deadline);
  auto ec = want == PGRES_POLLING_READING ? co_await s->wait_readable() : co_await s->wait_writable();
  let_go(s);
  if (ec == net::timed_out)
    throw error(errc::unavailable, fmt::format("PostgreSQL: no answer within {} ms", connect_timeout.count()));
  if (ec == asio::error::operation_aborted)
    throw std::system_error(ec, "connecting to PostgreSQL cancelled");
  if (ec)
    throw error(errc::unavailable, fmt::format("PostgreSQL: {}", ec.message()));
}

} // namespace

task<std::unique_ptr<connection>> connection::open(
  const asio::any_io_executor& executor, const session_settings& settings, clock::time_point deadline)
{
  auto c = start(settings);
  deadline = std::min(deadline, clock::now() + settings.connect_timeout);
  for (auto want = PGRES_POLLING_WRITING;; want = PQconnectPoll(c.get())) {
    if (want == PGRES_POLLING_OK)
      break;
    if (want == PGRES_POLLING_FAILED)
      throw error(errc::unavailable, fmt::format("PostgreSQL: {}", message_of(c.get())));
    co_await poll_wait(c.get(), want, deadline, settings.connect_timeout);
  }
  if (PQsetnonblocking(c.get(), 1) != 0)
    throw error(errc::unavailable, fmt::format("PostgreSQL: {}", message_of(c.get())));
  auto stream = adopt(executor, PQsocket(c.get()));
  std::unique_ptr<connection> conn{new connection(c.release(), std::move(stream))};
  conn->max_prepared_ = settings.max_prepared;
  co_await conn->set_up(session_setup(settings), deadline);
  co_return conn;
}

task<void> connection::set_up(const std::string& sql, clock::time_point deadline)
{
  stream_->set_read_deadline(deadline);
  stream_->set_write_deadline(deadline);
  if (!PQsendQuery(conn_, sql.c_str()))
    fail(errc::unavailable, "setting the session up");
  co_await flush();
  while (PGresult* r = co_await next_result()) {
    result owned{r};
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
      throw error_of(r, "PostgreSQL refused the session settings: ");
  }
  if (!PQenterPipelineMode(conn_))
    fail(errc::unavailable, "entering pipeline mode");
}

bool connection::in_transaction() const noexcept
{
  auto s = PQtransactionStatus(conn_);
  return s == PQTRANS_INTRANS || s == PQTRANS_INERROR;
}

bool connection::reusable() const noexcept
{
  return !broken_ && !cancel_sent_ && PQstatus(conn_) == CONNECTION_OK && PQtransactionStatus(conn_) == PQTRANS_IDLE;
}

bool connection::still_open() noexcept
{
  if (broken_)
    return false;
  char first = 0;
  auto n = ::recv(PQsocket(conn_), &first, 1, MSG_PEEK | MSG_DONTWAIT);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
    return true; // nothing came while it sat idle: the usual case, one system call
  // Its end, or an ErrorResponse: the server ending the session
  // (pg_terminate_backend, a shutdown), the end following.
  if (n <= 0 || (first == 'E' && !PQsslInUse(conn_))) {
    broken_ = true;
    return false;
  }
  // A notice, a parameter's new value (or TLS records): libpq takes them,
  // and the end of the connection may have come right behind them (an
  // immediate shutdown warns, then closes).
  if (!PQconsumeInput(conn_) || PQstatus(conn_) != CONNECTION_OK ||
      ::recv(PQsocket(conn_), &first, 1, MSG_PEEK | MSG_DONTWAIT) == 0)
    broken_ = true;
  return !broken_;
}

void connection::fail(errc kind, const std::string& what)
{
  broken_ = true;
  throw error(kind, fmt::format("PostgreSQL {}: {}", what, message_of(conn_)));
}

// Asks the server to stop what this session runs. libpq 15's PQcancel
// blocks (it opens a connection of its own), so it runs on a thread of its
// own, which nothing waits for.
void connection::cancel_on_server() noexcept
{
  cancel_sent_ = true;
  spdlog::debug("PostgreSQL at {}: cancelling the session's statement", where_);
  PGcancel* cancel = PQgetCancel(conn_);
  if (!cancel)
    return;
  try {
    std::thread([cancel, where = where_] {
      char why[256] = "";
      if (!PQcancel(cancel, why, sizeof why))
        spdlog::warn("PostgreSQL at {}: the cancel request failed: {}", where, why);
      PQfreeCancel(cancel);
    }).detach();
  } catch (const std::system_error&) {
    PQfreeCancel(cancel); // no thread to spare: the server finds the session gone when it next writes
  }
}

// One wait on the socket. Past the deadline, or when the task is cancelled,
// the server is asked to cancel and the connection is left broken.
task<void> connection::wait(bool for_read)
{
  check(for_read ? co_await stream_->wait_readable() : co_await stream_->wait_writable());
}

void connection::check(std::error_code ec)
{
  if (!ec)
    return;
  broken_ = true;
  if (ec == net::timed_out || ec == asio::error::operation_aborted)
    cancel_on_server();
  if (ec == net::timed_out)
    throw error(errc::timeout, fmt::format("PostgreSQL at {}: no answer before the deadline", where_));
  if (ec == asio::error::operation_aborted)
    throw std::system_error(ec, "PostgreSQL query cancelled");
  throw error(errc::connection, fmt::format("PostgreSQL at {}: {}", where_, ec.message()));
}

// Sends what libpq holds. When the socket is full, whatever has arrived is
// read meanwhile, so that a server blocked on sending results (and so not
// reading) cannot deadlock a large batch.
task<void> connection::flush()
{
  using namespace asio::experimental::awaitable_operators;
  for (;;) {
    int r = PQflush(conn_);
    if (r == 0)
      co_return;
    if (r < 0)
      fail(errc::connection, "send");
    if (!PQconsumeInput(conn_))
      fail(errc::connection, "receive");
    auto either = co_await (stream_->wait_readable() || stream_->wait_writable());
    check(either.index() == 0 ? std::get<0>(either) : std::get<1>(either));
  }
}

// The next result, waiting for the server as long as libpq would block.
task<pg_result*> connection::next_result()
{
  while (PQisBusy(conn_)) {
    co_await wait(true);
    if (!PQconsumeInput(conn_))
      fail(errc::connection, "receive");
  }
  co_return PQgetResult(conn_);
}

// Hands the statements to libpq, each with its own sync; the texts not yet
// prepared on this session are prepared on the way (noted in preparing_).
void connection::send(std::span<const statement* const> batch)
{
  preparing_.clear();
  std::vector<const char*> values;
  std::vector<int> lengths, formats;
  for (std::size_t i = 0; i < batch.size(); ++i) {
    auto& s = *batch[i];
    values.clear();
    lengths.clear();
    formats.clear();
    for (auto& p : s.params) {
      values.push_back(p.null ? nullptr : p.value.c_str());
      lengths.push_back(static_cast<int>(p.value.size()));
      formats.push_back(p.binary ? 1 : 0);
    }
    const int n = static_cast<int>(s.params.size());
    const std::string* name = nullptr;
    if (auto it = prepared_.find(s.sql); it != prepared_.end()) {
      name = &it->second;
    } else if (prepared_.size() < max_prepared_) {
      auto [at, added] = prepared_.emplace(s.sql, fmt::format("coronet_{}", next_name_++));
      name = &at->second;
      preparing_.emplace_back(i, s.sql);
      if (!PQsendPrepare(conn_, name->c_str(), s.sql.c_str(), n, nullptr))
        fail(errc::connection, "send");
    }
    int sent = name ? PQsendQueryPrepared(conn_, name->c_str(), n, values.data(), lengths.data(), formats.data(), 0)
                    : PQsendQueryParams(conn_, s.sql.c_str(), n, nullptr, values.data(), lengths.data(), formats.data(), 0);
    if (!sent || !PQpipelineSync(conn_))
      fail(errc::connection, "send");
  }
}

// A statement that failed may have failed its prepare: prepared again next time.
void connection::forget_prepared(std::size_t index) noexcept
{
  for (auto& [i, sql] : preparing_)
    if (i == index)
      prepared_.erase(sql);
}

// One statement's results up to its sync: the last rows or command status
// it returned, or its first error (in `failure`).
task<result> connection::read_statement(std::exception_ptr& failure)
{
  result answer;
  bool after_end = false;
  for (;;) {
    PGresult* r = co_await next_result();
    if (!r) {
      if (after_end || PQstatus(conn_) == CONNECTION_BAD)
        fail(errc::connection, "receive");
      after_end = true; // the end of one command's results
      continue;
    }
    after_end = false;
    result owned{r};
    switch (PQresultStatus(r)) {
    case PGRES_PIPELINE_SYNC: co_return answer;
    case PGRES_TUPLES_OK:
    case PGRES_COMMAND_OK:
    case PGRES_EMPTY_QUERY: answer = std::move(owned); break;
    case PGRES_PIPELINE_ABORTED: break; // an earlier command of this statement failed
    case PGRES_FATAL_ERROR:
      if (!failure)
        failure = std::make_exception_ptr(error_of(r, ""));
      break;
    default:
      broken_ = true; // COPY and the like: the session is in a state this client does not drive
      if (!failure)
        failure = std::make_exception_ptr(error(errc::bad_query, "COPY and replication are not supported"));
      co_return answer;
    }
  }
}

namespace {

// A connection's own failure right after the server said why (57P01, the
// session terminated): that reason is the one to give.
std::exception_ptr loss(std::exception_ptr why, const std::exception_ptr& server_said)
{
  if (!server_said)
    return why;
  try {
    std::rethrow_exception(why);
  } catch (const error& e) {
    if (e.kind() == errc::connection)
      return server_said;
  } catch (...) {
  }
  return why;
}

} // namespace

task<void> connection::run_each(std::span<const statement* const> batch, clock::time_point deadline, receiver& to)
{
  std::size_t i = 0;
  std::exception_ptr failure; // the server's error for the statement being read
  std::exception_ptr lost;
  try {
    if (broken_)
      throw error(errc::connection, fmt::format("PostgreSQL at {}: the connection is broken", where_));
    stream_->set_read_deadline(deadline);
    stream_->set_write_deadline(deadline);
    send(batch);
    co_await flush();
    for (; i < batch.size() && !broken_; ++i) {
      failure = nullptr;
      auto rows = co_await read_statement(failure);
      if (failure) {
        forget_prepared(i);
        to.failed(i, std::move(failure));
      } else {
        to.answered(i, std::move(rows));
      }
    }
    if (i < batch.size()) // the session was left in COPY: the rest were not read
      lost = std::make_exception_ptr(error(errc::connection, "the session was left in COPY mode"));
  } catch (...) {
    // The server's error for the statement being read (57P01: the session
    // terminated), when the end of the connection came right behind it:
    // the reason to give it and the statements after it.
    broken_ = true;
    lost = loss(std::current_exception(), failure);
  }
  for (; i < batch.size(); ++i)
    to.failed(i, lost);
}

namespace {

// A whole batch's results, or its first failure.
struct collector final : receiver {
  explicit collector(std::size_t n) : count(n) { rows.reserve(n); }
  void answered(std::size_t, result r) noexcept override { rows.push_back(std::move(r)); }
  void failed(std::size_t i, std::exception_ptr why) noexcept override
  {
    if (!first)
      first = at_position(std::move(why), i, count);
    rows.emplace_back();
  }
  std::size_t count;
  std::vector<result> rows;
  std::exception_ptr first;
};

} // namespace

task<std::vector<result>> connection::run(std::span<const statement> batch, clock::time_point deadline)
{
  std::vector<const statement*> each;
  each.reserve(batch.size());
  for (auto& s : batch)
    each.push_back(&s);
  collector all{batch.size()};
  co_await run_each(each, deadline, all);
  if (all.first)
    std::rethrow_exception(all.first);
  co_return std::move(all.rows);
}

void connection::cancel() noexcept
{
  if (!cancel_sent_)
    cancel_on_server();
}

task<void> connection::listen(std::string_view channel, clock::time_point deadline)
{
  char* quoted = PQescapeIdentifier(conn_, channel.data(), channel.size());
  if (!quoted)
    throw error(errc::bad_query, fmt::format("cannot LISTEN on '{}': {}", channel, message_of(conn_)));
  std::string sql = std::string("LISTEN ") + quoted;
  PQfreemem(quoted);
  statement s{std::move(sql), {}}; // a local: GCC 12 destroys a temporary in a co_await twice
  co_await run(s, deadline);
}

task<void> connection::wait_notifications(std::vector<notification>& out)
{
  stream_->set_read_deadline(net::stream::no_deadline);
  for (;;) {
    while (PGnotify* n = PQnotifies(conn_)) {
      out.push_back(notification{n->relname, n->extra ? n->extra : "", n->be_pid});
      PQfreemem(n);
    }
    if (!out.empty())
      co_return;
    co_await wait(true);
    if (!PQconsumeInput(conn_))
      fail(errc::connection, "receive");
  }
}

task<result> connection::run(const statement& s, clock::time_point deadline)
{
  auto out = co_await run(std::span<const statement>(&s, 1), deadline);
  co_return std::move(out.front());
}

} // namespace coronet::pg
