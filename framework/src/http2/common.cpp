#include "http2/common.hpp"

#include <coronet/http/headers.hpp>
#include <coronet/metrics.hpp>

#include <nghttp2/nghttp2.h>
#include <spdlog/spdlog.h>

#include <asio/redirect_error.hpp>

namespace coronet::http::detail {

namespace {

constexpr std::size_t write_batch = 64 * 1024;

} // namespace

h2_writer::h2_writer(net::stream& s) : stream_(s), wake_(s.get_executor()) {}

// GCC 12 misreads the coroutine frames' class-specific operator new/delete
// pair (Asio's recycling allocator) in these functions as mismatched.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

task<bool> h2_writer::flush(nghttp2_session* session)
{
  for (;;) {
    out_.clear();
    while (out_.size() < write_batch) {
      const std::uint8_t* data = nullptr;
      auto n = nghttp2_session_mem_send(session, &data);
      if (n < 0) {
        spdlog::debug("http2: {}", nghttp2_strerror(static_cast<int>(n)));
        co_return false;
      }
      if (n == 0)
        break;
      out_.append(reinterpret_cast<const char*>(data), static_cast<std::size_t>(n));
    }
    if (out_.empty()) {
      if (out_.capacity() > 4096)
        std::string{}.swap(out_); // an idle connection keeps no big buffer
      co_return true;
    }
    auto r = stream_.write_now(asio::buffer(out_));
    if (r.ec && r.ec != asio::error::would_block)
      co_return false;
    if (r.bytes < out_.size() &&
        co_await stream_.write(asio::buffer(out_.data() + r.bytes, out_.size() - r.bytes)))
      co_return false;
  }
}

task<void> h2_writer::wait()
{
  try {
    co_await wake_.wait_until(clock::time_point::max());
  } catch (const std::system_error&) {
    // Cancelled (the connection is ending): the caller's loop decides.
  }
}

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

void h2_writer::notify() noexcept
{
  wake_.wake();
}

std::string_view h2_error_name(std::uint32_t code) noexcept
{
  switch (code) {
  case NGHTTP2_NO_ERROR: return "NO_ERROR";
  case NGHTTP2_PROTOCOL_ERROR: return "PROTOCOL_ERROR";
  case NGHTTP2_INTERNAL_ERROR: return "INTERNAL_ERROR";
  case NGHTTP2_FLOW_CONTROL_ERROR: return "FLOW_CONTROL_ERROR";
  case NGHTTP2_SETTINGS_TIMEOUT: return "SETTINGS_TIMEOUT";
  case NGHTTP2_STREAM_CLOSED: return "STREAM_CLOSED";
  case NGHTTP2_FRAME_SIZE_ERROR: return "FRAME_SIZE_ERROR";
  case NGHTTP2_REFUSED_STREAM: return "REFUSED_STREAM";
  case NGHTTP2_CANCEL: return "CANCEL";
  case NGHTTP2_COMPRESSION_ERROR: return "COMPRESSION_ERROR";
  case NGHTTP2_CONNECT_ERROR: return "CONNECT_ERROR";
  case NGHTTP2_ENHANCE_YOUR_CALM: return "ENHANCE_YOUR_CALM";
  case NGHTTP2_INADEQUATE_SECURITY: return "INADEQUATE_SECURITY";
  case NGHTTP2_HTTP_1_1_REQUIRED: return "HTTP_1_1_REQUIRED";
  default: return "UNKNOWN";
  }
}

namespace {

struct h2_families {
  metrics::family<metrics::counter>& streams;
  metrics::family<metrics::counter>& goaways;
};

h2_families& families()
{
  auto& r = metrics::registry::global();
  static h2_families f{
    r.counters("coronet_http2_streams_total",
      "HTTP/2 streams: opened, reset_by_peer, reset (by this side), refused (over the concurrency limit).",
      {"side", "event"}),
    r.counters("coronet_http2_goaways_total", "HTTP/2 GOAWAY frames sent and received, by error code.",
      {"side", "direction", "code"})};
  return f;
}

std::string_view side_name(h2_side s) noexcept
{
  return s == h2_side::server ? "server" : "client";
}

} // namespace

void count_h2_stream(h2_side side, h2_event event)
{
  // Once per stream: the series are looked up once, not under the
  // registry's lock each time.
  static constexpr std::string_view events[] = {"opened", "reset_by_peer", "reset", "refused"};
  static metrics::counter* const series[2][4] = {
    {&families().streams.with({"server", events[0]}), &families().streams.with({"server", events[1]}),
      &families().streams.with({"server", events[2]}), &families().streams.with({"server", events[3]})},
    {&families().streams.with({"client", events[0]}), &families().streams.with({"client", events[1]}),
      &families().streams.with({"client", events[2]}), &families().streams.with({"client", events[3]})}};
  series[side == h2_side::client][static_cast<int>(event)]->inc();
}

void count_h2_goaway(h2_side side, bool sent, std::uint32_t code)
{
  families().goaways.with({side_name(side), sent ? "sent" : "received", h2_error_name(code)}).inc();
}

bool h2_connection_header(std::string_view name) noexcept
{
  return iequals(name, "Connection") || iequals(name, "Keep-Alive") || iequals(name, "Proxy-Connection") ||
         iequals(name, "Transfer-Encoding") || iequals(name, "Upgrade");
}

void append_lower(std::string& out, std::string_view name)
{
  for (char c : name)
    out.push_back(c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c);
}

} // namespace coronet::http::detail
