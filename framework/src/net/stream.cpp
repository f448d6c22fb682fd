#include <coronet/net/stream.hpp>

#include <asio/bind_cancellation_slot.hpp>
#include <asio/connect.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/ssl.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/write.hpp>

#include <openssl/ssl.h>

#include <algorithm>
#include <array>

namespace coronet::net {

namespace {
constexpr auto use_tuple = asio::experimental::as_tuple(asio::use_awaitable);
} // namespace

// The read and write deadlines of one stream and the one timer behind both.
// The timer is armed for the earliest deadline that a wait may outlive; a
// deadline that moves later costs nothing until the timer fires and finds it
// later (it then re-arms), which is what a keep-alive connection does on
// every request. Shared with the timer's handler, which may run after the
// stream is gone.
struct stream::deadlines {
  explicit deadlines(const asio::any_io_executor& ex) : timer(ex) {}

  struct side {
    clock::time_point at = no_deadline;
    clock::duration timeout{0}; // per wait, when set (writes)
    bool expired = false; // `at` has passed: waits end at once
    bool waiting = false;
    asio::cancellation_signal cancel;

    void expire()
    {
      expired = true;
      if (waiting)
        cancel.emit(asio::cancellation_type::terminal);
    }
  };

  asio::steady_timer timer;
  clock::time_point armed = no_deadline;
  side read, write;

  static void set(const std::shared_ptr<deadlines>& d, side& s, clock::time_point at)
  {
    s.at = at;
    s.expired = false;
    if (at < d->armed)
      arm(d, at);
  }

  static void arm(const std::shared_ptr<deadlines>& d, clock::time_point at)
  {
    d->armed = at;
    d->timer.expires_at(at);
    d->timer.async_wait([weak = std::weak_ptr<deadlines>(d)](std::error_code ec) {
      auto d = weak.lock();
      if (ec || !d)
        return; // re-armed, or the stream is gone
      d->armed = no_deadline;
      fire(d);
    });
  }

  static void fire(const std::shared_ptr<deadlines>& d)
  {
    auto now = clock::now();
    auto next = no_deadline;
    for (side* s : {&d->read, &d->write}) {
      if (s->at <= now && !s->expired)
        s->expire();
      else if (s->at > now)
        next = std::min(next, s->at);
    }
    if (next != no_deadline)
      arm(d, next);
  }
};

namespace {

// Lets a cancellation of the awaiting coroutine (with_timeout, a task
// group) reach an operation that is bound to the stream's own signal.
class forward_cancellation {
public:
  forward_cancellation(asio::cancellation_slot outer, asio::cancellation_signal& inner) : outer_(outer)
  {
    if (outer_.is_connected())
      outer_.assign([&inner](asio::cancellation_type t) { inner.emit(t); });
  }
  ~forward_cancellation()
  {
    if (outer_.is_connected())
      outer_.clear();
  }
  forward_cancellation(const forward_cancellation&) = delete;
  forward_cancellation& operator=(const forward_cancellation&) = delete;

private:
  asio::cancellation_slot outer_;
};

// Marks a side as waiting for as long as an operation is pending.
struct waiting_guard {
  explicit waiting_guard(stream::deadlines& d, bool read) : side(read ? d.read : d.write) { side.waiting = true; }
  ~waiting_guard() { side.waiting = false; }
  decltype(stream::deadlines::read)& side;
};

std::error_code timed_out_if_expired(std::error_code ec, bool expired)
{
  return ec == asio::error::operation_aborted && expired ? timed_out : ec;
}

} // namespace

stream::stream(asio::ip::tcp::socket socket)
  : socket_(std::move(socket)), deadlines_(std::make_shared<deadlines>(socket_.get_executor()))
{
  std::error_code ignored;
  socket_.non_blocking(true, ignored);
}

stream::stream(asio::ip::tcp::socket socket, std::shared_ptr<asio::ssl::context> tls, tls_role role)
  : socket_(std::move(socket)),
    tls_context_(std::move(tls)),
    tls_(std::make_unique<asio::ssl::stream<asio::ip::tcp::socket&>>(socket_, *tls_context_)),
    deadlines_(std::make_shared<deadlines>(socket_.get_executor()))
{
  std::error_code ignored;
  socket_.non_blocking(true, ignored);
  if (role == tls_role::server)
    SSL_set_accept_state(tls_->native_handle());
  else
    SSL_set_connect_state(tls_->native_handle());
}

stream::stream(const asio::any_io_executor& ex, std::shared_ptr<asio::ssl::context> tls)
  : socket_(ex), tls_context_(std::move(tls)), deadlines_(std::make_shared<deadlines>(ex))
{
  if (tls_context_) {
    tls_ = std::make_unique<asio::ssl::stream<asio::ip::tcp::socket&>>(socket_, *tls_context_);
    SSL_set_connect_state(tls_->native_handle());
  }
}

task<std::error_code> stream::connect(std::span<const asio::ip::tcp::endpoint> endpoints)
{
  auto& side = deadlines_->write;
  if (side.expired)
    co_return timed_out;
  auto state = co_await asio::this_coro::cancellation_state;
  forward_cancellation forward{state.slot(), side.cancel};
  waiting_guard waiting{*deadlines_, false};
  auto [ec, at] = co_await asio::async_connect(socket_, endpoints,
    asio::bind_cancellation_slot(side.cancel.slot(), use_tuple));
  (void)at;
  if (ec)
    co_return timed_out_if_expired(ec, side.expired);
  std::error_code ignored;
  socket_.non_blocking(true, ignored);
  socket_.set_option(asio::ip::tcp::no_delay(true), ignored);
  co_return std::error_code{};
}

stream::~stream()
{
  deadlines_->timer.cancel();
}

void stream::set_read_deadline(clock::time_point at) noexcept
{
  deadlines::set(deadlines_, deadlines_->read, at);
}

void stream::set_write_deadline(clock::time_point at) noexcept
{
  deadlines_->write.timeout = clock::duration{0};
  deadlines::set(deadlines_, deadlines_->write, at);
}

void stream::set_write_timeout(clock::duration d) noexcept
{
  deadlines_->write.timeout = d;
  deadlines::set(deadlines_, deadlines_->write, no_deadline);
}

io_result stream::read_now(asio::mutable_buffer buffer)
{
  io_result r;
  if (!tls_) {
    r.bytes = socket_.read_some(buffer, r.ec);
    return r;
  }
  // Records already received and decrypted: take them without the reactor.
  SSL* ssl = tls_->native_handle();
  if (buffer.size() == 0 || SSL_pending(ssl) <= 0) {
    r.ec = asio::error::would_block;
    return r;
  }
  int n = SSL_read(ssl, buffer.data(), static_cast<int>(std::min<std::size_t>(buffer.size(), 1 << 30)));
  if (n > 0)
    r.bytes = static_cast<std::size_t>(n);
  else
    r.ec = asio::error::would_block;
  return r;
}

task<io_result> stream::read_some(asio::mutable_buffer buffer)
{
  if (!tls_) {
    io_result r = read_now(buffer);
    if (r.ec != asio::error::would_block)
      co_return r;
  }
  co_return co_await wait_read(buffer);
}

task<io_result> stream::wait_read(asio::mutable_buffer buffer)
{
  auto& side = deadlines_->read;
  if (side.expired)
    co_return io_result{timed_out, 0};
  auto state = co_await asio::this_coro::cancellation_state;
  forward_cancellation forward{state.slot(), side.cancel};
  waiting_guard waiting{*deadlines_, true};
  auto token = asio::bind_cancellation_slot(side.cancel.slot(), use_tuple);
  auto [ec, n] = tls_ ? co_await tls_->async_read_some(buffer, token) : co_await socket_.async_read_some(buffer, token);
  co_return io_result{timed_out_if_expired(ec, side.expired), n};
}

task<std::error_code> stream::write(asio::const_buffer data)
{
  std::array<asio::const_buffer, 1> one{data};
  co_return co_await write(std::span<const asio::const_buffer>(one));
}

task<std::error_code> stream::write(std::span<const asio::const_buffer> data)
{
  std::size_t sent = 0;
  if (!tls_) {
    // Most writes fit in the socket buffer: no reactor, no timer.
    std::error_code ec;
    std::size_t total = asio::buffer_size(data);
    while (sent < total) {
      std::array<asio::const_buffer, 8> rest;
      std::size_t count = 0, skip = sent;
      for (auto& b : data) {
        if (skip >= b.size()) {
          skip -= b.size();
          continue;
        }
        if (count == rest.size())
          break;
        rest[count++] = b + skip;
        skip = 0;
      }
      std::size_t n = socket_.write_some(std::span(rest.data(), count), ec);
      if (ec == asio::error::would_block)
        break;
      if (ec)
        co_return ec;
      sent += n;
    }
    if (sent == total)
      co_return std::error_code{};
  }
  co_return co_await wait_write(data, sent);
}

task<std::error_code> stream::wait_write(std::span<const asio::const_buffer> data, std::size_t skip)
{
  auto& side = deadlines_->write;
  if (side.timeout.count() > 0)
    deadlines::set(deadlines_, side, clock::now() + side.timeout);
  if (side.expired)
    co_return timed_out;
  std::vector<asio::const_buffer> rest;
  rest.reserve(data.size());
  for (auto& b : data) {
    if (skip >= b.size()) {
      skip -= b.size();
      continue;
    }
    rest.push_back(b + skip);
    skip = 0;
  }
  auto state = co_await asio::this_coro::cancellation_state;
  forward_cancellation forward{state.slot(), side.cancel};
  waiting_guard waiting{*deadlines_, false};
  auto token = asio::bind_cancellation_slot(side.cancel.slot(), use_tuple);
  auto [ec, n] = tls_ ? co_await asio::async_write(*tls_, rest, token) : co_await asio::async_write(socket_, rest, token);
  (void)n;
  co_return timed_out_if_expired(ec, side.expired);
}

task<std::error_code> stream::handshake(std::string_view server_name)
{
  if (!tls_)
    co_return std::error_code{};
  SSL* ssl = tls_->native_handle();
  if (!server_name.empty() && SSL_is_server(ssl) == 0) {
    std::string name{server_name};
    asio::error_code bad;
    bool is_address = (asio::ip::make_address(name, bad), !bad);
    if (!is_address) // SNI carries host names only (RFC 6066 3)
      SSL_set_tlsext_host_name(ssl, name.c_str());
    if (SSL_get_verify_mode(ssl) & SSL_VERIFY_PEER) {
      X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
      X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
      if (is_address)
        X509_VERIFY_PARAM_set1_ip_asc(param, name.c_str());
      else
        X509_VERIFY_PARAM_set1_host(param, name.c_str(), name.size());
    }
  }
  auto& side = deadlines_->read;
  if (side.expired)
    co_return timed_out;
  auto state = co_await asio::this_coro::cancellation_state;
  forward_cancellation forward{state.slot(), side.cancel};
  waiting_guard waiting{*deadlines_, true};
  auto type = SSL_is_server(ssl) ? asio::ssl::stream_base::server : asio::ssl::stream_base::client;
  auto [ec] = co_await tls_->async_handshake(type, asio::bind_cancellation_slot(side.cancel.slot(), use_tuple));
  co_return timed_out_if_expired(ec, side.expired);
}

std::string_view stream::alpn() const noexcept
{
  if (!tls_)
    return {};
  const unsigned char* data = nullptr;
  unsigned int size = 0;
  SSL_get0_alpn_selected(const_cast<SSL*>(tls_->native_handle()), &data, &size);
  return {reinterpret_cast<const char*>(data), size};
}

void* stream::native_tls() noexcept
{
  return tls_ ? tls_->native_handle() : nullptr;
}

task<void> stream::close(clock::duration grace)
{
  if (tls_ && socket_.is_open()) {
    // close_notify, so the peer can tell the end from a cut (an attacker's
    // truncation); a peer that never answers it costs at most `grace`.
    auto until = clock::now() + grace;
    set_read_deadline(until);
    set_write_deadline(until);
    auto state = co_await asio::this_coro::cancellation_state;
    forward_cancellation forward{state.slot(), deadlines_->read.cancel};
    waiting_guard waiting{*deadlines_, true};
    co_await tls_->async_shutdown(asio::bind_cancellation_slot(deadlines_->read.cancel.slot(), use_tuple));
  }
  shut_down();
  std::error_code ignored;
  socket_.close(ignored);
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
