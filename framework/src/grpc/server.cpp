#include <coronet/grpc/server.hpp>

#include <coronet/error.hpp>
#include <coronet/http/error.hpp>

#include "grpc/framing.hpp"
#include "middleware/codec.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <cstdint>

namespace coronet::grpc {

using namespace std::string_view_literals;

options options::from(const config& cfg)
{
  options o;
  o.max_receive_bytes = static_cast<std::size_t>(cfg.get_int("grpc.max_receive_bytes"));
  o.max_send_bytes = static_cast<std::size_t>(cfg.get_int("grpc.max_send_bytes"));
  return o;
}

namespace {

// The request's grpc-encoding: none or identity, and gzip, are read; another is UNIMPLEMENTED.
bool gzip_encoded(const http::request& req)
{
  auto e = req.header("grpc-encoding");
  if (!e || *e == "identity"sv)
    return false;
  if (*e == "gzip"sv)
    return true;
  throw error(code::unimplemented, fmt::format("grpc-encoding {} is not supported (identity, gzip)", *e));
}

void add_all(http::headers& to, const http::headers& from)
{
  for (auto& [name, value] : from)
    to.add(name, value);
}

// The status (and trailing metadata) at the end of a call.
void add_status(http::headers& to, code c, std::string_view message, const http::headers& trailing)
{
  to.add("grpc-status", std::to_string(static_cast<int>(c)));
  if (!message.empty())
    to.add("grpc-message", percent_encode(message));
  add_all(to, trailing);
}

// A call that ends before its first message: one HEADERS frame.
http::response trailers_only(server_context& ctx, code c, std::string_view message)
{
  http::response r;
  r.headers.add("content-type", "application/grpc");
  add_all(r.headers, ctx.initial_metadata());
  add_status(r.headers, c, message, ctx.trailing_metadata());
  return r;
}

} // namespace

server_context::server_context(http::request& req, const options& o) : req_(req), options_(o) {}

void server_context::begin(http::body_writer* out)
{
  out_ = out;
  gzip_ = gzip_encoded(req_);
}

std::string server_context::frame(std::string_view message) const
{
  if (message.size() > options_.max_send_bytes)
    throw error(code::resource_exhausted, fmt::format("a response message of {} bytes is over grpc.max_send_bytes ({})",
      message.size(), options_.max_send_bytes));
  std::string out;
  out.reserve(5 + message.size());
  detail::append_framed(out, message);
  return out;
}

task<std::optional<std::string>> server_context::read_bytes()
{
  for (;;) {
    std::size_t have = in_.size() - in_at_;
    auto head = detail::read_head(std::string_view{in_}.substr(in_at_), options_.max_receive_bytes,
      "grpc.max_receive_bytes");
    if (head && have - 5 >= head->length)
      co_return take_message(head->length, head->compressed);
    if (in_ended_) {
      if (have > 0)
        throw error(code::internal, "the request ended inside a message");
      co_return std::nullopt;
    }
    if (!req_.body_stream) {
      // HTTP/1.1, or a test's request: the body is whole already.
      in_ = std::move(req_.body);
      in_at_ = 0;
      in_ended_ = true;
      continue;
    }
    if (!co_await req_.body_stream->read(in_))
      in_ended_ = true;
  }
}

std::string server_context::take_message(std::size_t length, bool compressed)
{
  std::string m;
  if (in_at_ == 0 && 5 + length == in_.size()) {
    // The buffer holds this message alone (a unary call's): it becomes the message.
    in_.erase(0, 5);
    m.swap(in_);
  } else {
    m.assign(in_, in_at_ + 5, length);
    in_at_ += 5 + length;
    if (in_at_ == in_.size()) {
      in_.clear();
      in_at_ = 0;
    }
  }
  if (!compressed)
    return m;
  if (!gzip_)
    throw error(code::internal, "a compressed message, and no grpc-encoding");
  try {
    return http::detail::decompress(http::detail::coding::gzip, m, options_.max_receive_bytes);
  } catch (const http::error& e) {
    if (e.status() == http::status::payload_too_large)
      throw error(code::resource_exhausted, fmt::format("a request message inflates past grpc.max_receive_bytes ({})",
        options_.max_receive_bytes));
    throw error(code::internal, "a compressed message that does not inflate");
  }
}

task<void> server_context::write_bytes(std::string_view message)
{
  auto& framed = framing_buffer();
  framed.append(message);
  co_await write_framed(framed);
}

std::string& server_context::framing_buffer()
{
  framed_.assign(5, '\0');
  return framed_;
}

task<void> server_context::write_framed(std::string& framed)
{
  if (!out_)
    throw std::logic_error("grpc: a message written on a unary call (its method returns its answer)");
  std::size_t size = framed.size() - 5;
  if (size > options_.max_send_bytes)
    throw error(code::resource_exhausted, fmt::format("a response message of {} bytes is over grpc.max_send_bytes ({})",
      size, options_.max_send_bytes));
  auto n = static_cast<std::uint32_t>(size);
  framed[1] = static_cast<char>(n >> 24);
  framed[2] = static_cast<char>(n >> 16);
  framed[3] = static_cast<char>(n >> 8);
  framed[4] = static_cast<char>(n);
  if (auto* headers = out_->unsent_headers()) {
    add_all(*headers, initial_);
    initial_.clear();
  }
  co_await out_->write(framed);
}

http::handler unary_handler(unary_method m, options o)
{
  return [m = std::move(m), o](http::request& req) -> task<http::response> {
    server_context ctx{req, o};
    std::string framed;
    try {
      ctx.begin(nullptr);
      auto q = co_await ctx.read_bytes();
      if (!q)
        throw error(code::internal, "the call ended before its request message");
      framed = ctx.frame(co_await m(ctx, std::move(*q)));
    } catch (const error& e) {
      co_return trailers_only(ctx, e.code(), e.message());
    }
    // Anything else reaches http::answer_failure: INTERNAL (a 500), or
    // DEADLINE_EXCEEDED past the deadline (a 504), and is logged there.
    http::response r;
    r.headers.add("content-type", "application/grpc");
    add_all(r.headers, ctx.initial_metadata());
    r.body = std::move(framed);
    add_status(r.trailers, code::ok, {}, ctx.trailing_metadata());
    co_return r;
  };
}

namespace {

// A streaming call, inside its response's producer: the headers wait for
// the first message (or go with the status), the deadline is the call's.
task<void> run_streaming(const streaming_method& m, const options& o, http::request& req, http::body_writer& out)
{
  server_context ctx{req, o};
  code c = code::ok;
  std::string message;
  try {
    ctx.begin(&out);
    if (req.deadline == clock::time_point::max())
      co_await m(ctx);
    else
      co_await with_deadline(m(ctx), req.deadline);
  } catch (const error& e) {
    c = e.code();
    message = e.what();
  } catch (const timeout_error&) {
    c = code::deadline_exceeded;
    message = "the call's deadline passed";
  } catch (const std::system_error& e) {
    // Mostly a client that cancelled (the stream reset): nobody to answer.
    spdlog::debug("grpc {}: {}", req.path, e.what());
    c = code::internal;
    message = "internal error";
  } catch (const std::exception& e) {
    spdlog::error("grpc {}: {}", req.path, e.what());
    c = code::internal;
    message = "internal error";
  }
  if (auto* headers = out.unsent_headers())
    add_all(*headers, ctx.initial_metadata());
  add_status(out.trailers(), c, message, ctx.trailing_metadata());
}

} // namespace

http::handler streaming_handler(streaming_method m, options o)
{
  return [m = std::move(m), o](http::request& req) -> task<http::response> {
    co_return http::response::streamed(http::status::ok, "application/grpc",
      [&m, &o, &req](http::body_writer& out) { return run_streaming(m, o, req, out); });
  };
}

} // namespace coronet::grpc
