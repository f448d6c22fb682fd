#pragma once
// The HTTP server: HTTP/1.1 (keep-alive, pipelining with responses gathered
// into one write, chunked request bodies, Expect: 100-continue, HEAD) and
// HTTP/2 (h2 over TLS, h2c with prior knowledge) on one listener, the same
// router and handlers for both; a cached Date header, limits and timeouts
// from the [http] and [http2] config sections, and a graceful drain when the
// runtime stops.
//
//   http::router router;
//   router.get("/hello", hello);
//   return rt.run_until_signal(http::serve(rt, config, std::move(router)));
#include <coronet/http/router.hpp>
#include <coronet/http/server_options.hpp>
#include <coronet/runtime.hpp>
#include <coronet/task.hpp>

namespace coronet {
class config;
}

namespace coronet::http {

// Serves until the runtime stops and every connection has drained.
task<void> serve(runtime& rt, server_options options, router routes);
task<void> serve(runtime& rt, const config& cfg, router routes);

} // namespace coronet::http
