#include <coronet/grpc/health.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <cstdint>
#include <variant>

namespace coronet::grpc {

namespace {

// A varint at `at` in `in`, advancing `at`; false past the end or over 10 bytes.
bool read_varint(std::string_view in, std::size_t& at, std::uint64_t& value)
{
  value = 0;
  for (int shift = 0; shift < 64 && at < in.size(); shift += 7) {
    auto byte = static_cast<unsigned char>(in[at++]);
    value |= static_cast<std::uint64_t>(byte & 0x7f) << shift;
    if (!(byte & 0x80))
      return true;
  }
  return false;
}

// HealthCheckRequest { string service = 1; }: the service's name; other
// fields are skipped. INTERNAL for bytes that are not a message.
std::string service_of(std::string_view in)
{
  std::string service;
  std::size_t at = 0;
  while (at < in.size()) {
    std::uint64_t tag = 0, n = 0;
    if (!read_varint(in, at, tag))
      throw error(code::internal, "a HealthCheckRequest that is not a message");
    switch (tag & 7) {
    case 0:
      if (!read_varint(in, at, n))
        throw error(code::internal, "a HealthCheckRequest that is not a message");
      break;
    case 1: at += 8; break;
    case 5: at += 4; break;
    case 2:
      if (!read_varint(in, at, n) || n > in.size() - at)
        throw error(code::internal, "a HealthCheckRequest that is not a message");
      if (tag >> 3 == 1)
        service.assign(in.substr(at, n));
      at += n;
      break;
    default: throw error(code::internal, "a HealthCheckRequest that is not a message");
    }
    if (at > in.size())
      throw error(code::internal, "a HealthCheckRequest that is not a message");
  }
  return service;
}

// HealthCheckResponse { ServingStatus status = 1; }
std::string response(health::serving_status s)
{
  return std::string{'\x08', static_cast<char>(s)};
}

} // namespace

health::health(runtime& rt, std::vector<std::string> services) : rt_(rt), services_(std::move(services))
{
  if (std::find(services_.begin(), services_.end(), "") == services_.end())
    services_.emplace_back(); // the server as a whole
}

std::optional<health::serving_status> health::status_of(std::string_view service_name) const
{
  if (std::find(services_.begin(), services_.end(), service_name) == services_.end())
    return std::nullopt;
  return rt_.stop_requested() ? serving_status::not_serving : serving_status::serving;
}

void health::mount(http::router& r, const options& o)
{
  r.post("/grpc.health.v1.Health/Check", unary_handler([this](server_context&, std::string q) -> task<std::string> {
    auto name = service_of(q);
    auto s = status_of(name);
    if (!s)
      throw error(code::not_found, fmt::format("no service {} here", name));
    co_return response(*s);
  }, o));
  r.post("/grpc.health.v1.Health/Watch", streaming_handler([this](server_context& ctx) -> task<void> {
    auto q = co_await ctx.read_bytes();
    if (!q)
      throw error(code::internal, "the call ended before its request message");
    auto name = service_of(*q);
    auto s = status_of(name);
    co_await ctx.write_bytes(response(s.value_or(serving_status::service_unknown)));
    if (!s || *s == serving_status::not_serving)
      co_return;
    auto done = rt_.done();
    co_await done.receive(); // the stop: the last change there will be
    co_await ctx.write_bytes(response(serving_status::not_serving));
  }, o));
}

} // namespace coronet::grpc
