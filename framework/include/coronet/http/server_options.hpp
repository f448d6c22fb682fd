#pragma once
// What the HTTP server is told: where it listens, its limits and timeouts,
// load shedding, the proxies it believes, TLS and HTTP/2 ([http], [http2]
// and [tls] in the config). Both protocols' connections read it.
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

namespace coronet {
class config;
}

namespace coronet::http {

// HTTP/2 on the same listener: h2 by ALPN over TLS, h2c with prior
// knowledge on a plain one (the connection preface tells it from HTTP/1.1).
struct http2_options {
  bool enabled = true;
  std::uint32_t max_concurrent_streams = 100;      // more at once -> RST_STREAM REFUSED_STREAM
  std::uint32_t initial_window_bytes = 65535;      // per stream, what a client may send unread
  std::uint32_t connection_window_bytes = 1 << 20; // the whole connection's
  std::uint32_t max_header_list_bytes = 64 * 1024; // decoded (HPACK bombs too) -> 431
  std::uint32_t max_frame_bytes = 16 * 1024;
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
  std::string listen = "127.0.0.1:8080";
  std::size_t max_request_line_bytes = 8 * 1024;
  std::size_t max_header_bytes = 64 * 1024;
  std::size_t max_headers = 100;
  std::size_t max_body_bytes = 1024 * 1024;
  std::chrono::milliseconds header_timeout{10000};
  std::chrono::milliseconds body_timeout{30000};
  std::chrono::milliseconds idle_timeout{60000};
  std::chrono::milliseconds write_timeout{30000};
  std::size_t max_connections = 10000;
  std::chrono::milliseconds shutdown_timeout{10000};
  // Load shedding: at most this many handlers running per worker (0: no
  // limit); a request beyond it waits up to queue_timeout for one to finish,
  // then is answered 503 with Retry-After. /healthz, /readyz and /metrics are
  // never shed.
  std::size_t max_concurrent_requests = 0;
  std::chrono::milliseconds queue_timeout{0};
  // The longest a request may ask for (X-Request-Timeout-Ms, grpc-timeout),
  // and what it gets when it asks nothing; 0: no cap, no default.
  std::chrono::milliseconds request_timeout{0};
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
