#pragma once
// What coronet's HTTP/2 server and client share over nghttp2: error code
// names, the HTTP/2 metrics, and header names as HTTP/2 wants them.
#include <coronet/net/stream.hpp>
#include <coronet/task.hpp>

#include <coronet/time.hpp>

#include <cstdint>
#include <string>
#include <string_view>

struct nghttp2_session;

namespace coronet::http::detail {

// The writing half of an HTTP/2 connection, server or client: what nghttp2
// has to send goes out in writes of up to 64 KiB (one system call carries
// many streams' frames), and the writer sleeps until whoever gave nghttp2
// something to send (the reader, a handler, a call) wakes it.
class h2_writer final {
public:
  explicit h2_writer(net::stream& s);

  // Everything nghttp2 has to send now, written (the socket tried at once,
  // then waited for under the stream's write timeout). False when the
  // session or the stream failed.
  task<bool> flush(nghttp2_session* session);
  void notify() noexcept;
  // Returns at once when notified since the last wait.
  task<void> wait();

private:
  net::stream& stream_;
  std::string out_;
  wakeup wake_;
};

// "NO_ERROR", "PROTOCOL_ERROR", "ENHANCE_YOUR_CALM"... (RFC 9113 7).
std::string_view h2_error_name(std::uint32_t code) noexcept;

enum class h2_side { server, client };
enum class h2_event { opened, reset_by_peer, reset, refused };

// coronet_http2_streams_total{side,event}: opened, reset_by_peer, reset
// (by this side), refused; coronet_http2_goaways_total{side,direction,code}.
void count_h2_stream(h2_side side, h2_event event);
void count_h2_goaway(h2_side side, bool sent, std::uint32_t code);

// Connection-specific fields, which HTTP/2 forbids (RFC 9113 8.2.2).
bool h2_connection_header(std::string_view name) noexcept;

// `name` in lower case into `out` (HTTP/2 field names are lower case).
void append_lower(std::string& out, std::string_view name);

} // namespace coronet::http::detail
