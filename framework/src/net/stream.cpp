#include <coronet/net/stream.hpp>

#include <coronet/detail/memory.hpp>

#include <coronet/detail/parked_op.hpp>
#include <coronet/detail/worker.hpp>

#include <asio/bind_allocator.hpp>
#include <asio/bind_cancellation_slot.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/connect.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/ssl/context.hpp>
#include <asio/ssl/error.hpp>
#include <asio/this_coro.hpp>
#include <asio/write.hpp>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <climits>
#include <csignal>
#include <optional>
#include <stdexcept>
#include <string>

#include <sys/socket.h>

namespace coronet::net {

namespace {
constexpr auto use_tuple = asio::experimental::as_tuple(asio::use_awaitable);
// A socket operation's memory from the thread's free lists (see
// op_memory.hpp): each request starts a read. The deadline timer's wait is
// left to Asio (it is re-armed only when a deadline moves earlier), as the
// binder makes each pending operation a little bigger.
template <class Handler>
auto recycled(Handler&& h)
{
  return asio::bind_allocator(detail::op_allocator<void>{}, std::forward<Handler>(h));
}
} // namespace

// The read and write deadlines of one stream and the one alarm behind both,
// set for the earliest deadline a wait may outlive (an alarm moved later
// costs nothing: a keep-alive connection does it on every request).
struct stream::deadlines {
  explicit deadlines(const asio::any_io_executor& ex) : alarm(ex, [this] { fire(); }) {}

  struct side {
    clock::time_point at = no_deadline;
    clock::duration timeout{0}; // per wait, when set (writes)
    bool expired = false;       // `at` has passed: waits end at once
    bool waiting = false;
    asio::cancellation_signal cancel;

    void expire()
    {
      expired = true;
      if (waiting)
        cancel.emit(asio::cancellation_type::terminal);
    }
  };

  coronet::alarm alarm;
  side read, write;

  void set(side& s, clock::time_point at)
  {
    s.at = at;
    s.expired = false;
    if (at < alarm.at())
      alarm.ring_at(at);
  }

  void fire()
  {
    auto now = clock::now();
    auto next = no_deadline;
    for (side* s : {&read, &write}) {
      if (s->at <= now && !s->expired)
        s->expire();
      else if (s->at > now)
        next = std::min(next, s->at);
    }
    if (next != no_deadline)
      alarm.ring_at(next);
  }
};

namespace {

using side = stream::deadlines::side;

// One wait of a side: the operation it starts is cancelled by the side's
// deadline and, forwarded, by a cancellation of the awaiting coroutine
// (with_timeout, a task group), which the side's own slot would otherwise
// hide from it.
class wait_scope {
public:
  wait_scope(const asio::cancellation_state& caller, side& s) : outer_(caller.slot()), side_(s)
  {
    if (outer_.is_connected())
      outer_.assign([&s](asio::cancellation_type t) { s.cancel.emit(t); });
    side_.waiting = true;
  }
  ~wait_scope()
  {
    side_.waiting = false;
    if (outer_.is_connected())
      outer_.clear();
  }
  wait_scope(const wait_scope&) = delete;
  wait_scope& operator=(const wait_scope&) = delete;

  auto token() { return recycled(asio::bind_cancellation_slot(side_.cancel.slot(), use_tuple)); }
  // What an operation that the deadline cancelled reports.
  std::error_code result(std::error_code ec) const
  {
    return ec == asio::error::operation_aborted && side_.expired ? timed_out : ec;
  }

private:
  asio::cancellation_slot outer_;
  side& side_;
};

// SSL_get_error needs an empty error queue before each call. Emptying it
// costs more than looking, and it is almost always empty already (every
// error path below empties it).
void clear_errors() noexcept
{
  if (ERR_peek_error() != 0)
    ERR_clear_error();
}

// The buffers of `data` after its first `skip` bytes (a write's rest).
constexpr std::size_t max_buffers = 8;
struct buffers_after {
  buffers_after(std::span<const asio::const_buffer> data, std::size_t skip)
  {
    for (auto& b : data) {
      if (skip >= b.size()) {
        skip -= b.size();
        continue;
      }
      rest[count++] = b + skip;
      skip = 0;
    }
  }
  std::span<const asio::const_buffer> span() const { return {rest.data(), count}; }
  std::array<asio::const_buffer, max_buffers> rest;
  std::size_t count = 0;
};

// OpenSSL writes with send() and no MSG_NOSIGNAL: a peer that has gone would
// kill the process with SIGPIPE instead of failing the write with EPIPE.
// Ignored once, before the first TLS stream, as nginx and Go do.
void ignore_sigpipe()
{
  static const bool done = [] {
    std::signal(SIGPIPE, SIG_IGN);
    return true;
  }();
  (void)done;
}

} // namespace

struct stream::tls_step {
  std::size_t n = 0;
  want wait = want::nothing;
  std::error_code ec;
};

static int clamp_int(std::size_t n)
{
  return static_cast<int>(std::min<std::size_t>(n, INT_MAX));
}

stream::tls_step stream::tls_read(asio::mutable_buffer buffer)
{
  clear_errors();
  return tls_result(SSL_read(ssl_, buffer.data(), clamp_int(buffer.size())));
}

stream::tls_step stream::tls_write(asio::const_buffer data)
{
  clear_errors();
  return tls_result(SSL_write(ssl_, data.data(), clamp_int(data.size())));
}

// The outcome of an SSL_read/SSL_write/SSL_do_handshake that returned `r`
// (the error queue was empty before the call). After a fatal error OpenSSL
// forbids SSL_shutdown, and after the peer's end (EOF, close_notify) a
// close_notify of ours would only meet a reset: either ends the TLS session.
stream::tls_step stream::tls_result(int r)
{
  if (r > 0)
    return {static_cast<std::size_t>(r), want::nothing, {}};
  int saved_errno = errno;
  tls_step step;
  switch (SSL_get_error(ssl_, r)) {
  case SSL_ERROR_WANT_READ: step.wait = want::read; return step;
  case SSL_ERROR_WANT_WRITE: step.wait = want::write; return step;
  case SSL_ERROR_ZERO_RETURN: step.ec = asio::error::eof; break;
  case SSL_ERROR_SYSCALL:
    ERR_clear_error();
    step.ec = saved_errno != 0 && saved_errno != EAGAIN
      ? std::error_code(saved_errno, asio::error::get_system_category())
      : std::error_code(asio::ssl::error::stream_truncated);
    break;
  default: {
    unsigned long e = ERR_get_error();
    ERR_clear_error();
    step.ec = ERR_GET_REASON(e) == SSL_R_UNEXPECTED_EOF_WHILE_READING
      ? std::error_code(asio::ssl::error::stream_truncated)
      : std::error_code(static_cast<int>(e), asio::error::get_ssl_category());
  }
  }
  tls_ended_ = true;
  return step;
}

// Starts a wait on a side: a per-wait timeout (writes) counts from here.
// False when the side's deadline has already passed.
static bool begin_wait(stream::deadlines& d, side& s)
{
  if (s.timeout.count() > 0)
    d.set(s, clock::now() + s.timeout);
  return !s.expired;
}

// TLS runs OpenSSL on the non-blocking socket itself, as nginx does: no
// buffers of our own between them, and with SSL_MODE_RELEASE_BUFFERS an
// idle connection holds no record buffers (asio::ssl::stream keeps two
// 17 KiB buffers per connection for its whole life).
stream::stream(asio::ip::tcp::socket socket)
  : socket_(std::move(socket)), deadlines_(std::make_unique<deadlines>(socket_.get_executor()))
{
  std::error_code ignored;
  socket_.non_blocking(true, ignored);
}

stream::stream(asio::ip::tcp::socket socket, std::shared_ptr<asio::ssl::context> tls, tls_role role)
  : socket_(std::move(socket)),
    tls_context_(std::move(tls)),
    deadlines_(std::make_unique<deadlines>(socket_.get_executor()))
{
  std::error_code ignored;
  socket_.non_blocking(true, ignored);
  ignore_sigpipe();
  ssl_ = SSL_new(tls_context_->native_handle());
  if (!ssl_)
    throw std::bad_alloc();
  SSL_set_fd(ssl_, static_cast<int>(socket_.native_handle()));
  SSL_set_mode(ssl_, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  if (role == tls_role::server)
    SSL_set_accept_state(ssl_);
  else
    SSL_set_connect_state(ssl_);
}

stream::stream(const asio::any_io_executor& ex, std::shared_ptr<asio::ssl::context> tls)
  : socket_(ex), tls_context_(std::move(tls)), deadlines_(std::make_unique<deadlines>(ex))
{
  if (tls_context_) {
    ignore_sigpipe();
    ssl_ = SSL_new(tls_context_->native_handle());
    if (!ssl_)
      throw std::bad_alloc();
    SSL_set_mode(ssl_, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_set_connect_state(ssl_);
  }
}

namespace {

// A wait for the socket to become readable while a handler runs.
void wait_for_peer(std::shared_ptr<stream::peer_watch> watch);

} // namespace

// Shared with the pending wait's handler, which may run after the stream is
// gone. The wait starts only once the handler has suspended: watch_peer()
// puts the watch on its worker's ready list, which the worker runs after the
// task yields. A handler that answers without suspending (most) is done by
// then and never watched, so its connection waits for the next request with
// one pending operation, not two.
struct stream::peer_watch final : coronet::detail::resumable {
  peer_watch(asio::cancellation_signal* c, asio::ip::tcp::socket* s) : cancel(c), socket(s) {}

  asio::cancellation_signal* cancel; // nullptr once the stream is gone
  asio::ip::tcp::socket* socket;     // the stream's, while `cancel` is set
  bool armed = false;                // a handler is running
  bool waiting = false;              // a wait is pending on the socket
  std::shared_ptr<peer_watch> self;  // set while on the worker's ready list, keeping it alive

  void resume() override
  {
    auto keep = std::move(self);
    if (armed && !waiting && cancel)
      wait_for_peer(std::move(keep));
  }
  void discard() noexcept override { self.reset(); }
};

namespace {

// The wait's handler: memory from the thread's free lists (it is started
// again for each request), named by a nested allocator_type rather than
// asio::bind_allocator, whose wrapper makes each pending wait bigger.
struct peer_wait {
  std::shared_ptr<stream::peer_watch> w;

  using allocator_type = detail::op_allocator<void>;
  allocator_type get_allocator() const noexcept { return {}; }

  void operator()(std::error_code ec)
  {
    w->waiting = false;
    if (ec || !w->cancel || !w->armed)
      return; // cancelled, the stream gone, or no handler running: bytes for the next read
    // Readable while the handler runs: the peer's end, or more bytes (a
    // pipelined request, a TLS record), which are left for the next read.
    char byte;
    auto n = ::recv(w->socket->native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
      w->armed = false;
      w->cancel->emit(asio::cancellation_type::terminal);
    } else if (n < 0) {
      wait_for_peer(std::move(w)); // the bytes that woke it were read meanwhile: wait on
    }
  }
};

void wait_for_peer(std::shared_ptr<stream::peer_watch> watch)
{
  watch->waiting = true;
  auto& socket = *watch->socket;
  socket.async_wait(asio::ip::tcp::socket::wait_read, peer_wait{std::move(watch)});
}

} // namespace

void stream::watch_peer()
{
  if (!task_cancel_)
    return;
  if (!peer_watch_)
    peer_watch_ = std::make_shared<peer_watch>(task_cancel_, &socket_);
  auto& w = *peer_watch_;
  w.armed = true;
  if (w.waiting || w.self) // the last request's wait, still pending (or about to start), serves this one
    return;
  auto* worker = coronet::detail::worker::current();
  if (!worker) {
    wait_for_peer(peer_watch_);
    return;
  }
  w.self = peer_watch_;
  worker->schedule(&w);
}

void stream::unwatch_peer() noexcept
{
  if (peer_watch_)
    peer_watch_->armed = false;
}

stream::~stream()
{
  if (peer_watch_)
    peer_watch_->cancel = nullptr;
  if (ssl_)
    SSL_free(ssl_);
}

void stream::set_read_deadline(clock::time_point at) noexcept
{
  deadlines_->set(deadlines_->read, at);
}

void stream::set_write_deadline(clock::time_point at) noexcept
{
  deadlines_->write.timeout = clock::duration{0};
  deadlines_->set(deadlines_->write, at);
}

void stream::set_write_timeout(clock::duration d) noexcept
{
  deadlines_->write.timeout = d;
  deadlines_->set(deadlines_->write, no_deadline);
}

task<std::error_code> stream::connect(std::span<const asio::ip::tcp::endpoint> endpoints)
{
  auto& side = deadlines_->write;
  if (!begin_wait(*deadlines_, side))
    co_return timed_out;
  wait_scope scope{co_await asio::this_coro::cancellation_state, side};
  auto [ec, at] = co_await asio::async_connect(socket_, endpoints, scope.token());
  (void)at;
  if (ec)
    co_return scope.result(ec);
  std::error_code ignored;
  socket_.non_blocking(true, ignored);
  socket_.set_option(asio::ip::tcp::no_delay(true), ignored);
  if (ssl_)
    SSL_set_fd(ssl_, static_cast<int>(socket_.native_handle()));
  co_return std::error_code{};
}

task<std::error_code> stream::wait_ready(bool for_read, want what)
{
  auto& side = for_read ? deadlines_->read : deadlines_->write;
  if (!begin_wait(*deadlines_, side))
    co_return timed_out;
  wait_scope scope{co_await asio::this_coro::cancellation_state, side};
  auto direction = what == want::write ? asio::ip::tcp::socket::wait_write : asio::ip::tcp::socket::wait_read;
  auto [ec] = co_await socket_.async_wait(direction, scope.token());
  co_return scope.result(ec);
}

io_result stream::read_now(asio::mutable_buffer buffer)
{
  io_result r;
  if (!ssl_) {
    r.bytes = socket_.read_some(buffer, r.ec);
    return r;
  }
  auto step = tls_read(buffer);
  r.bytes = step.n;
  r.ec = step.wait != want::nothing ? std::error_code(asio::error::would_block) : step.ec;
  return r;
}

task<io_result> stream::read_some(asio::mutable_buffer buffer)
{
  io_result r = read_now(buffer);
  if (r.ec != asio::error::would_block)
    co_return r;
  co_return co_await wait_read(buffer);
}

task<io_result> stream::wait_read(asio::mutable_buffer buffer)
{
  if (!ssl_) {
    auto& side = deadlines_->read;
    if (!begin_wait(*deadlines_, side))
      co_return io_result{timed_out, 0};
    wait_scope scope{co_await asio::this_coro::cancellation_state, side};
    auto [ec, n] = co_await socket_.async_read_some(buffer, scope.token());
    co_return io_result{scope.result(ec), n};
  }
  // Straight to the wait when OpenSSL holds nothing already received (the
  // caller's read_now has just found the socket empty): async_wait re-arms
  // the edge-triggered registration, so bytes that came in the meantime
  // still wake it. With a record held back by read-ahead, read it first:
  // the socket may stay quiet.
  if (!SSL_has_pending(ssl_)) {
    if (auto ec = co_await wait_ready(true, want::read))
      co_return io_result{ec, 0};
  }
  for (;;) {
    auto step = tls_read(buffer);
    if (step.wait == want::nothing)
      co_return io_result{step.ec, step.n};
    if (auto ec = co_await wait_ready(true, step.wait))
      co_return io_result{ec, 0};
  }
}

namespace {

// The handler of a wait that resumes the coroutine parked on it (as
// use_awaitable's handler does, without the coroutine frame that
// use_awaitable keeps for each pending operation: an idle connection is one
// frame smaller). It holds the coroutine's Asio thread while the wait is
// pending, and hands it to the worker's ready list on completion: resumed
// from there rather than inside the reactor's call, the coroutine frames the
// task makes and frees come from the thread's lasting cache. Cancelled
// through `slot`; memory from the thread's free lists.
struct parked_wait final : coronet::detail::resumable {
  std::optional<coronet::detail::asio_thread> thread;
  std::error_code result;

  void resume() override
  {
    coronet::detail::asio_thread resumed = std::move(*thread);
    thread.reset();
    resumed.launch();
  }
  // The frames go back to their io_context, which destroys them (this with them).
  void discard() noexcept override { thread.reset(); }
};

struct wait_resumer {
  coronet::detail::asio_thread thread;
  parked_wait* parked; // in the parked frame, which `thread` owns
  asio::cancellation_slot slot;

  using allocator_type = detail::op_allocator<void>;
  allocator_type get_allocator() const noexcept { return {}; }
  using cancellation_slot_type = asio::cancellation_slot;
  cancellation_slot_type get_cancellation_slot() const noexcept { return slot; }

  void operator()(std::error_code ec)
  {
    parked->result = ec;
    parked->thread.emplace(std::move(thread));
    if (auto* w = coronet::detail::worker::current())
      w->schedule(parked);
    else
      parked->resume();
  }
};

} // namespace

task<io_result> stream::wait_read_now(asio::mutable_buffer buffer)
{
  // Not a coroutine itself: the waiting connection keeps one frame, the
  // smaller plain one. OpenSSL reads only once the task runs anyway.
  return ssl_ ? wait_read(buffer) : wait_readable_then_read(buffer);
}

task<io_result> stream::wait_readable_then_read(asio::mutable_buffer buffer)
{
  auto& side = deadlines_->read;
  auto caller = co_await asio::this_coro::cancellation_state;
  for (;;) {
    // A cancellation that came while the last wait had completed but not
    // yet resumed reached no operation: it is only in the caller's state.
    // Waiting again would miss it (a stopping HTTP/2 connection's reader
    // waited out its idle timeout so, holding the drain).
    if (caller.cancelled() != asio::cancellation_type::none)
      co_return io_result{asio::error::operation_aborted, 0};
    if (!begin_wait(*deadlines_, side))
      co_return io_result{timed_out, 0};
    std::error_code ec;
    {
      wait_scope scope{caller, side};
      parked_wait parked;
      co_await [&](coronet::detail::asio_frame* frame) -> coronet::detail::asio_thread* {
        socket_.async_wait(asio::ip::tcp::socket::wait_read,
          wait_resumer{std::move(*frame->detach_thread()), &parked, side.cancel.slot()});
        return nullptr;
      };
      ec = scope.result(parked.result);
    }
    if (ec)
      co_return io_result{ec, 0};
    io_result r = read_now(buffer);
    if (r.ec != asio::error::would_block)
      co_return r;
  }
}

io_result stream::write_now(asio::const_buffer data)
{
  io_result r;
  if (!ssl_) {
    r.bytes = socket_.write_some(data, r.ec);
    return r;
  }
  while (r.bytes < data.size()) {
    auto step = tls_write(data + r.bytes);
    if (step.n == 0) {
      r.ec = step.wait != want::nothing ? std::error_code(asio::error::would_block) : step.ec;
      break;
    }
    r.bytes += step.n;
  }
  return r;
}

task<std::error_code> stream::write(asio::const_buffer data)
{
  std::array<asio::const_buffer, 1> one{data};
  co_return co_await write(std::span<const asio::const_buffer>(one));
}

task<std::error_code> stream::write(std::span<const asio::const_buffer> data)
{
  if (ssl_)
    co_return co_await write_tls(data);
  // Most writes fit in the socket buffer: no reactor, no timer.
  if (data.size() > max_buffers)
    throw std::invalid_argument("net::stream::write: more than 8 buffers");
  std::size_t sent = 0;
  std::size_t total = asio::buffer_size(data);
  std::error_code ec;
  while (sent < total) {
    buffers_after rest{data, sent};
    std::size_t n = socket_.write_some(rest.span(), ec);
    if (ec == asio::error::would_block)
      break;
    if (ec)
      co_return ec;
    sent += n;
  }
  if (sent == total)
    co_return std::error_code{};
  co_return co_await wait_write(data, sent);
}

task<std::error_code> stream::wait_write(std::span<const asio::const_buffer> data, std::size_t skip)
{
  auto& side = deadlines_->write;
  if (!begin_wait(*deadlines_, side))
    co_return timed_out;
  buffers_after rest{data, skip};
  wait_scope scope{co_await asio::this_coro::cancellation_state, side};
  auto [ec, n] = co_await asio::async_write(socket_, rest.span(), scope.token());
  (void)n;
  co_return scope.result(ec);
}

// Several small pieces (a chunk's size line, the chunk, its CRLF) go out as
// one TLS record, not one record each.
task<std::error_code> stream::write_tls(std::span<const asio::const_buffer> data)
{
  std::string joined;
  asio::const_buffer whole = data.empty() ? asio::const_buffer{} : data[0];
  if (data.size() > 1) {
    joined.reserve(asio::buffer_size(data));
    for (auto& b : data)
      joined.append(static_cast<const char*>(b.data()), b.size());
    whole = asio::buffer(joined);
  }
  while (whole.size() > 0) {
    auto step = tls_write(whole);
    if (step.n > 0) {
      whole += step.n;
      continue;
    }
    if (step.wait == want::nothing)
      co_return step.ec;
    if (auto ec = co_await wait_ready(false, step.wait))
      co_return ec;
  }
  co_return std::error_code{};
}

task<std::error_code> stream::handshake(std::string_view server_name)
{
  if (!ssl_)
    co_return std::error_code{};
  if (!server_name.empty() && SSL_is_server(ssl_) == 0) {
    std::string name{server_name};
    asio::error_code bad;
    bool is_address = (asio::ip::make_address(name, bad), !bad);
    if (!is_address) // SNI carries host names only (RFC 6066 3)
      SSL_set_tlsext_host_name(ssl_, name.c_str());
    if (SSL_get_verify_mode(ssl_) & SSL_VERIFY_PEER) {
      X509_VERIFY_PARAM* param = SSL_get0_param(ssl_);
      X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
      if (is_address)
        X509_VERIFY_PARAM_set1_ip_asc(param, name.c_str());
      else
        X509_VERIFY_PARAM_set1_host(param, name.c_str(), name.size());
    }
  }
  for (;;) {
    clear_errors();
    auto step = tls_result(SSL_do_handshake(ssl_));
    if (step.wait == want::nothing)
      co_return step.ec;
    // The handshake's time is the read deadline, whichever way it waits.
    if (auto ec = co_await wait_ready(true, step.wait))
      co_return ec;
  }
}

std::string_view stream::alpn() const noexcept
{
  if (!ssl_)
    return {};
  const unsigned char* data = nullptr;
  unsigned int size = 0;
  SSL_get0_alpn_selected(ssl_, &data, &size);
  return {reinterpret_cast<const char*>(data), size};
}

void* stream::native_tls() noexcept
{
  return ssl_;
}

void stream::close() noexcept
{
  // close_notify, so the peer can tell the end from a cut (truncation). Sent
  // without waiting: a peer that cannot take it now is not waited for.
  if (ssl_ && !tls_ended_ && socket_.is_open() && SSL_is_init_finished(ssl_)) {
    ERR_clear_error();
    SSL_shutdown(ssl_);
    ERR_clear_error();
  }
  std::error_code ignored;
  socket_.close(ignored); // a FIN, or a reset when a request is left unread, as before
}

void stream::shut_down() noexcept
{
  std::error_code ignored;
  socket_.shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
}

asio::ip::tcp::endpoint stream::remote_endpoint() const noexcept
{
  std::error_code ignored;
  return socket_.remote_endpoint(ignored);
}

} // namespace coronet::net
