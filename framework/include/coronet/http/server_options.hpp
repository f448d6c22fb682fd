#pragma once
// What the HTTP server is told: where it listens, its limits and timeouts,
// load shedding, the proxies it believes, TLS and HTTP/2 ([http], [http2]
// and [tls] in the config). Both protocols' connections read it.
#include <coronet/config.hpp>
#include <coronet/net/tls.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <asio/ip/address.hpp>

namespace coronet::http {

// server.listen, [http] and [http2]; [tls] is net::tls_keys.
inline constexpr config_key server_keys[] = {
  {"server.listen", "127.0.0.1:8080", "HOST:PORT to listen on (port 0: any free port)"},
  {"http.max_request_line_bytes", 8192, "longer -> 414", 1},
  {"http.max_header_bytes", 65536, "more -> 431", 1},
  {"http.max_headers", 100, "more -> 431", 1},
  {"http.max_body_bytes", 1048576, "more -> 413, refused before the body is read", 1},
  {"http.header_timeout_ms", 10000, "headers not complete in time -> 408 and close", 1},
  {"http.body_timeout_ms", 30000, "body not complete in time -> close", 1},
  {"http.idle_timeout_ms", 60000, "keep-alive connection idle this long -> close", 1},
  {"http.write_timeout_ms", 30000, "a response not written in time -> close", 1},
  {"http.max_connections", 10000, "at the limit, accepting pauses", 1},
  {"http.shutdown_timeout_ms", 10000, "on SIGINT/SIGTERM, how long in-flight requests get", 1},
  {"http.max_concurrent_requests", 0,
    "handlers running at once per worker; beyond: 503 + Retry-After (0: no limit)", 0},
  {"http.queue_timeout_ms", 0, "how long a request beyond the limit may wait for a handler to finish", 0},
  {"http.request_timeout_ms", 0,
    "each request's deadline at most this, also when the caller sends none (X-Request-Timeout-Ms, "
    "grpc-timeout): past it the handler is cancelled, 504; 0: none", 0},
  {"http.trusted_proxies", "",
    "CIDRs (\"10.0.0.0/8, ::1\") whose X-Forwarded-For / Forwarded set the client's address"},
  {"http2.enabled", true, "h2 by ALPN on a TLS listener, h2c (prior knowledge) on a plain one"},
  {"http2.max_concurrent_streams", 100, "more at once -> RST_STREAM REFUSED_STREAM", 1, 1 << 20},
  {"http2.initial_window_bytes", 65535, "per stream: what a client may send before we read it", 1, 0x7fffffff},
  {"http2.connection_window_bytes", 1048576, "the whole connection's receive window", 65535, 0x7fffffff},
  {"http2.max_header_list_bytes", 65536, "decoded header list; more -> 431 on that stream", 1024, 16 << 20},
  {"http2.max_frame_bytes", 16384, "largest frame a peer may send", 16384, 16777215},
};

// HTTP/2 on the same listener: h2 by ALPN over TLS, h2c with prior
// knowledge on a plain one (the connection preface tells it from HTTP/1.1).
struct http2_options {
  bool enabled = config_default<bool>(server_keys, "http2.enabled");
  std::uint32_t max_concurrent_streams = config_default<std::uint32_t>(server_keys, "http2.max_concurrent_streams");
  std::uint32_t initial_window_bytes = config_default<std::uint32_t>(server_keys, "http2.initial_window_bytes");
  std::uint32_t connection_window_bytes = config_default<std::uint32_t>(server_keys, "http2.connection_window_bytes");
  std::uint32_t max_header_list_bytes = config_default<std::uint32_t>(server_keys, "http2.max_header_list_bytes");
  std::uint32_t max_frame_bytes = config_default<std::uint32_t>(server_keys, "http2.max_frame_bytes");
};

// An IP network: "10.0.0.0/8", "fd00::/8", or one address ("127.0.0.1").
struct ip_network {
  asio::ip::address address;
  unsigned prefix = 0; // leading bits that must match
  bool contains(const asio::ip::address& a) const noexcept;
  // std::nullopt when `text` is not an address with an optional /prefix.
  static std::optional<ip_network> parse(std::string_view text);
};

struct server_options {
  std::string listen{config_default<std::string_view>(server_keys, "server.listen")};
  std::size_t max_request_line_bytes = config_default<std::size_t>(server_keys, "http.max_request_line_bytes");
  std::size_t max_header_bytes = config_default<std::size_t>(server_keys, "http.max_header_bytes");
  std::size_t max_headers = config_default<std::size_t>(server_keys, "http.max_headers");
  std::size_t max_body_bytes = config_default<std::size_t>(server_keys, "http.max_body_bytes");
  std::chrono::milliseconds header_timeout{config_default<std::int64_t>(server_keys, "http.header_timeout_ms")};
  std::chrono::milliseconds body_timeout{config_default<std::int64_t>(server_keys, "http.body_timeout_ms")};
  std::chrono::milliseconds idle_timeout{config_default<std::int64_t>(server_keys, "http.idle_timeout_ms")};
  std::chrono::milliseconds write_timeout{config_default<std::int64_t>(server_keys, "http.write_timeout_ms")};
  std::size_t max_connections = config_default<std::size_t>(server_keys, "http.max_connections");
  std::chrono::milliseconds shutdown_timeout{config_default<std::int64_t>(server_keys, "http.shutdown_timeout_ms")};
  // Load shedding: at most this many handlers running per worker (0: no
  // limit); a request beyond it waits up to queue_timeout for one to finish,
  // then is answered 503 with Retry-After. /healthz, /readyz and /metrics are
  // never shed.
  std::size_t max_concurrent_requests = config_default<std::size_t>(server_keys, "http.max_concurrent_requests");
  std::chrono::milliseconds queue_timeout{config_default<std::int64_t>(server_keys, "http.queue_timeout_ms")};
  // The longest a request may ask for (X-Request-Timeout-Ms, grpc-timeout),
  // and what it gets when it asks nothing; 0: no cap, no default.
  std::chrono::milliseconds request_timeout{config_default<std::int64_t>(server_keys, "http.request_timeout_ms")};
  // Peers (load balancers, ingress) whose X-Forwarded-For and Forwarded
  // headers are believed for request::client_ip; nobody's by default.
  std::vector<ip_network> trusted_proxies;
  std::shared_ptr<net::tls_server> tls; // set: the listener speaks TLS (ALPN h2, http/1.1)
  http2_options http2;

  // server.listen, the [http], [http2] and [tls] keys; a bad value is a config_error naming
  // where it was set.
  static server_options from(const config& cfg);
};

} // namespace coronet::http
