#include <coronet/net/write.hpp>

#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>

namespace coronet::net {

task<void> write_all(asio::ip::tcp::socket& socket, asio::const_buffer data, clock::duration timeout)
{
  std::error_code ec;
  if (!socket.non_blocking()) {
    socket.non_blocking(true, ec);
    if (ec)
      throw std::system_error(ec, "write");
  }
  std::size_t sent = socket.write_some(data, ec);
  if (ec == asio::error::would_block) {
    ec.clear();
    sent = 0;
  }
  if (ec)
    throw std::system_error(ec, "write");
  if (sent == data.size())
    co_return;
  co_await with_timeout(asio::async_write(socket, data + sent, asio::use_awaitable), timeout);
}

} // namespace coronet::net
