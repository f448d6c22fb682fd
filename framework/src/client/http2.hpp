#pragma once
// One HTTP/2 connection of http::client, over nghttp2: calls to one host
// multiplex over it, each a stream. A call that times out or is cancelled
// resets its stream (RST_STREAM CANCEL), not the connection.
#include "client/state.hpp"
#include "http2/common.hpp"

#include <coronet/client/client.hpp>
#include <coronet/net/stream.hpp>
#include <coronet/net/tls.hpp>
#include <coronet/task.hpp>
#include <coronet/time.hpp>


#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

struct nghttp2_session;

namespace coronet::http::detail {

// What a call needs of its URL.
struct h2_target {
  bool tls = false;
  std::string_view authority; // "host:port"
  std::string_view path;      // "/path?query"
  std::string_view key;       // "https://host:port", for messages
};

// The stream was refused or never processed (REFUSED_STREAM, or above a
// GOAWAY's last stream id): safe to send again on another connection.
class h2_not_processed : public attempt_error {
public:
  h2_not_processed(client_errc kind, const std::string& message) : attempt_error(kind, message, stage::unprocessed) {}
};

class h2_client_connection final : public std::enable_shared_from_this<h2_client_connection> {
public:
  struct settings {
    std::size_t max_response_header_bytes;
    std::size_t max_response_body_bytes;
    std::chrono::milliseconds idle_timeout;
    std::chrono::milliseconds write_timeout;
  };
  // Takes over a connected (and for TLS, handshaken) stream, which `owner`
  // keeps alive; the session starts at once on the calling worker.
  static std::shared_ptr<h2_client_connection> start(std::shared_ptr<void> owner, net::stream& s,
    const settings& options);
  ~h2_client_connection();

  // Room for one more stream: not failed, no GOAWAY, under the peer's
  // SETTINGS_MAX_CONCURRENT_STREAMS. Until the peer's SETTINGS arrive, under
  // the limit a connection to the same host last announced, if one did
  // (set_stream_limit_hint): calls beyond it would be refused, or held back
  // by nghttp2 until a stream ends, where another connection could take them.
  bool can_take() const noexcept;
  // The peer's SETTINGS_MAX_CONCURRENT_STREAMS once its SETTINGS arrived.
  std::optional<std::uint32_t> stream_limit() const noexcept;
  void set_stream_limit_hint(std::uint32_t limit) noexcept { stream_limit_hint_ = limit; }
  bool ended() const noexcept { return ended_; }
  std::size_t streams() const noexcept { return calls_.size(); }

  task<client_response> call(const std::string& method, const h2_target& target, const request_options& o,
    clock::time_point deadline);

  struct pending_call;

  // A streamed call (http::client_stream): opens its stream, the body to
  // come by write() until close_write(); the response is read as it comes,
  // its window given back as it is read.
  std::shared_ptr<pending_call> open(const std::string& method, const h2_target& target, const request_options& o);
  task<void> write(pending_call& p, std::string bytes, clock::time_point deadline);
  void close_write(pending_call& p);
  task<void> read_head(pending_call& p, clock::time_point deadline);
  task<std::optional<std::string>> read(pending_call& p, clock::time_point deadline);
  // Resets the stream if it has not ended; gives back what was not read.
  void cancel(pending_call& p) noexcept;
  static const client_response& response(const pending_call& p) noexcept;
  static const http::headers& trailers(const pending_call& p) noexcept;
  static bool ended(const pending_call& p) noexcept;
  struct callbacks;

  h2_client_connection(std::shared_ptr<void> owner, net::stream& s, const settings& options);

private:
  friend struct callbacks;
  task<void> run();
  task<void> read_loop();
  void notify() noexcept { writer_.notify(); }
  void fail_all(client_errc kind, const std::string& why);
  void submit(const std::string& method, const h2_target& target, const request_options& o,
    const std::shared_ptr<pending_call>& p);
  void finish(pending_call& c);
  void give_back(pending_call& p, std::size_t n) noexcept;
  task<void> wait(pending_call& p, wakeup& w, clock::time_point deadline);

  std::shared_ptr<void> owner_;
  net::stream& stream_;
  settings settings_;
  nghttp2_session* session_ = nullptr;
  std::unordered_map<std::int32_t, std::shared_ptr<pending_call>> calls_;
  h2_writer writer_;
  bool reader_running_ = false;
  bool ended_ = false;
  bool goaway_ = false;
  bool settings_seen_ = false; // the peer's SETTINGS arrived
  std::uint32_t stream_limit_hint_ = 0; // 0: none
  std::int32_t goaway_last_ = 0x7fffffff;
  clock::time_point idle_since_;
  std::error_code read_error_; // why the reader stopped
  std::string protocol_error_; // or what nghttp2 found wrong in what arrived
  asio::cancellation_signal stop_reader_;
};

// What a client_stream holds: the connection and its stream, the call's
// deadline, its replica's count of calls in flight, and how its end is
// counted in the client's metrics.
struct stream_call {
  stream_call() = default;
  stream_call(const stream_call&) = delete;
  stream_call& operator=(const stream_call&) = delete;
  ~stream_call();
  std::shared_ptr<h2_client_connection> conn;
  std::shared_ptr<h2_client_connection::pending_call> p;
  clock::time_point deadline = clock::time_point::max();
  std::shared_ptr<void> lease;
  std::function<void(std::string_view outcome)> on_end; // called once, with the outcome
  void end(std::string_view outcome) noexcept;
  // Resets the stream if it is open, gives back what was not read, and
  // counts the outcome.
  void close() noexcept;
};

} // namespace coronet::http::detail
