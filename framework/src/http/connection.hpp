#pragma once
// What the server's HTTP/1 and HTTP/2 connections share: the settings every
// connection of one server reads, and the link the drain reaches them by.
#include <coronet/detail/intrusive_list.hpp>
#include <coronet/http/router.hpp>
#include <coronet/http/server_options.hpp>
#include <coronet/net/stream.hpp>
#include <coronet/runtime.hpp>
#include <coronet/task.hpp>

#include <coronet/time.hpp>

#include <chrono>
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace coronet::http::detail {

// A connection idle when the server stops is closed once it has been idle
// this long, counted from its last response, on either protocol: a client
// that just got a response may already have sent its next request (HTTP/2:
// before it read the GOAWAY), and closing under it would cut that request
// off. In the grace the request is served (HTTP/1.1 with Connection: close).
// A second, not less: on a loaded machine a client may stall for over 100 ms
// before it sends (100 ms from the stop cut off all 32 of wrk's connections
// once in CI, 20 ms one request now and then). A connection idle for longer
// is one the client is not using; it closes after drain_idle_floor, in case
// a request is on its way at this very moment.
inline constexpr std::chrono::milliseconds drain_idle_grace{1000};
inline constexpr std::chrono::milliseconds drain_idle_floor{100};

// Load shedding (http.max_concurrent_requests, http.queue_timeout_ms): the
// handlers running on one worker, and the requests waiting for one of them
// to finish. Only that worker touches it.
struct admission_waiter {
  explicit admission_waiter(const asio::any_io_executor& ex) : granted(ex) {}
  wakeup granted; // woken: a finishing request handed its place over
  admission_waiter* prev_ = nullptr;
  admission_waiter* next_ = nullptr;
  bool linked_ = false;
};

struct admission {
  std::size_t running = 0;
  coronet::detail::intrusive_list<admission_waiter> waiting;
};

struct connection_settings {
  runtime& rt;
  const server_options& options;
  const router& routes;
  std::vector<admission>& admissions; // per worker
};

// A request's place among the worker's running handlers, given back when it
// goes out of scope. Health and metrics requests never take one: a loaded
// server still says it is alive and how it is doing.
class admission_ticket final {
public:
  admission_ticket(const connection_settings& settings, const request& req);
  ~admission_ticket();
  admission_ticket(const admission_ticket&) = delete;
  admission_ticket& operator=(const admission_ticket&) = delete;

  // Whether the handler may run now, without waiting (the common case, and
  // always when shedding is off).
  bool admitted() const noexcept { return admitted_; }
  // Waits up to http.queue_timeout_ms for a place; false: shed it.
  task<bool> wait();

private:
  admission* admission_ = nullptr;
  std::chrono::milliseconds queue_timeout_;
  bool admitted_ = true;
  bool counted_ = false;
};

// The answer to a shed request: 503 with Retry-After, counted in
// coronet_http_requests_shed_total.
response shed_response();

// Sets req.deadline from X-Request-Timeout-Ms (milliseconds left) or
// grpc-timeout ("250m", "2S"), capped by http.request_timeout_ms. False when
// the caller's budget is already spent: answer expired_response() without
// calling the handler (or anyone).
bool take_deadline(request& req, const server_options& options);
// 504, counted in coronet_http_requests_expired_total.
response expired_response();

// An IPv4-mapped IPv6 address (::ffff:10.0.0.5) as the IPv4 one; others as they are.
asio::ip::address unmapped(const asio::ip::address& a);

// The connection's peer as its requests carry it, worked out once per connection.
struct peer_address {
  std::string text;     // "10.0.0.5:51234", "[::1]:51234"
  std::string ip;       // "10.0.0.5"
  bool trusted = false; // in http.trusted_proxies: its forwarding headers are believed
};
peer_address peer_of(const net::stream& s, const server_options& options);
// Sets req.peer and req.client_ip (from X-Forwarded-For or Forwarded when
// the peer is a trusted proxy: the nearest address that is not one).
void set_peer(request& req, const peer_address& peer, const server_options& options);

// A connection in its worker's list, for the drain.
class server_connection {
public:
  // The server is stopping: finish what is in flight, take nothing new.
  // Call from the connection's worker.
  virtual void drain() noexcept = 0;

  server_connection* prev_ = nullptr;
  server_connection* next_ = nullptr;
  bool linked_ = false;

protected:
  ~server_connection() = default;
};

// "Tue, 15 Nov 1994 08:12:31 GMT", formatted at most once a second per worker.
std::string_view http_date_now();

// Whether a response with this status carries a body at all.
inline bool response_has_body(status s) noexcept
{
  int c = code(s);
  return c >= 200 && c != 204 && c != 304;
}

// Response headers the server owns on either protocol.
bool server_owned_header(std::string_view name) noexcept;
// Fields a response's trailers never carry (RFC 9110 6.5.1): framing,
// routing, the connection's, the body's own description, pseudo-fields.
bool trailer_excluded(std::string_view name) noexcept;

} // namespace coronet::http::detail
