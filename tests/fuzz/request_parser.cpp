// libFuzzer target for the request path: bytes off the wire through the
// request parser (strict llhttp plus coronet's own checks and limits), then
// what a handler reads from each request (path decoding, query parameters,
// header lookups). Must never crash, leak or hang, and must keep its own
// promises: a complete request's parts are within the limits, and an error
// always names a 4xx/5xx status.
//
// The first input byte chooses how the rest is cut into reads, so split
// requests and pipelines are explored as well.
#include "http1/request_parser.hpp"

#include <coronet/http/request.hpp>

#include <cstdint>
#include <cstdlib>
#include <string_view>

namespace http = coronet::http;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
  if (size == 0)
    return 0;
  std::size_t step = data[0] == 0 ? size : data[0];
  std::string_view wire{reinterpret_cast<const char*>(data + 1), size - 1};

  http::detail::parse_limits limits{256, 1024, 16, 4096};
  http::detail::request_parser parser{limits};
  std::string buffer;
  for (std::size_t at = 0; at < wire.size(); at += step) {
    buffer.append(wire.substr(at, step));
    while (!buffer.empty()) {
      std::size_t used = 0;
      auto r = parser.feed(buffer, used);
      if (used > buffer.size())
        std::abort();
      buffer.erase(0, used);
      if (r == http::detail::request_parser::result::error) {
        if (http::code(parser.error_status()) < 400 || parser.error_message().empty())
          std::abort();
        return 0; // the connection would answer and close
      }
      if (r == http::detail::request_parser::result::need_more)
        break;
      http::request req = parser.take();
      if (req.body.size() > limits.max_body_bytes || req.headers.size() > limits.max_headers)
        std::abort();
      if (req.path.empty() || req.path.front() != '/')
        std::abort();
      (void)req.query("id");
      (void)req.header("Content-Type");
      (void)http::percent_decode(req.query_string, true);
    }
  }
  return 0;
}
