#pragma once
// HTTP/1.1 the plainest way, for integration tests against the real
// binaries: one request on a fresh connection (Connection: close), the
// whole reply read to the end.
#include <nlohmann/json.hpp>

#include <string>

namespace coronet::test {

struct reply {
  int status = 0;   // 0: no parsable reply
  std::string head; // the status line and headers, each ending in CRLF
  std::string body;
  nlohmann::json doc() const { return nlohmann::json::parse(body); }
  bool has(const std::string& header_line) const { return head.find(header_line) != std::string::npos; }
};

// Splits what a server sent into status, head and body.
reply parse_reply(const std::string& got);

// GET `path` from 127.0.0.1:`port`; `headers` are extra lines, each ending in CRLF.
reply get(unsigned short port, const std::string& path, const std::string& headers = "");

// `method` `path` with `body` (Content-Length added) and `headers` lines.
reply send(unsigned short port, const std::string& method, const std::string& path, const std::string& headers,
  const std::string& body);

} // namespace coronet::test
