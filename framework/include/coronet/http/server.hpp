#pragma once
// The HTTP/1.1 server: keep-alive, pipelining (responses in order, gathered
// into one write), chunked request bodies, Expect: 100-continue, HEAD, a
// cached Date header, limits and timeouts from the [http] config section,
// and a graceful drain when the runtime stops.
//
//   http::router router;
//   router.get("/hello", hello);
//   return rt.run_until_signal(http::serve(rt, config, std::move(router)));
#include <coronet/http/router.hpp>
#include <coronet/net/tls.hpp>
#include <coronet/runtime.hpp>
#include <coronet/task.hpp>

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>

namespace coronet {
class config;
}

namespace coronet::http {

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
  std::shared_ptr<net::tls_server> tls; // set: the listener speaks TLS (ALPN http/1.1)

  // server.listen, the [http] keys and [tls]; a bad value is a config_error naming
  // where it was set.
  static server_options from(const config& cfg);
};

// Serves until the runtime stops and every connection has drained.
task<void> serve(runtime& rt, server_options options, router routes);
task<void> serve(runtime& rt, const config& cfg, router routes);

} // namespace coronet::http
