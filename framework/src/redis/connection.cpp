#include "redis/connection.hpp"

#include <coronet/net/tls.hpp>

#include <asio/experimental/as_tuple.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/ssl.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <fmt/format.h>
#include <hiredis/hiredis.h>

#include <system_error>

namespace coronet::redis::detail {

void encode(std::span<const command> batch, std::string& out)
{
  for (const auto& c : batch) {
    fmt::format_to(std::back_inserter(out), "*{}\r\n", c.args().size());
    for (const auto& a : c.args()) {
      fmt::format_to(std::back_inserter(out), "${}\r\n", a.size());
      out.append(a).append("\r\n");
    }
  }
}

namespace {

reply from_hiredis(const redisReply& r)
{
  reply out;
  switch (r.type) {
  case REDIS_REPLY_STRING: out.type = reply::kind::string; break;
  case REDIS_REPLY_STATUS: out.type = reply::kind::status; break;
  case REDIS_REPLY_ERROR: out.type = reply::kind::error; break;
  case REDIS_REPLY_INTEGER: out.type = reply::kind::integer; break;
  case REDIS_REPLY_ARRAY: out.type = reply::kind::array; break;
  default: out.type = reply::kind::nil; break;
  }
  if (out.type == reply::kind::integer)
    out.integer = r.integer;
  else if (out.type == reply::kind::array) {
    out.elements.reserve(r.elements);
    for (std::size_t i = 0; i < r.elements; ++i)
      out.elements.push_back(from_hiredis(*r.element[i]));
  } else if (r.str)
    out.text.assign(r.str, r.len);
  return out;
}

// The addresses of the options' host: itself when it is an IP address.
task<std::vector<asio::ip::tcp::endpoint>> resolve(const options& o)
{
  std::error_code ec;
  auto literal = asio::ip::make_address(o.host, ec);
  if (!ec)
    co_return std::vector<asio::ip::tcp::endpoint>{{literal, o.port}};
  asio::ip::tcp::resolver resolver{co_await asio::this_coro::executor};
  auto [rec, results] = co_await resolver.async_resolve(o.host, std::to_string(o.port),
    asio::experimental::as_tuple(asio::use_awaitable));
  if (rec)
    throw error(errc::unavailable, fmt::format("Redis at {}: cannot resolve: {}", o.host, rec.message()));
  std::vector<asio::ip::tcp::endpoint> out;
  for (auto& r : results)
    out.push_back(r.endpoint());
  co_return out;
}

// AUTH and SELECT, when the options ask for them.
std::vector<command> introductions(const options& o)
{
  std::vector<command> out;
  if (!o.password.empty())
    out.push_back(o.user.empty() ? command{"AUTH", o.password} : command{"AUTH", o.user, o.password});
  if (o.db != 0)
    out.push_back(command{"SELECT", o.db});
  return out;
}

} // namespace

connection::connection(const asio::any_io_executor& ex, std::shared_ptr<asio::ssl::context> tls, std::string address)
  : stream_(ex, std::move(tls)), address_(std::move(address)), reader_(redisReaderCreate()), in_(16 * 1024)
{
  if (!reader_)
    throw std::bad_alloc();
}

connection::~connection()
{
  redisReaderFree(reader_);
}

task<std::unique_ptr<connection>> connection::open(const options& o, const std::shared_ptr<asio::ssl::context>& tls,
  clock::time_point deadline)
{
  auto address = fmt::format("{}:{}", o.host, o.port);
  std::vector<asio::ip::tcp::endpoint> endpoints;
  try {
    auto resolving = resolve(o);
    endpoints = co_await with_deadline(std::move(resolving), deadline);
  } catch (const timeout_error&) {
    throw error(errc::timeout, fmt::format("Redis at {}: not resolved within redis.connect_timeout_ms", address));
  }
  // Locals, not temporaries beside a co_await in one expression: GCC 12
  // destroys such a temporary twice.
  auto executor = co_await asio::this_coro::executor;
  std::shared_ptr<asio::ssl::context> context;
  if (o.tls)
    context = tls;
  auto c = std::make_unique<connection>(executor, std::move(context), address);
  c->stream_.set_write_deadline(deadline);
  c->stream_.set_read_deadline(deadline);
  auto ec = co_await c->stream_.connect(endpoints);
  if (ec == net::timed_out)
    throw error(errc::timeout, fmt::format("Redis at {}: no connection within redis.connect_timeout_ms", address));
  if (ec == asio::error::operation_aborted)
    throw std::system_error(ec, "Redis connect cancelled");
  if (ec)
    throw error(errc::unavailable, fmt::format("Redis at {}: cannot connect: {}", address, ec.message()));
  if (o.tls) {
    ec = co_await c->stream_.handshake(o.host);
    if (ec == asio::error::operation_aborted)
      throw std::system_error(ec, "Redis connect cancelled");
    if (ec)
      throw error(ec == net::timed_out ? errc::timeout : errc::unavailable, fmt::format(
        "Redis at {}: TLS handshake failed: {}", address, net::tls_error_message(ec, c->stream_.native_tls())));
  }
  auto intro = introductions(o);
  if (!intro.empty()) {
    auto replies = co_await c->round_trip(intro, deadline);
    for (auto& r : replies)
      if (r.is_error())
        throw error(errc::unavailable, fmt::format("Redis at {}: {} refused: {}", address,
          &r == &replies.front() && !o.password.empty() ? "AUTH" : "SELECT", r.text));
  }
  c->heard_back_ = false;
  co_return c;
}

void connection::fail(const std::error_code& ec, std::string_view doing)
{
  broken_ = true;
  if (ec == asio::error::operation_aborted)
    throw std::system_error(ec, "Redis call cancelled");
  if (ec == net::timed_out)
    throw error(errc::timeout, fmt::format("Redis at {}: the call's time ran out {}", address_, doing));
  if (ec == asio::error::eof)
    throw error(errc::connection, fmt::format("Redis at {}: the server closed the connection {}", address_, doing));
  throw error(errc::connection, fmt::format("Redis at {}: {} {}", address_, ec.message(), doing));
}

task<void> connection::write_all(clock::time_point deadline)
{
  stream_.set_write_deadline(deadline);
  auto ec = co_await stream_.write(asio::buffer(out_));
  out_.clear();
  if (ec)
    fail(ec, "while sending");
}

task<void> connection::send(std::span<const command> batch, clock::time_point deadline)
{
  encode(batch, out_);
  co_await write_all(deadline);
}

task<std::vector<reply>> connection::round_trip(std::span<const command> batch, clock::time_point deadline)
{
  encode(batch, out_);
  co_await write_all(deadline);
  std::vector<reply> out;
  out.reserve(batch.size());
  for (std::size_t i = 0; i < batch.size(); ++i)
    out.push_back(co_await next(deadline));
  co_return out;
}

task<reply> connection::next(clock::time_point deadline)
{
  stream_.set_read_deadline(deadline);
  for (;;) {
    void* got = nullptr;
    if (redisReaderGetReply(reader_, &got) != REDIS_OK) {
      broken_ = true;
      throw error(errc::protocol, fmt::format("Redis at {}: not a RESP reply: {}", address_, reader_->errstr));
    }
    if (got) {
      std::unique_ptr<redisReply, void (*)(void*)> r{static_cast<redisReply*>(got), freeReplyObject};
      co_return from_hiredis(*r);
    }
    auto [ec, n] = co_await stream_.read_some(asio::buffer(in_));
    if (ec)
      fail(ec, "waiting for a reply");
    heard_back_ = true;
    if (redisReaderFeed(reader_, in_.data(), n) != REDIS_OK) {
      broken_ = true;
      throw error(errc::protocol, fmt::format("Redis at {}: {}", address_, reader_->errstr));
    }
  }
}

bool connection::still_open() noexcept
{
  if (broken_)
    return false;
  char byte = 0;
  auto r = stream_.read_now(asio::buffer(&byte, 1));
  if (r.ec == asio::error::would_block)
    return true;
  broken_ = true; // closed, reset, or a reply nobody asked for
  return false;
}

} // namespace coronet::redis::detail
