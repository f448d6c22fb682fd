// libFuzzer target for the client's response parser: bytes a server sends,
// cut into reads, then the connection's end. Must never crash, leak or hang,
// and must keep its promises: a complete response has a status of 100-999,
// a body within the limit and headers within theirs; an error has a message.
//
// The first byte chooses the read size, the second whether the request was
// a HEAD (no body expected) and whether the server closes after its bytes.
#include "http1/response_parser.hpp"

#include <cstdint>
#include <cstdlib>
#include <string_view>

namespace http = coronet::http;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
  if (size < 2)
    return 0;
  std::size_t step = data[0] == 0 ? size : data[0];
  bool head = data[1] & 1, close_after = data[1] & 2;
  std::string_view wire{reinterpret_cast<const char*>(data + 2), size - 2};

  constexpr std::size_t max_header = 2048, max_body = 8192;
  http::detail::response_parser parser{max_header, max_body, head};
  auto check = [&](http::detail::response_parser::result r) {
    if (r == http::detail::response_parser::result::error) {
      if (parser.error_message().empty())
        std::abort();
      return false;
    }
    if (r == http::detail::response_parser::result::complete) {
      auto& resp = parser.response();
      if (resp.status < 100 || resp.status > 999 || resp.body.size() > max_body || (head && !resp.body.empty()))
        std::abort();
      (void)resp.headers.get("Content-Type");
      return false;
    }
    return true;
  };
  for (std::size_t at = 0; at < wire.size(); at += step)
    if (!check(parser.feed(wire.substr(at, step))))
      return 0;
  if (close_after)
    check(parser.finish());
  return 0;
}
