#pragma once
// Middleware every service wants. Add request_ids() before access_log() so
// the log line carries the id:
//
//   router.use(http::request_ids());
//   router.use(http::access_log());
#include <coronet/http/router.hpp>

#include <string>
#include <string_view>

namespace coronet::http {

// Takes X-Request-Id from the request when it is a sane token (1-128 of
// A-Z a-z 0-9 - _ . :), or makes a new random one; stores it in req.id and
// echoes it in the response's X-Request-Id. Likewise the W3C `traceparent`
// (version 00, a non-zero trace id and parent id): taken when valid, else a
// new trace is started; stored in req.traceparent.
middleware request_ids();

// A new random request id: 16 lowercase hex digits.
std::string new_request_id();

// The traceparent for a call made while handling a request of this trace
// (req.traceparent, as request_ids() set it): the same trace id and flags,
// a new span id. Empty when `traceparent` is not a valid one.
std::string child_traceparent(std::string_view traceparent);

// One line per request through the asynchronous "access" logger on stdout:
//   GET /users/7?full=1 200 57B 38us id=4f1c2a9e0b7d6e53 trace=4bf92f3577b34da6a3ce929d0e0e4736
// (method, target, status, body bytes, microseconds in the handler chain,
// request id or "-", W3C trace id or "-"). The logger never drops a line: when its queue is full
// the writer waits.
middleware access_log();

} // namespace coronet::http
