#pragma once
// An asynchronous HTTP client: HTTP/1.1 with a keep-alive connection pool per
// host, or HTTP/2 with calls multiplexed over one connection per host and
// worker (h2 by ALPN to https:// servers that offer it; h2c with
// client_options::http2 = prior_knowledge); over TCP or TLS (https://: SNI,
// the host name and the certificate checked against the system CA store or
// client.ca_file; sessions resumed). The call API is the same for both; on
// HTTP/2 a call that times out or is cancelled resets its stream only.
//
//   http::client client{rt};
//   auto r = co_await client.get("http://127.0.0.1:8081/users/7");
//   if (r.status == 200) use(r.body);
//
//   http::request_options o;
//   o.timeout = 200ms;                      // this call, all of it
//   o.deadline = request_deadline;          // and never past the caller's
//   o.headers.add("X-Request-Id", req.id);
//   o.name = "users";                       // the metrics label
//   auto r = co_await client.get(url, std::move(o));
//
// Every failure is a client_error whose kind() tells refused, reset,
// timeout and malformed responses apart; a status code (404, 500...) is a
// response, not an error. Pools live per worker (no locks on the request
// path), so `max_connections_per_host` is per worker. A connection is reused
// only when its response was complete and allowed keep-alive; one that
// failed is closed. A request that meets a stale keep-alive connection (the
// server closed it while it sat in the pool) before any byte of a response
// is retried once on a new connection when its method is idempotent. A TLS
// failure (client_errc::tls) is never retried.
//
// Replicas. A URL whose host name resolves to several addresses (a
// Kubernetes headless Service), or an http::upstream of several URLs, is a
// set of replicas: each call goes to one chosen by power of two choices on
// the calls in flight; the name is resolved again every dns_refresh. A
// replica that cannot be connected to is skipped at once (the call goes to
// another); one that fails eject_after_failures times in a row (connect
// failures, resets, timeouts, 5xx) is left out for eject_time, twice as long
// each time it fails again, then tried by one call. Idempotent calls (or
// those marked retryable) that meet a reset before any response, or a 502,
// 503 or 504 (or an answer their retry_answer refuses: gRPC's retryable
// statuses), are sent again to another replica after a jittered
// exponential backoff, never past their deadline, while the retry budget
// allows (retry_budget_percent of calls plus retry_budget_min_per_second).
// A call with hedge_after that has no answer by then is also sent to a
// second replica; the first answer wins and the other is cancelled.
// Replica state and the budget are per worker, like the pools.
#include <coronet/config.hpp>
#include <coronet/http/headers.hpp>
#include <coronet/http/request.hpp>
#include <coronet/net/tls.hpp>

#include <asio/ip/tcp.hpp>
#include <coronet/runtime.hpp>
#include <coronet/task.hpp>
#include <coronet/time.hpp>

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace coronet::http {

// [client]; its TLS keys are net::tls_client_keys.
inline constexpr config_key client_keys[] = {
  {"client.max_connections_per_host", 256, "per worker; calls past it wait for a free one", 1},
  {"client.max_idle_per_host", 256, "per worker; kept open for reuse", 1},
  {"client.connect_timeout_ms", 1000, "TCP connect, and the TLS handshake after it", 1},
  {"client.request_timeout_ms", 10000, "default budget of a call, connect to last byte", 1},
  {"client.idle_timeout_ms", 30000, "a pooled connection unused this long is not reused", 1},
  {"client.max_response_body_bytes", 16777216, "a bigger response is a response_too_large error", 1},
  {"client.http2", "auto",
    "\"auto\": h2 when an https:// server offers it by ALPN; \"prior_knowledge\": h2c to http:// too; \"off\""},
  {"client.h2c_targets", "",
    "origins called over h2c whatever `http2` says: \"http://10.0.0.5:8081, http://users:8081\""},
  {"client.dns_refresh_ms", 5000, "a host name with several addresses (replicas) is resolved again this often", 1},
  {"client.eject_after_failures", 5, "a replica failing this many calls in a row is left out; 0: never", 0, 1000000},
  {"client.eject_ms", 10000, "for this long, doubling while it keeps failing; then one probe call", 1},
  {"client.max_ejected_percent", 50, "of a target's replicas, at most", 0, 100},
  {"client.retry_budget_percent", 20, "retries and hedges may add this share of calls...", 0, 1000},
  {"client.retry_budget_min_per_second", 10, "...plus this many a second", 0, 1000000},
  {"client.max_retries", 2, "per call, after the first attempt", 0, 10},
  {"client.retry_backoff_ms", 10, "before the first retry; doubles, jittered", 0, 60000},
};

// Whether calls go over HTTP/2 (calls to one host then multiplex over one
// connection per worker, a second once the first is at the server's
// SETTINGS_MAX_CONCURRENT_STREAMS).
enum class http2_mode {
  automatic,       // h2 when an https:// server offers it by ALPN; HTTP/1.1 otherwise
  prior_knowledge, // also h2c (HTTP/2 without TLS) to http:// targets, without asking
  off,             // HTTP/1.1 only
};

struct client_options {
  // per worker; callers past it wait for one
  std::size_t max_connections_per_host = config_default<std::size_t>(client_keys, "client.max_connections_per_host");
  // per worker; more are closed when returned
  std::size_t max_idle_per_host = config_default<std::size_t>(client_keys, "client.max_idle_per_host");
  std::chrono::milliseconds connect_timeout{config_default<std::int64_t>(client_keys, "client.connect_timeout_ms")};
  // a call's default whole-exchange budget
  std::chrono::milliseconds request_timeout{config_default<std::int64_t>(client_keys, "client.request_timeout_ms")};
  // a pooled connection unused this long is closed
  std::chrono::milliseconds idle_timeout{config_default<std::int64_t>(client_keys, "client.idle_timeout_ms")};
  std::size_t max_response_header_bytes = 64 * 1024;
  std::size_t max_response_body_bytes = config_default<std::size_t>(client_keys, "client.max_response_body_bytes");
  net::tls_client_options tls; // for https://: CAs, client certificate, insecure_skip_verify
  std::shared_ptr<asio::ssl::context> tls_context; // made from `tls` when not given
  http2_mode http2 = http2_mode::automatic;
  // Per target, by origin as written in its URLs ("http://10.0.0.5:8081"): overrides `http2`
  // (client.h2c_targets lists origins to call over h2c).
  std::unordered_map<std::string, http2_mode> http2_targets;

  // Replicas and the policies over them (see the top of this file).
  std::chrono::milliseconds dns_refresh{config_default<std::int64_t>(client_keys, "client.dns_refresh_ms")};
  unsigned eject_after_failures = config_default<unsigned>(client_keys, "client.eject_after_failures");
  std::chrono::milliseconds eject_time{config_default<std::int64_t>(client_keys, "client.eject_ms")};
  unsigned max_ejected_percent = config_default<unsigned>(client_keys, "client.max_ejected_percent");
  unsigned retry_budget_percent = config_default<unsigned>(client_keys, "client.retry_budget_percent");
  unsigned retry_budget_min_per_second = config_default<unsigned>(client_keys, "client.retry_budget_min_per_second");
  unsigned max_retries = config_default<unsigned>(client_keys, "client.max_retries");
  // before the first retry; doubles, jittered 0.5-1.5x
  std::chrono::milliseconds retry_backoff{config_default<std::int64_t>(client_keys, "client.retry_backoff_ms")};
  std::chrono::milliseconds max_retry_backoff{200};

  // Where a host name's addresses come from: empty, the system's resolver
  // (asynchronous); set, this function, called on the worker at a name's
  // first call and every dns_refresh (so it must not block: a service
  // registry's cache, a test's script). No address is a resolve failure.
  std::function<std::vector<asio::ip::tcp::endpoint>(const std::string& host, unsigned short port)> resolve;

  // For tests: the clock ejections and the budget go by, and the source of
  // the jitter and the replica choice (values in [0, 1)). Empty: the steady
  // clock and a per-thread generator.
  std::function<clock::time_point()> now;
  std::function<double()> random;

  // The [client] section (client_keys and net::tls_client_keys). A TLS
  // file that cannot be used, or an unknown mode, is a config_error.
  static client_options from(const config& cfg);
};

struct client_response;

struct request_options {
  // User-provided, so request_options is not an aggregate: GCC 12 destroys
  // an aggregate temporary such as a defaulted `request_options{}` argument
  // twice when it sits in a co_await expression.
  request_options() {}

  http::headers headers;
  std::string body;                         // sent with Content-Length
  std::chrono::milliseconds timeout{0};     // 0: the client's request_timeout
  std::optional<clock::time_point> deadline; // the call ends by then, whatever `timeout` says
  std::string name;                         // label in metrics; default "host:port"
  bool retryable = false;                   // retry even though the method is not idempotent
  // >0: no answer by then, a second attempt goes to another replica.
  // hedge_at_p95: after the target's own p95 latency instead (its last 256
  // answers on this worker; at least 1 ms; no hedge until 32 are known).
  std::chrono::milliseconds hedge_after{0};
  static constexpr std::chrono::milliseconds hedge_at_p95{-1};
  // An answer to treat as a 503 is treated: a call that may be retried is
  // sent again (budgeted, after a backoff), and a hedge does not win with
  // it. gRPC's retry policy sets it to its retryable status codes; empty,
  // only 502, 503 and 504 are.
  std::function<bool(const client_response&)> retry_answer;
};

// What a handler's calls to other services carry from its request: the
// request's deadline, its X-Request-Id, and a traceparent in the same trace
// with a new span id (so the next service's log lines join this one's). Needs the
// request_ids() middleware (http::observe adds it) for the id and trace.
//   auto o = http::call_options(req);
//   o.timeout = 200ms;
//   auto r = co_await client.get(url, std::move(o));
request_options call_options(const request& req);

struct client_response {
  int status = 0;
  http::headers headers;
  std::string body;
  std::optional<std::string_view> header(std::string_view name) const noexcept { return headers.get(name); }
};

enum class client_errc {
  bad_url,            // not http(s)://host[:port][/path]
  resolve_failed,     // the host name did not resolve
  refused,            // nothing listens there
  connect_failed,     // unreachable, or another connect error
  reset,              // the connection broke while sending or receiving
  closed,             // the server closed the connection before the response ended
  timeout,            // the connect timeout, the call's timeout or its deadline passed (here, or a
                      // 504 from the server the deadline was carried to, once it has passed)
  malformed_response, // not HTTP/1.x as the parser accepts it
  response_too_large, // headers or body over the client's limits
  tls,                // the TLS handshake failed: a certificate that does not verify, a wrong host name...
  http2_required,     // a streamed call (client::stream) to a server, or a target, that is not called over HTTP/2
};

std::string_view to_string(client_errc e) noexcept;

class client_error : public std::runtime_error {
public:
  client_error(client_errc kind, const std::string& message) : std::runtime_error(message), kind_(kind) {}
  client_errc kind() const noexcept { return kind_; }

private:
  client_errc kind_;
};

namespace detail {
struct stream_call;
}

// A streamed call (client::stream): the request body is written and the
// response read piece by piece, both at once, over one HTTP/2 stream (what
// gRPC's streaming calls are made of). The stream is reset (RST_STREAM
// CANCEL) when it is cancelled, when its deadline passes, when a wait of its
// caller is cancelled, or when it is destroyed before its response ended.
// Use it from the worker that opened it, with at most one read and one write
// waiting at a time.
class client_stream final {
public:
  explicit client_stream(std::shared_ptr<detail::stream_call> s) noexcept;
  client_stream(client_stream&&) noexcept;
  client_stream& operator=(client_stream&&) noexcept;
  ~client_stream();

  // Sends `bytes` as the body's next piece; waits while 64 KiB written
  // earlier are still unsent (the server's flow-control window). Throws
  // client_error(closed) once the response has ended (the server may end it
  // before the request), or the stream's failure.
  task<void> write(std::string bytes);
  // The body ends (END_STREAM) after what was written. Idempotent.
  void close_write();
  // Waits for the response's head: status and headers (response()). A
  // response that ends with its head (HTTP/2's Trailers-Only) has no body.
  task<void> read_head();
  const client_response& response() const noexcept;
  // The response body's next piece, as it arrived (the server may send more
  // as it is read: flow control); std::nullopt at its end, when trailers()
  // holds the trailing fields.
  task<std::optional<std::string>> read();
  const http::headers& trailers() const noexcept;
  // Resets the stream if it is still open; later waits throw
  // std::system_error(operation_aborted).
  void cancel() noexcept;
  // The response has ended, or the stream failed or was cancelled.
  bool ended() const noexcept;

private:
  std::shared_ptr<detail::stream_call> s_;
};

class client final {
public:
  // Calls must come from `rt`'s workers.
  explicit client(runtime& rt, client_options options = {});
  ~client();
  client(const client&) = delete;
  client& operator=(const client&) = delete;

  task<client_response> get(std::string url, request_options options = {});
  task<client_response> post(std::string url, std::string body, request_options options = {});
  task<client_response> send(std::string method, std::string url, request_options options = {});

  // Opens a streamed call: returns once its stream is open (the headers are
  // sent, no body yet). HTTP/2 only: to an https:// server that offers h2,
  // or an h2c target (client.h2c_targets, client.http2 = "prior_knowledge");
  // anything else is a client_error(http2_required). Its deadline is
  // options.deadline or options.timeout, else none (the client's
  // request_timeout is for calls, not streams); options.body is not sent.
  // A replica that cannot be reached is skipped, as for calls; nothing is
  // retried once the stream is open.
  task<client_stream> stream(std::string method, std::string url, request_options options = {});

  struct pool_stats {
    std::size_t connects = 0; // new connections opened
    std::size_t reuses = 0;   // requests sent on a pooled connection
    std::size_t retries = 0;  // stale connections retried
    std::size_t resumed = 0;  // TLS connections that resumed an earlier session (no full handshake)
    std::size_t http2 = 0;    // calls made over HTTP/2
    std::size_t idle = 0;     // pooled now
  };
  // Summed over this client's pools on every worker; call from a worker.
  pool_stats stats() const;

  struct state;

private:
  friend class upstream;
  std::shared_ptr<state> state_;
};

// A service's replicas, called by path: several URLs (one per replica), or
// one whose host name resolves to several addresses. Calls balance, eject,
// retry and hedge as the client's options say (see the top of this file).
//   http::upstream orders{client, {"http://10.0.0.5:8082", "http://10.0.0.6:8082"}, "orders"};
//   auto r = co_await orders.get("/orders?user=7", http::call_options(req));
class upstream final {
public:
  // Throws client_error(bad_url) for a URL that is not http(s)://host[:port].
  upstream(client& c, const std::vector<std::string>& urls, std::string name = {});

  task<client_response> get(std::string path, request_options options = {});
  task<client_response> post(std::string path, std::string body, request_options options = {});
  task<client_response> send(std::string method, std::string path, request_options options = {});

  const std::string& name() const noexcept { return name_; }
  std::size_t size() const noexcept { return urls_.size(); }

private:
  std::shared_ptr<client::state> state_;
  std::vector<std::string> urls_; // origins, no trailing '/'
  std::string key_;               // the replica set's name in the client
  std::string name_;
};

} // namespace coronet::http
