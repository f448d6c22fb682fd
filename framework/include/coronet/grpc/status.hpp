#pragma once
// gRPC's status codes, and the error a method throws to answer with one.
//
//   if (!found)
//     throw grpc::error(grpc::code::not_found, fmt::format("no user {}", id));
//
// A method that returns answers OK. Any other exception answers INTERNAL
// (its text is logged, not sent); a call past its deadline answers
// DEADLINE_EXCEEDED.
#include <stdexcept>
#include <string>
#include <string_view>

namespace coronet::grpc {

enum class code : int {
  ok = 0,
  cancelled = 1,
  unknown = 2,
  invalid_argument = 3,
  deadline_exceeded = 4,
  not_found = 5,
  already_exists = 6,
  permission_denied = 7,
  resource_exhausted = 8,
  failed_precondition = 9,
  aborted = 10,
  out_of_range = 11,
  unimplemented = 12,
  internal = 13,
  unavailable = 14,
  data_loss = 15,
  unauthenticated = 16,
};

// "OK", "NOT_FOUND"... as gRPC spells them; "UNKNOWN" for a number beyond 16.
std::string_view name(code c) noexcept;

// What a client makes of an HTTP answer that is no gRPC one (a proxy's, a
// server that does not speak gRPC), by gRPC's table (doc/http-grpc-status-
// mapping.md): 400 INTERNAL, 401 UNAUTHENTICATED, 403 PERMISSION_DENIED, 404
// UNIMPLEMENTED, 429, 502, 503 and 504 UNAVAILABLE, any other UNKNOWN. (A
// coronet server maps its own answers the other way by what they mean: its
// 504 is the call's deadline, DEADLINE_EXCEEDED.)
code code_for_http_status(int status) noexcept;

// A status other than OK, with its message (sent percent-encoded in
// grpc-message, read back decoded).
class error : public std::runtime_error {
public:
  error(grpc::code c, std::string message) : std::runtime_error(std::move(message)), code_(c) {}
  grpc::code code() const noexcept { return code_; }
  std::string_view message() const noexcept { return what(); }

private:
  grpc::code code_;
};

// grpc-message's encoding (percent-encoding of bytes outside printable
// ASCII and of '%') and its decoding (a malformed escape is kept as is).
std::string percent_encode(std::string_view text);
std::string percent_decode(std::string_view text);

} // namespace coronet::grpc
