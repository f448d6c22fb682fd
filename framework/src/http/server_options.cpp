#include <coronet/http/server_options.hpp>

#include <coronet/config.hpp>
#include <coronet/http/headers.hpp>
#include <coronet/net/tcp_server.hpp>

#include "http/connection.hpp"

#include <fmt/format.h>

#include <array>
#include <charconv>

namespace coronet::http {

// Bounds are server_keys'; what is checked here is what a bound cannot say.
server_options server_options::from(const config& cfg)
{
  server_options o;
  auto ms = [&](const char* key) { return cfg.get_ms(key); };
  auto size = [&](const char* key) { return static_cast<std::size_t>(cfg.get_int(key)); };
  o.listen = cfg.get_string("server.listen");
  try {
    net::parse_endpoint(o.listen);
  } catch (const std::invalid_argument& e) {
    cfg.fail("server.listen", e.what());
  }
  o.max_request_line_bytes = size("http.max_request_line_bytes");
  o.max_header_bytes = size("http.max_header_bytes");
  o.max_headers = size("http.max_headers");
  o.max_body_bytes = size("http.max_body_bytes");
  o.header_timeout = ms("http.header_timeout_ms");
  o.body_timeout = ms("http.body_timeout_ms");
  o.idle_timeout = ms("http.idle_timeout_ms");
  o.write_timeout = ms("http.write_timeout_ms");
  o.max_connections = size("http.max_connections");
  o.shutdown_timeout = ms("http.shutdown_timeout_ms");
  o.max_concurrent_requests = size("http.max_concurrent_requests");
  o.queue_timeout = ms("http.queue_timeout_ms");
  o.request_timeout = ms("http.request_timeout_ms");
  for (auto& item : cfg.get_list("http.trusted_proxies")) {
    auto network = ip_network::parse(item);
    if (!network)
      cfg.fail("http.trusted_proxies", fmt::format("'{}' is not an IP address or network (10.0.0.0/8, fd00::/8)", item));
    o.trusted_proxies.push_back(*network);
  }
  auto& h2 = o.http2;
  h2.enabled = cfg.get_bool("http2.enabled");
  auto h2_size = [&](const char* key) { return static_cast<std::uint32_t>(cfg.get_int(key)); };
  h2.max_concurrent_streams = h2_size("http2.max_concurrent_streams");
  h2.initial_window_bytes = h2_size("http2.initial_window_bytes");
  h2.connection_window_bytes = h2_size("http2.connection_window_bytes");
  h2.max_header_list_bytes = h2_size("http2.max_header_list_bytes");
  h2.max_frame_bytes = h2_size("http2.max_frame_bytes");
  auto tls = net::tls_server_options::from(cfg);
  if (tls.enabled()) {
    if (h2.enabled)
      tls.alpn = {"h2", "http/1.1"};
    o.tls = std::make_shared<net::tls_server>(std::move(tls), &cfg);
  }
  return o;
}

bool ip_network::contains(const asio::ip::address& a) const noexcept
{
  auto x = detail::unmapped(a);
  if (x.is_v4() != address.is_v4())
    return false;
  auto bytes = [](const asio::ip::address& v) {
    std::array<unsigned char, 16> out{};
    if (v.is_v4()) {
      auto b = v.to_v4().to_bytes();
      std::copy(b.begin(), b.end(), out.begin());
    } else {
      out = v.to_v6().to_bytes();
    }
    return out;
  };
  auto want = bytes(address), got = bytes(x);
  unsigned bits = prefix;
  for (std::size_t i = 0; bits > 0; ++i, bits = bits >= 8 ? bits - 8 : 0) {
    unsigned char mask = bits >= 8 ? 0xff : static_cast<unsigned char>(0xff << (8 - bits));
    if ((want[i] & mask) != (got[i] & mask))
      return false;
  }
  return true;
}

std::optional<ip_network> ip_network::parse(std::string_view text)
{
  text = trim_blanks(text);
  auto slash = text.find('/');
  std::error_code ec;
  auto a = asio::ip::make_address(std::string(text.substr(0, slash)), ec);
  if (ec)
    return std::nullopt;
  ip_network n;
  n.address = detail::unmapped(a);
  unsigned max = n.address.is_v4() ? 32 : 128;
  n.prefix = max;
  if (slash != std::string_view::npos) {
    auto digits = text.substr(slash + 1);
    unsigned value = 0;
    auto [end, err] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
    if (digits.empty() || err != std::errc{} || end != digits.data() + digits.size() || value > max)
      return std::nullopt;
    n.prefix = value;
  }
  return n;
}

} // namespace coronet::http
