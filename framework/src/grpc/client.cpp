#include <coronet/grpc/client.hpp>

#include <coronet/http/status.hpp>

#include "grpc/framing.hpp"
#include "http2/grpc.hpp"
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
  return r;
}

error transport_error(const http::client_error& e)
{
  if (e.kind() == http::client_errc::timeout)
    return error(code::deadline_exceeded, e.what());
  return error(code::unavailable, e.what());
}

// The answer's status: grpc-status (from the trailers, or a Trailers-Only
// answer's headers); an HTTP answer that is no gRPC one, by gRPC's table.
void check_status(const http::client_response& r)
{
  if (r.status != 200) {
    auto s = static_cast<http::status>(r.status);
    int c = s == http::status::gateway_timeout || s == http::status::bad_gateway ? 14 : http::detail::grpc_code_for(s);
    throw error(static_cast<code>(c), fmt::format("HTTP {} from the server", r.status));
  }
  auto status = r.header("grpc-status");
  if (!status)
    throw error(code::internal, "the answer has no grpc-status");
  int c = 0;
  auto [end, ec] = std::from_chars(status->data(), status->data() + status->size(), c);
  if (ec != std::errc{} || end != status->data() + status->size() || c < 0)
    throw error(code::internal, fmt::format("grpc-status {} is not a number", *status));
  if (c != 0)
    throw error(c > 16 ? code::unknown : static_cast<code>(c), percent_decode(r.header("grpc-message").value_or("")));
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
  check_status(r);
  call_result out;
  out.messages = messages_of(r, options_);
  out.metadata = std::move(r.headers);
  co_return out;
}

} // namespace coronet::grpc
