#include "http/connection.hpp"

#include <coronet/http/headers.hpp>
#include <coronet/metrics.hpp>
#include <coronet/time.hpp>

#include <asio/redirect_error.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>

#include <algorithm>
#include <array>
#include <charconv>
#include <string>
#include <vector>
#include <cstdint>
#include <ctime>
#include <optional>

namespace coronet::http::detail {

std::string_view http_date_now()
{
  thread_local std::time_t last = 0;
  thread_local char text[64] = {};
  std::time_t now = std::time(nullptr);
  if (now != last) {
    last = now;
    std::tm utc{};
    gmtime_r(&now, &utc);
    std::strftime(text, sizeof text, "%a, %d %b %Y %H:%M:%S GMT", &utc);
  }
  return text;
}

bool server_owned_header(std::string_view name) noexcept
{
  return iequals(name, "Content-Length") || iequals(name, "Connection") || iequals(name, "Date") ||
         iequals(name, "Transfer-Encoding");
}

bool trailer_excluded(std::string_view name) noexcept
{
  static constexpr std::string_view never[] = {"Content-Length", "Transfer-Encoding", "Content-Type",
    "Content-Encoding", "Content-Range", "Trailer", "Host", "Connection", "Keep-Alive", "Proxy-Connection",
    "Upgrade", "TE", "Date", "Server"};
  if (name.empty() || name.front() == ':')
    return true;
  for (auto n : never)
    if (iequals(name, n))
      return true;
  return false;
}

admission_ticket::admission_ticket(const connection_settings& settings, const request& req)
  : queue_timeout_(settings.options.queue_timeout)
{
  auto max = settings.options.max_concurrent_requests;
  if (max == 0 || req.path == "/healthz" || req.path == "/readyz" || req.path == "/metrics")
    return;
  admission_ = &settings.admissions[runtime::current_worker().value_or(0)];
  if (admission_->running < max && admission_->waiting.empty()) {
    ++admission_->running;
    counted_ = true;
    return;
  }
  admitted_ = false;
}

admission_ticket::~admission_ticket()
{
  if (!counted_)
    return;
  // The place goes to the first request waiting, if any, else back.
  if (auto* next = admission_->waiting.pop_front()) {
    next->granted.wake();
    return;
  }
  --admission_->running;
}

// GCC 12 misreads the coroutine frames' class-specific operator new/delete
// pair (Asio's recycling allocator) in these functions as mismatched.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

task<bool> admission_ticket::wait()
{
  if (admitted_)
    co_return true;
  if (queue_timeout_.count() > 0) {
    admission_waiter me{co_await asio::this_coro::executor};
    admission_->waiting.push_back(&me);
    bool granted = false;
    try {
      granted = co_await me.granted.wait_until(clock::now() + queue_timeout_);
    } catch (const std::system_error&) {
      // Cancelled while queued: not admitted, as when the time runs out.
    }
    if (me.linked_)
      admission_->waiting.remove(&me);
    counted_ = admitted_ = granted;
  }
  co_return admitted_;
}

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

namespace {

// A non-negative decimal of at most `digits` digits.
std::optional<std::int64_t> number(std::string_view text, std::size_t digits)
{
  if (text.empty() || text.size() > digits)
    return std::nullopt;
  std::int64_t n = 0;
  for (char c : text) {
    if (c < '0' || c > '9')
      return std::nullopt;
    n = n * 10 + (c - '0');
  }
  return n;
}

// grpc-timeout: up to 8 digits and a unit (H, M, S, m, u, n).
std::optional<clock::duration> grpc_timeout(std::string_view text)
{
  if (text.size() < 2)
    return std::nullopt;
  auto n = number(text.substr(0, text.size() - 1), 8);
  if (!n)
    return std::nullopt;
  using namespace std::chrono;
  constexpr std::int64_t year_s = 365 * 24 * 3600; // longer is as good as none, and would overflow
  switch (text.back()) {
  case 'H': return duration_cast<clock::duration>(seconds{std::min(*n * 3600, year_s)});
  case 'M': return duration_cast<clock::duration>(seconds{std::min(*n * 60, year_s)});
  case 'S': return duration_cast<clock::duration>(seconds{std::min(*n, year_s)});
  case 'm': return duration_cast<clock::duration>(milliseconds{*n});
  case 'u': return duration_cast<clock::duration>(microseconds{*n});
  case 'n': return duration_cast<clock::duration>(nanoseconds{*n});
  default: return std::nullopt;
  }
}

} // namespace

bool take_deadline(request& req, const server_options& options)
{
  std::optional<clock::duration> asked;
  if (auto ms = req.header("X-Request-Timeout-Ms"))
    if (auto n = number(*ms, 10)) // up to 115 days: no overflow
      asked = std::chrono::milliseconds{*n};
  if (!asked)
    if (auto g = req.header("grpc-timeout"))
      asked = grpc_timeout(*g);
  auto cap = options.request_timeout;
  if (!asked && cap.count() == 0)
    return true; // the common case: nobody said
  auto budget = asked.value_or(clock::duration::max());
  if (cap.count() > 0 && budget > cap)
    budget = cap;
  if (budget <= clock::duration::zero())
    return false;
  req.deadline = clock::now() + budget;
  return true;
}

response expired_response()
{
  static auto& expired = metrics::registry::global()
                           .counters("coronet_http_requests_expired_total",
                             "Requests answered 504 at once: their caller's deadline had passed on arrival.", {})
                           .with({});
  expired.inc();
  return response::text(status::gateway_timeout, "Gateway Timeout: the request's deadline has passed\n");
}

response shed_response()
{
  static auto& shed = metrics::registry::global()
                        .counters("coronet_http_requests_shed_total",
                          "Requests answered 503 at once: http.max_concurrent_requests handlers were running and "
                          "none finished within http.queue_timeout_ms.",
                          {})
                        .with({});
  shed.inc();
  auto r = response::text(status::service_unavailable, "Service Unavailable: too busy, try again\n");
  r.headers.add("Retry-After", "1");
  return r;
}

asio::ip::address unmapped(const asio::ip::address& a)
{
  if (a.is_v6() && a.to_v6().is_v4_mapped())
    return asio::ip::make_address_v4(asio::ip::v4_mapped, a.to_v6());
  return a;
}

namespace {

// One hop of X-Forwarded-For or one for= of Forwarded: "203.0.113.7",
// "[2001:db8::1]:4711", "\"[2001:db8::1]\"", "198.51.100.1:8080".
std::optional<asio::ip::address> hop_address(std::string_view hop)
{
  hop = trim_blanks(hop);
  if (hop.size() >= 2 && hop.front() == '"' && hop.back() == '"')
    hop = hop.substr(1, hop.size() - 2);
  if (!hop.empty() && hop.front() == '[') {
    auto close = hop.find(']');
    if (close == std::string_view::npos)
      return std::nullopt;
    hop = hop.substr(1, close - 1);
  } else if (std::count(hop.begin(), hop.end(), ':') == 1) {
    hop = hop.substr(0, hop.find(':')); // IPv4 with a port
  }
  std::error_code ec;
  auto a = asio::ip::make_address(std::string(hop), ec);
  if (ec)
    return std::nullopt;
  return unmapped(a);
}

bool trusted(const server_options& o, const asio::ip::address& a)
{
  return std::any_of(o.trusted_proxies.begin(), o.trusted_proxies.end(), [&](auto& n) { return n.contains(a); });
}

// The hops a trusted proxy reports, nearest last: Forwarded's for= values
// when it sent Forwarded, else X-Forwarded-For's.
std::vector<std::string_view> forwarded_hops(const request& req)
{
  std::vector<std::string_view> hops;
  bool forwarded = false;
  for (auto& [name, value] : req.headers) {
    if (!iequals(name, "Forwarded"))
      continue;
    forwarded = true;
    for (auto element : list_items(value)) // "for=a;proto=https", "for=b"
      for (std::size_t at = 0; at < element.size();) {
        auto end = element.find(';', at);
        auto pair = trim_blanks(element.substr(at, end == std::string_view::npos ? std::string_view::npos : end - at));
        if (pair.size() > 4 && iequals(pair.substr(0, 4), "for="))
          hops.push_back(pair.substr(4));
        at = end == std::string_view::npos ? element.size() : end + 1;
      }
  }
  if (forwarded)
    return hops;
  for (auto& [name, value] : req.headers)
    if (iequals(name, "X-Forwarded-For"))
      for (auto hop : list_items(value))
        hops.push_back(hop);
  return hops;
}

} // namespace

peer_address peer_of(const net::stream& s, const server_options& options)
{
  peer_address p;
  auto at = s.remote_endpoint();
  auto ip = unmapped(at.address());
  p.ip = ip.to_string();
  p.text = ip.is_v6() ? "[" + p.ip + "]:" + std::to_string(at.port()) : p.ip + ":" + std::to_string(at.port());
  p.trusted = trusted(options, ip);
  return p;
}

void set_peer(request& req, const peer_address& peer, const server_options& options)
{
  req.peer = peer.text;
  req.client_ip = peer.ip;
  if (!peer.trusted)
    return;
  // From the nearest hop back: the first that is not a trusted proxy sent
  // the request. A hop that is no address ("unknown", a made-up name) ends
  // the walk at the last proxy that could be believed.
  auto hops = forwarded_hops(req);
  for (auto hop = hops.rbegin(); hop != hops.rend(); ++hop) {
    auto a = hop_address(*hop);
    if (!a)
      return;
    req.client_ip = a->to_string();
    if (!trusted(options, *a))
      return;
  }
}

} // namespace coronet::http::detail
