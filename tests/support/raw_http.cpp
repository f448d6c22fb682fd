#include "support/raw_http.hpp"

#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/read.hpp>
#include <asio/write.hpp>

namespace coronet::test {

reply parse_reply(const std::string& got)
{
  reply r;
  auto end = got.find("\r\n\r\n");
  if (got.size() < 12 || end == std::string::npos)
    return r;
  r.status = std::stoi(got.substr(9, 3));
  r.head = got.substr(0, end + 2);
  r.body = got.substr(end + 4);
  return r;
}

reply get(unsigned short port, const std::string& path, const std::string& headers)
{
  asio::io_context io;
  asio::ip::tcp::socket s{io};
  s.connect({asio::ip::address_v4::loopback(), port});
  std::string wire = "GET " + path + " HTTP/1.1\r\nHost: t\r\nConnection: close\r\n" + headers + "\r\n";
  asio::write(s, asio::buffer(wire));
  std::string got;
  std::error_code ec;
  asio::read(s, asio::dynamic_buffer(got), ec);
  return parse_reply(got);
}

reply send(unsigned short port, const std::string& method, const std::string& path, const std::string& headers,
  const std::string& body)
{
  asio::io_context io;
  asio::ip::tcp::socket s{io};
  s.connect({asio::ip::address_v4::loopback(), port});
  std::string wire = method + " " + path + " HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: " +
    std::to_string(body.size()) + "\r\n" + headers + "\r\n" + body;
  asio::write(s, asio::buffer(wire));
  std::string got;
  std::error_code ec;
  asio::read(s, asio::dynamic_buffer(got), ec);
  return parse_reply(got);
}

} // namespace coronet::test
