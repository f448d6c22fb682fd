#include "http2/grpc.hpp"

#include <coronet/text.hpp>

#include <fmt/format.h>

namespace coronet::http::detail {

using namespace std::string_view_literals;

bool grpc_content_type(std::string_view content_type) noexcept
{
  constexpr auto prefix = "application/grpc"sv;
  if (content_type.size() < prefix.size() || !iequals(content_type.substr(0, prefix.size()), prefix))
    return false;
  return content_type.size() == prefix.size() || content_type[prefix.size()] == '+' ||
    content_type[prefix.size()] == ';';
}

int grpc_code_for(status s) noexcept
{
  switch (s) {
  case status::bad_request: return 13;                 // INTERNAL
  case status::unauthorized: return 16;                // UNAUTHENTICATED
  case status::forbidden: return 7;                    // PERMISSION_DENIED
  case status::not_found:
  case status::method_not_allowed: return 12;          // UNIMPLEMENTED
  case status::request_timeout:
  case status::gateway_timeout: return 4;              // DEADLINE_EXCEEDED
  case status::payload_too_large:
  case status::request_header_fields_too_large:
  case status::too_many_requests: return 8;            // RESOURCE_EXHAUSTED
  case status::bad_gateway:
  case status::service_unavailable: return 14;         // UNAVAILABLE
  case status::internal_server_error: return 13;       // INTERNAL
  default: return 2;                                   // UNKNOWN
  }
}

std::string grpc_percent_encode(std::string_view text)
{
  std::string out;
  out.reserve(text.size());
  for (unsigned char c : text) {
    if (c >= 0x20 && c <= 0x7e && c != '%')
      out.push_back(static_cast<char>(c));
    else
      out += fmt::format("%{:02X}", c);
  }
  return out;
}

void answer_as_grpc(response& r)
{
  if (auto type = r.headers.get("content-type"); type && grpc_content_type(*type))
    return;
  std::string_view said = r.body;
  while (!said.empty() && (said.back() == '\n' || said.back() == '\r' || said.back() == ' '))
    said.remove_suffix(1);
  if (said.size() > 1024)
    said = said.substr(0, 1024);
  auto message = fmt::format("HTTP {}{}{}", static_cast<int>(r.status), said.empty() ? "" : ": ", said);
  response g;
  g.status = status::ok;
  g.headers.add("content-type", "application/grpc");
  g.headers.add("grpc-status", std::to_string(grpc_code_for(r.status)));
  g.headers.add("grpc-message", grpc_percent_encode(message));
  if (auto retry = r.headers.get("retry-after"))
    g.headers.add("retry-after", std::string(*retry));
  r = std::move(g);
}

} // namespace coronet::http::detail
