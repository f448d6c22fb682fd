#pragma once
// Replica sets: balancing, ejection, the retry budget and hedging.
#include "client/http2.hpp"
#include "client/state.hpp"

namespace coronet::http::detail {

// A call over a replica set: the replica chosen, failures skipped, retried
// and hedged as the options say. `u` is the URL as called.
task<client_response> call_replicas(std::shared_ptr<client::state> st, std::size_t worker,
  std::shared_ptr<replica_set> set, const std::string& method, const url_parts& u, const request_options& o,
  clock::time_point deadline, const std::string& label);

// A streamed call's stream, opened on a replica of the set: one that cannot
// be connected to (or whose server refused the stream) is skipped for another
// not yet tried. The stream counts in its replica's calls in flight while it
// lives.
task<std::shared_ptr<stream_call>> stream_replicas(std::shared_ptr<client::state> st, std::size_t worker,
  std::shared_ptr<replica_set> set, const std::string& method, const url_parts& u, const request_options& o,
  clock::time_point deadline, const std::string& label);

// Counts a call made after its deadline had passed (and so not made).
void count_deadline_exceeded(const std::string& label);

} // namespace coronet::http::detail
