#include <coronet/http/middleware.hpp>

#include <spdlog/async.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <random>

namespace coronet::http {

namespace {

bool sane_id(std::string_view id)
{
  if (id.empty() || id.size() > 128)
    return false;
  for (char c : id) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
              c == '.' || c == ':';
    if (!ok)
      return false;
  }
  return true;
}

const std::shared_ptr<spdlog::logger>& access_logger()
{
  static const std::shared_ptr<spdlog::logger> logger = [] {
    if (auto existing = spdlog::get("access"))
      return existing;
    // The default overflow policy blocks: a full queue makes the writer
    // wait rather than drop lines.
    auto l = spdlog::create_async<spdlog::sinks::stdout_sink_mt>("access");
    l->set_pattern("%Y-%m-%dT%H:%M:%S.%e access %v");
    l->set_level(spdlog::level::info);
    l->flush_on(spdlog::level::info);
    return l;
  }();
  return logger;
}

bool lower_hex(std::string_view s) noexcept
{
  return std::all_of(s.begin(), s.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

// "00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>", ids not all zero
// (W3C Trace Context, level 1).
bool valid_traceparent(std::string_view t) noexcept
{
  if (t.size() != 55 || t.substr(0, 3) != "00-" || t[35] != '-' || t[52] != '-')
    return false;
  auto trace = t.substr(3, 32), parent = t.substr(36, 16), flags = t.substr(53, 2);
  return lower_hex(trace) && lower_hex(parent) && lower_hex(flags) &&
         trace != std::string_view("00000000000000000000000000000000") && parent != std::string_view("0000000000000000");
}

// A traceparent in trace `trace` (32 hex digits) with a new span id.
std::string traceparent_in(std::string_view trace, std::string_view flags)
{
  return std::string("00-").append(trace).append("-").append(new_request_id()).append("-").append(flags);
}

} // namespace

std::string new_request_id()
{
  thread_local std::mt19937_64 random{std::random_device{}()};
  static constexpr char hex[] = "0123456789abcdef";
  std::uint64_t bits = random();
  std::string id(16, '0');
  for (int i = 15; i >= 0; --i, bits >>= 4)
    id[static_cast<std::size_t>(i)] = hex[bits & 0xf];
  return id;
}

middleware request_ids()
{
  return [](request& req, next rest) -> task<response> {
    auto given = req.header("X-Request-Id");
    req.id = given && sane_id(*given) ? std::string(*given) : new_request_id();
    auto trace = req.header("traceparent");
    if (trace && valid_traceparent(*trace))
      req.traceparent.assign(*trace);
    else
      req.traceparent = traceparent_in(new_request_id() + new_request_id(), "01");
    auto r = co_await rest(req);
    r.headers.set("X-Request-Id", req.id);
    co_return r;
  };
}

middleware access_log()
{
  access_logger(); // created now, not on the first request
  return [](request& req, next rest) -> task<response> {
    auto& logger = access_logger();
    auto start = std::chrono::steady_clock::now();
    auto r = co_await rest(req);
    auto us = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - start).count();
    std::string_view trace = req.traceparent.size() == 55 ? std::string_view{req.traceparent}.substr(3, 32) : "-";
    logger->info("{} {} {} {}B {}us id={} trace={} client={}", req.method, req.target, code(r.status), r.body.size(),
      us, req.id.empty() ? "-" : req.id, trace, req.client_ip.empty() ? "-" : req.client_ip);
    co_return r;
  };
}

std::string child_traceparent(std::string_view traceparent)
{
  if (traceparent.size() != 55)
    return {};
  return traceparent_in(traceparent.substr(3, 32), traceparent.substr(53, 2));
}

} // namespace coronet::http
