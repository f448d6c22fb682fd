#include <coronet/http/router.hpp>

#include <coronet/http/error.hpp>
#include <coronet/metrics.hpp>
#include <coronet/time.hpp>

#include <spdlog/spdlog.h>

#include <asio/error.hpp>

#include <stdexcept>
#include <system_error>

namespace coronet::http {

namespace {

// The next non-empty '/'-separated segment of `path` from `at`; empty at the
// end. Repeated slashes count as one, as they did when routes were added.
std::string_view next_segment(std::string_view path, std::size_t& at)
{
  while (at < path.size() && path[at] == '/')
    ++at;
  auto end = path.find('/', at);
  if (end == std::string_view::npos)
    end = path.size();
  auto seg = path.substr(at, end - at);
  at = end;
  return seg;
}

bool is_param(std::string_view seg)
{
  return seg.size() > 2 && seg.front() == '{' && seg.back() == '}';
}

} // namespace

void router::add(std::string method, std::string_view pattern, handler h)
{
  if (pattern.empty() || pattern.front() != '/')
    throw std::invalid_argument("route pattern must start with '/': " + std::string(pattern));
  route r{std::move(method), std::string(pattern), {}, std::move(h)};
  std::size_t at = 0;
  for (auto seg = next_segment(pattern, at); !seg.empty(); seg = next_segment(pattern, at)) {
    if (!r.segments.empty() && r.segments.back() == "*")
      throw std::invalid_argument("'*' must be the last segment: " + std::string(pattern));
    r.segments.emplace_back(seg);
  }
  routes_.push_back(std::move(r));
}

router::match router::find(request& req) const
{
  match m;
  std::string_view path = req.path;
  for (auto& r : routes_) {
    std::size_t at = 0;
    std::size_t params = 0;
    bool ok = true;
    for (auto& seg : r.segments) {
      if (seg == "*") {
        at = path.size();
        break;
      }
      auto part = next_segment(path, at);
      if (part.empty() || (!is_param(seg) && seg != part)) {
        ok = false;
        break;
      }
      params += is_param(seg);
    }
    if (!ok || !next_segment(path, at).empty())
      continue;
    bool method_ok = r.method == req.method || (req.method == "HEAD" && r.method == "GET");
    if (!method_ok) {
      if (m.allow.find(r.method) == std::string::npos)
        m.allow += (m.allow.empty() ? "" : ", ") + r.method;
      m.status = status::method_not_allowed;
      continue;
    }
    coronet::detail::give_strings(req.params);
    if (params > 0) {
      at = 0;
      for (auto& seg : r.segments) {
        auto part = next_segment(path, at);
        if (is_param(seg))
          req.params.emplace_back(coronet::detail::pooled_string(std::string_view(seg).substr(1, seg.size() - 2)),
            coronet::detail::pooled_string(part));
      }
    }
    req.route = r.pattern;
    m.target = &r.h;
    m.status = status::ok;
    return m;
  }
  return m;
}

task<response> router::handle(request& req) const
{
  auto m = find(req);
  co_return co_await run(req, 0, m);
}

namespace {

task<response> ready(response r)
{
  co_return r;
}

// The handler, under its request's deadline when the request has one
// (http.request_timeout_ms, X-Request-Timeout-Ms, grpc-timeout): past it,
// whatever the handler awaits is cancelled, and answer_failure answers 504.
task<response> on_time(const handler& h, request& req)
{
  if (req.deadline == clock::time_point::max())
    return h(req);
  return with_deadline(h(req), req.deadline);
}

response unmatched(const router::match& m)
{
  auto r = status_response(m.status);
  if (m.status == status::method_not_allowed)
    r.headers.add("Allow", m.allow);
  return r;
}

} // namespace

task<response> router::dispatch(request& req) const
{
  if (!middleware_.empty())
    return handle(req);
  auto m = find(req);
  if (!m.target)
    return ready(unmatched(m));
  return on_time(*m.target, req);
}

task<response> next::operator()(request& req) const
{
  return router_->run(req, index_, *match_);
}

task<response> router::run(request& req, std::size_t index, const match& m) const
{
  std::exception_ptr failure;
  try {
    if (index < middleware_.size())
      co_return co_await middleware_[index](req, next{*this, index + 1, m});
    if (!m.target)
      co_return unmatched(m);
    co_return co_await on_time(*m.target, req);
  } catch (...) {
    failure = std::current_exception();
  }
  // A cancelled request (its HTTP/2 stream reset) is no failure and has
  // nobody to answer: it unwinds the whole chain, and is counted once, where
  // the protocol answers it.
  if (is_cancellation(failure))
    std::rethrow_exception(failure);
  co_return answer_failure(failure, req, index < middleware_.size() ? "middleware" : "handler");
}

} // namespace coronet::http
