#include <coronet/grpc/status.hpp>

#include <coronet/http/request.hpp>

#include "http2/grpc.hpp"

#include <array>

namespace coronet::grpc {

std::string_view name(code c) noexcept
{
  static constexpr std::array<std::string_view, 17> names{"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
    "UNAUTHENTICATED"};
  auto i = static_cast<std::size_t>(c);
  return i < names.size() ? names[i] : "UNKNOWN";
}

code code_for_http_status(int status) noexcept
{
  switch (status) {
  case 400: return code::internal;
  case 401: return code::unauthenticated;
  case 403: return code::permission_denied;
  case 404: return code::unimplemented;
  case 429:
  case 502:
  case 503:
  case 504: return code::unavailable;
  default: return code::unknown;
  }
}

std::string percent_encode(std::string_view text)
{
  return http::detail::grpc_percent_encode(text);
}

std::string percent_decode(std::string_view text)
{
  // A malformed escape leaves the message as it came: gRPC asks that it
  // never be thrown away.
  auto decoded = http::percent_decode(text, false);
  return decoded ? std::move(*decoded) : std::string(text);
}

} // namespace coronet::grpc
