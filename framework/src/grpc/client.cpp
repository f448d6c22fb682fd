#include <coronet/grpc/client.hpp>


#include "grpc/framing.hpp"
#include "middleware/codec.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <stdexcept>

namespace coronet::grpc {

using namespace std::string_view_literals;

channel::channel(http::client& c, std::string target, options o)
  : client_(c), target_(std::move(target)), options_(o)
{
  if (!target_.starts_with("http://") && !target_.starts_with("https://"))
    throw std::invalid_argument(fmt::format("grpc channel target {}: http://host:port or https://host:port", target_));
  while (target_.ends_with('/'))
    target_.pop_back();
}

namespace {

// grpc-timeout: at most 8 digits, in the finest unit that holds them.
std::string grpc_timeout(clock::duration left)
{
  auto ms = std::max<std::int64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(left).count(), 1);
  if (ms <= 99'999'999)
    return fmt::format("{}m", ms);
  return fmt::format("{}S", std::min<std::int64_t>(ms / 1000, 99'999'999));
}

// A grpc-status field's number, if it is one.
std::optional<int> parse_status(std::string_view field)
{
  int c = 0;
  auto [end, ec] = std::from_chars(field.data(), field.data() + field.size(), c);
  if (ec != std::errc{} || end != field.data() + field.size() || c < 0)
    return std::nullopt;
  return c;
}

// An answer's grpc-status, if it has one that reads as a number.
std::optional<int> status_of(const http::client_response& r)
{
  auto status = r.header("grpc-status");
  if (r.status != 200 || !status)
    return std::nullopt;
  return parse_status(*status);
}

http::request_options request_for(std::string_view target, call_options& o)
{
  http::request_options r;
  r.headers = std::move(o.metadata);
  r.headers.add("content-type", "application/grpc");
  r.headers.add("te", "trailers");
  std::optional<clock::time_point> deadline = o.deadline;
  if (o.timeout.count() > 0)
    deadline = std::min(deadline.value_or(clock::time_point::max()), clock::now() + o.timeout);
  if (deadline && *deadline != clock::time_point::max()) {
    r.deadline = *deadline;
    r.headers.add("grpc-timeout", grpc_timeout(*deadline - clock::now()));
  }
  r.name = std::string(target);
  r.retryable = o.retryable;
  if (o.retryable) {
    r.hedge_after = o.hedge_after;
    r.retry_answer = [codes = std::move(o.retry_on)](const http::client_response& answer) {
      auto c = status_of(answer);
      return c && std::find(codes.begin(), codes.end(), static_cast<code>(*c)) != codes.end();
    };
  }
  return r;
}

error transport_error(const http::client_error& e)
{
  if (e.kind() == http::client_errc::timeout)
    return error(code::deadline_exceeded, e.what());
  return error(code::unavailable, e.what());
}

// The answer's status: grpc-status (from the trailers, or a Trailers-Only
// answer's headers); an HTTP answer that is no gRPC one, by gRPC's table
// (code_for_http_status).
void check_status(int http_status, const http::headers& fields)
{
  if (http_status != 200)
    throw error(code_for_http_status(http_status), fmt::format("HTTP {} from the server", http_status));
  auto status = fields.get("grpc-status");
  if (!status)
    throw error(code::internal, "the answer has no grpc-status");
  auto c = parse_status(*status);
  if (!c)
    throw error(code::internal, fmt::format("grpc-status {} is not a number", *status));
  if (*c != 0)
    throw error(*c > 16 ? code::unknown : static_cast<code>(*c), percent_decode(fields.get("grpc-message").value_or("")));
}

std::vector<std::string> messages_of(const http::client_response& r, const options& o)
{
  std::vector<std::string> out;
  std::string_view body = r.body;
  bool gzip = r.header("grpc-encoding") == "gzip"sv;
  while (!body.empty()) {
    auto head = detail::read_head(body, o.max_receive_bytes, "grpc.max_receive_bytes");
    if (!head || body.size() - 5 < head->length)
      throw error(code::internal, "the answer ended inside a message");
    auto bytes = body.substr(5, head->length);
    body.remove_prefix(5 + head->length);
    if (!head->compressed)
      out.emplace_back(bytes);
    else if (!gzip)
      throw error(code::internal, "a compressed message, and no grpc-encoding");
    else
      out.push_back(http::detail::decompress(http::detail::coding::gzip, bytes, o.max_receive_bytes));
  }
  return out;
}

} // namespace

task<call_result> channel::call(std::string path, std::vector<std::string> requests, call_options o)
{
  std::string body;
  for (auto& m : requests) {
    if (m.size() > options_.max_send_bytes)
      throw error(code::resource_exhausted, fmt::format("a request message of {} bytes is over grpc.max_send_bytes ({})",
        m.size(), options_.max_send_bytes));
    detail::append_framed(body, m);
  }
  auto request = request_for(path, o);
  http::client_response r;
  try {
    r = co_await client_.post(target_ + path, std::move(body), std::move(request));
  } catch (const http::client_error& e) {
    throw transport_error(e);
  }
  check_status(r.status, r.headers);
  call_result out;
  out.messages = messages_of(r, options_);
  out.metadata = std::move(r.headers);
  co_return out;
}

task<raw_call> channel::open(std::string path, call_options o)
{
  auto request = request_for(path, o);
  request.timeout = std::chrono::milliseconds{0};
  try {
    auto s = co_await client_.stream("POST", target_ + path, std::move(request));
    co_return raw_call(std::move(s), options_);
  } catch (const http::client_error& e) {
    throw transport_error(e);
  }
}

// GCC 12 misreads the coroutine frames' operator new/delete pair as mismatched.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

task<bool> raw_call::write(std::string message)
{
  if (message.size() > options_.max_send_bytes)
    throw error(code::resource_exhausted, fmt::format("a request message of {} bytes is over grpc.max_send_bytes ({})",
      message.size(), options_.max_send_bytes));
  std::string framed;
  framed.reserve(message.size() + 5);
  detail::append_framed(framed, message);
  try {
    auto sent = stream_.write(std::move(framed)); // named: GCC 12 and temporaries in co_await
    co_await std::move(sent);
  } catch (const http::client_error&) {
    co_return false; // the call has ended: read() or finish() says how
  } catch (const std::system_error&) {
    co_return false; // cancelled
  }
  co_return true;
}

// The response's head: an HTTP answer that is no gRPC one, or a
// Trailers-Only answer, ends the call here.
task<void> raw_call::begin()
{
  started_ = true;
  co_await stream_.read_head();
  const auto& r = stream_.response();
  if (r.status != 200 || r.header("grpc-status")) {
    check_status(r.status, r.headers);
    ended_ = true;
    co_return;
  }
  auto encoding = r.header("grpc-encoding");
  gzip_ = encoding == "gzip"sv;
  if (encoding && !gzip_ && *encoding != "identity"sv)
    throw error(code::internal, fmt::format("grpc-encoding {} is not one the client reads", *encoding));
}

// The next message, if all of it has arrived.
std::optional<std::string> raw_call::take()
{
  std::string_view rest{in_.data() + in_at_, in_.size() - in_at_};
  auto head = detail::read_head(rest, options_.max_receive_bytes, "grpc.max_receive_bytes");
  if (!head || rest.size() - 5 < head->length)
    return std::nullopt;
  auto bytes = rest.substr(5, head->length);
  in_at_ += 5 + head->length;
  if (!head->compressed)
    return std::string(bytes);
  if (!gzip_)
    throw error(code::internal, "a compressed message, and no grpc-encoding");
  return http::detail::decompress(http::detail::coding::gzip, bytes, options_.max_receive_bytes);
}

// More of the body; false at its end, whose status is then checked.
task<bool> raw_call::fill()
{
  auto piece = co_await stream_.read();
  if (!piece) {
    if (in_at_ != in_.size())
      throw error(code::internal, "the answer ended inside a message");
    check_status(200, stream_.trailers());
    ended_ = true;
    co_return false;
  }
  if (in_at_ == in_.size()) {
    in_ = std::move(*piece);
    in_at_ = 0;
  } else {
    in_.erase(0, in_at_);
    in_at_ = 0;
    in_ += *piece;
  }
  co_return true;
}

task<std::optional<std::string>> raw_call::read()
{
  try {
    if (!started_)
      co_await begin();
    for (;;) {
      if (ended_)
        co_return std::nullopt;
      if (auto m = take())
        co_return m;
      co_await fill();
    }
  } catch (const http::client_error& e) {
    throw transport_error(e);
  } catch (const error&) {
    stream_.cancel(); // a status ends the call; one found here ends the stream too
    throw;
  } catch (const std::system_error& e) {
    if (e.code() == asio::error::operation_aborted && stream_.ended())
      throw error(code::cancelled, "the call was cancelled");
    throw;
  }
}

task<void> raw_call::finish()
{
  while (auto m = co_await read())
    (void)m;
}

void raw_call::cancel() noexcept
{
  stream_.cancel();
}

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

} // namespace coronet::grpc
