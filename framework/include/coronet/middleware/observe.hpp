#pragma once
// What every HTTP service exposes, in one call:
//
//   http::router router;
//   http::observe(router, rt, config);   // first, so it wraps everything
//   router.get("/api/...", handler);
//
// adds, in this order:
// - request ids (X-Request-Id taken from the request or made, echoed back);
// - the access log, when log.access is true;
// - request metrics: coronet_http_requests_total{route,method,status,protocol}
//   (protocol: HTTP/1.0, HTTP/1.1 or HTTP/2) and
//   coronet_http_request_duration_seconds{route} (the route is the matched
//   pattern, so /users/{id} is one series however many ids there are);
// - GET /metrics (Prometheus text: these, the runtime's task counters, the
//   TCP server's connections and the HTTP client's calls);
// - GET /healthz (200 while the process serves) and GET /readyz (200, then
//   503 once the runtime is stopping, so load balancers drain it first).
#include <coronet/http/router.hpp>
#include <coronet/runtime.hpp>

namespace coronet {
class config;
}

namespace coronet::http {

void observe(router& r, runtime& rt, const config& cfg);

// The request-metrics middleware alone (observe() adds it).
middleware request_metrics();

} // namespace coronet::http
