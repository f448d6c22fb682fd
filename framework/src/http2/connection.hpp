#pragma once
// HTTP/2 on one stream, server side, over nghttp2 (framing, HPACK, flow
// control): each request is a task on the connection's worker running the
// same router as HTTP/1.1, so handlers cannot tell the protocols apart.
//
// Two loops share the connection: the reader feeds what arrives to nghttp2
// (which calls back with headers, data and resets), and serve() itself
// writes what nghttp2 has to send whenever something woke it. Limits and
// the defences against the known HTTP/2 attacks live here too: a stream
// budget for Rapid Reset, a control-frame budget for floods, per-stream
// header, body and flow-control stall deadlines, all on the stream's one
// read deadline.
#include <coronet/detail/intrusive_list.hpp>
#include <coronet/net/stream.hpp>
#include <coronet/task.hpp>
#include <coronet/time.hpp>

#include "http2/common.hpp"
#include "http/connection.hpp"


#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

struct nghttp2_session;

namespace coronet::http::detail {

// So many events at once, then so many per second: a budget that a well
// behaved peer never exhausts.
struct token_bucket {
  double tokens;
  double capacity;
  double per_second;
  clock::time_point last = clock::now();
  bool take() noexcept;
  void give() noexcept { tokens = tokens + 1 < capacity ? tokens + 1 : capacity; }
};

class http2_connection final : public server_connection {
public:
  // `received`: bytes already read (an h2c client's preface).
  http2_connection(net::stream& s, const connection_settings& settings, std::string_view received = {});
  ~http2_connection();
  http2_connection(const http2_connection&) = delete;
  http2_connection& operator=(const http2_connection&) = delete;

  task<void> serve();
  // GOAWAY with the last stream taken: streams open finish, no new ones.
  void drain() noexcept override;

  struct h2_stream;
  struct callbacks;

private:
  friend struct callbacks;
  friend class h2_body_writer;
  friend class h2_body_reader;

  bool start();
  task<void> read_loop();
  bool receive(const char* data, std::size_t size);
  void dispatch_ready();
  task<void> handle(h2_stream& s);
  task<void> respond(h2_stream& s, response resp);
  bool submit(h2_stream& s, bool with_body);
  bool submit_trailers(h2_stream& s);
  void answer_trailers_only(h2_stream& s);
  void drop_inbox(h2_stream& s) noexcept;
  void give_back(h2_stream& s, std::size_t n) noexcept;
  void answer(h2_stream& s, status code);
  void release(h2_stream* s) noexcept;
  task<void> send_fatal_goaway();
  task<void> linger();
  void notify() noexcept { writer_.notify(); }
  void arm_read_deadline();
  void on_timeouts();
  void note_stalls();
  void calm_down(const char* why);

  // nghttp2's events
  h2_stream* begin_stream(std::int32_t id);
  void headers_done(h2_stream& s, bool end_stream);
  void request_done(h2_stream& s);
  void stream_closed(h2_stream& s, std::uint32_t code);
  void frame_received(std::uint8_t type, std::uint8_t flags, std::int32_t stream_id, std::size_t length);

  net::stream& stream_;
  const connection_settings& settings_;
  peer_address peer_; // who is at the other end, for each request
  nghttp2_session* session_ = nullptr;
  std::string received_;
  coronet::detail::intrusive_list<h2_stream> streams_; // every stream alive: open, or its handler still running
  std::size_t live_ = 0;                            // in streams_
  std::size_t open_ = 0;                            // open in nghttp2's terms
  std::vector<h2_stream*> ready_;                   // requests completed by one read, dispatched after it
  h2_writer writer_;                                // serve() sends through it, and waits on it
  bool reader_running_ = false;
  std::size_t handlers_ = 0;
  asio::cancellation_signal stop_reader_;
  clock::time_point idle_since_;
  std::int32_t header_block_ = 0;     // a stream whose header block has begun but not ended
  clock::time_point header_block_deadline_;
  token_bucket resets_;                // Rapid Reset: streams reset before their response
  token_bucket control_;               // frames that ask work of us and carry no request
  std::int32_t fatal_ = -1;            // a GOAWAY code to send by hand: nghttp2's session failed
  bool draining_ = false;
  bool calmed_ = false;                // ENHANCE_YOUR_CALM sent
};

} // namespace coronet::http::detail
