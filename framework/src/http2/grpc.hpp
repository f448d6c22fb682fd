#pragma once
// What the HTTP/2 server knows of gRPC (coronet/grpc builds the calls
// themselves): which requests are gRPC calls, and how an answer that is not
// a gRPC one (the router's 404, a shed 503, the deadline's 504, a 500 from
// an exception) becomes a gRPC status the client understands.
#include <coronet/http/response.hpp>

#include <string>
#include <string_view>

namespace coronet::http::detail {

// application/grpc, application/grpc+proto, application/grpc;...: a call
// (gRPC-Web, application/grpc-web, is not).
bool grpc_content_type(std::string_view content_type) noexcept;

// The gRPC status for an HTTP status the server answered instead of the
// call (gRPC's HTTP-to-status table, with coronet's own meanings: 504 is
// the call's deadline, 429 and 413 a limit).
int grpc_code_for(status s) noexcept;

// `r` as a Trailers-Only gRPC answer (HTTP 200, grpc-status and a
// percent-encoded grpc-message naming the HTTP answer), unless it already
// is a gRPC answer.
void answer_as_grpc(response& r);

// grpc-message's encoding: bytes outside printable ASCII, and '%', as %XX.
std::string grpc_percent_encode(std::string_view text);

} // namespace coronet::http::detail
