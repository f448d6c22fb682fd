#pragma once
// The HTTP/1.1 protocol on one stream: parse, dispatch to the router,
// serialize, pipelining, Expect: 100-continue, upgrades and streamed bodies.
// It knows nothing of listening, limits or TLS: the server hands it a
// stream, and it reads like Go's conn.serve.
#include <coronet/http/router.hpp>
#include <coronet/http/server_options.hpp>
#include <coronet/net/stream.hpp>
#include <coronet/runtime.hpp>
#include <coronet/task.hpp>

#include "http1/request_parser.hpp"
#include "http/connection.hpp"

#include <array>
#include <memory>
#include <string>
#include <string_view>

namespace coronet::http::detail {

class http1_connection final : public server_connection {
public:
  http1_connection(net::stream& s, const connection_settings& settings);
  ~http1_connection();
  http1_connection(const http1_connection&) = delete;
  http1_connection& operator=(const http1_connection&) = delete;

  // Serves requests until either side ends the connection, or until the
  // client opens with the HTTP/2 preface (h2c with prior knowledge, when
  // enabled): then http2_preface() is true and preface_bytes() holds what
  // was received, for the HTTP/2 connection to take over.
  task<void> serve();
  bool http2_preface() const noexcept { return h2_; }
  std::string_view preface_bytes() const noexcept { return data_; }

  // The server is stopping: a connection waiting for its next request
  // closes after a short grace instead (in which a request that was on its
  // way is still served).
  void drain() noexcept override;

private:
  enum class phase { between, idle, headers, body };
  enum class after { nothing, stream_chunked, stream_to_close, upgrade };
  enum class input { got, wait, ended, slow_headers };

  enum class preface { no, yes, maybe };
  preface looks_like_http2() const noexcept;
  preface sniff_preface();
  request* next_request();
  task<bool> answer_buffered();
  task<bool> send_rest(response& resp, after next);
  after respond(const request& req, const response& resp);
  task<bool> stream_body(response& resp, bool chunked);
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
  request_parser& parser();
  void release_parser();

  net::stream& stream_;
  const connection_settings& settings_;
  peer_address peer_; // who is at the other end, for each request
  // Held only while a request is in: taken from the worker's spares when
  // bytes arrive, given back when the connection waits with none half-parsed.
  std::unique_ptr<request_parser> parser_;
  std::string_view data_;       // received, not yet parsed: in the scratch buffer or kept_
  std::string kept_;            // pipelined bytes saved across a handler's suspension
  bool data_in_scratch_ = false;
  bool socket_empty_ = false;   // the last read drained the socket
  std::string out_;             // responses not yet written
  bool close_ = false;
  bool partial_ = false;        // an unfinished request is in the parser
  bool sent_continue_ = false;  // 100 Continue sent for the current request
  bool draining_ = false;
  bool first_ = true; // nothing answered yet: the bytes may be HTTP/2's preface
  bool h2_ = false;
  phase phase_ = phase::between;
  clock::time_point idle_since_; // when phase::idle began
};

} // namespace coronet::http::detail
