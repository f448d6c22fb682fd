#pragma once
// The HTTP/1.1 protocol on one stream: parse, dispatch to the router,
// serialize, pipelining, Expect: 100-continue, upgrades and streamed bodies.
// It knows nothing of listening, limits or TLS: the server hands it a
// stream, and it reads like Go's conn.serve.
#include <coronet/http/router.hpp>
#include <coronet/http/server.hpp>
#include <coronet/net/stream.hpp>
#include <coronet/runtime.hpp>
#include <coronet/task.hpp>

#include "request_parser.hpp"

#include <array>
#include <string>
#include <string_view>

namespace coronet::http::detail {

// What every connection of one server shares.
struct http1_settings {
  runtime& rt;
  const server_options& options;
  const router& routes;
};

class http1_connection final {
public:
  http1_connection(net::stream& s, const http1_settings& settings);
  http1_connection(const http1_connection&) = delete;
  http1_connection& operator=(const http1_connection&) = delete;

  task<void> serve();

  // The server is stopping: a connection waiting for its next request
  // closes after a short grace instead (in which a request that was on its
  // way is still served). Call from the connection's worker.
  void drain() noexcept;

  // Links in the server's per-worker list, for drain().
  http1_connection* prev_ = nullptr;
  http1_connection* next_ = nullptr;
  bool linked_ = false;

private:
  enum class phase { between, idle, headers, body };
  enum class after { nothing, stream_chunked, stream_to_close, upgrade };
  enum class input { got, wait, ended, slow_headers };

  task<bool> answer_buffered();
  after respond(const request& req, const response& resp);
  task<bool> stream_body(const response& resp, bool chunked);
  task<void> switch_protocols(const response& resp);
  void expect_continue();
  bool must_flush() const noexcept;
  bool flush_now();
  task<bool> flush();
  input receive_now();
  input received(net::io_result r);
  task<void> answer_slow_headers();
  void enter(phase p) noexcept;
  void keep_unparsed();
  void release_kept();

  net::stream& stream_;
  const http1_settings& settings_;
  request_parser parser_;
  std::string_view data_;       // received, not yet parsed: in the scratch buffer, head_ or kept_
  std::string kept_;            // pipelined bytes saved across a handler's suspension
  std::array<char, 256> head_;  // where a waiting read lands (requests are mostly smaller)
  bool data_in_scratch_ = false;
  bool socket_empty_ = false;   // the last read drained the socket
  std::string out_;             // responses not yet written
  bool close_ = false;
  bool partial_ = false;        // an unfinished request is in the parser
  bool sent_continue_ = false;  // 100 Continue sent for the current request
  bool draining_ = false;
  phase phase_ = phase::between;
};

} // namespace coronet::http::detail
