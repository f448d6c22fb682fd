#pragma once
// A replica's connections: HTTP/1.1 kept alive in a pool, or one HTTP/2
// connection per worker, and one attempt of a call over them.
#include "client/http2.hpp"
#include "client/state.hpp"

namespace coronet::http::detail {

// One exchange of a call on one replica's connections: over HTTP/2 when the
// replica speaks it, else HTTP/1.1 on a pooled connection (none when
// `fresh`) or a new one. Failures are attempt_errors naming their stage, or
// client_errors; the retry layer (replicas.cpp) decides what comes next.
// While it waits for a new connection to open, *connecting is true.
task<client_response> exchange(client::state& st, std::size_t worker, host_pool& pool, const std::string& method,
  const url_parts& u, const request_options& o, clock::time_point deadline, bool* connecting, bool fresh);

// A streamed call's stream, opened on one replica's HTTP/2 connection (a
// new one if it has none with room). client_error(http2_required) when the
// target is not called over HTTP/2, or its server turns out not to speak it.
task<std::shared_ptr<stream_call>> open_stream(client::state& st, std::size_t worker, host_pool& pool, const std::string& method,
  const url_parts& u, const request_options& o, clock::time_point deadline);

// Closes the pool's idle connections that are past client.idle_timeout or
// that the server has closed; returns how many stay idle.
std::size_t sweep_idle(client::state& st, std::size_t worker, host_pool& pool);

} // namespace coronet::http::detail
