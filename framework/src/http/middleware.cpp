#include <coronet/http/middleware.hpp>

#include <spdlog/async.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

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
    logger->info("{} {} {} {}B {}us id={}", req.method, req.target, code(r.status), r.body.size(), us,
      req.id.empty() ? "-" : req.id);
    co_return r;
  };
}

} // namespace coronet::http
