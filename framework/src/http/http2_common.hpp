#pragma once
// What coronet's HTTP/2 server and client share over nghttp2: error code
// names, the HTTP/2 metrics, and header names as HTTP/2 wants them.
#include <cstdint>
#include <string>
#include <string_view>

namespace coronet::http::detail {

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
