#pragma once
// Writing to a socket without paying for a timer when there is room:
//
//   co_await coronet::net::write_all(socket, asio::buffer(line), 10s);
//
// The write is tried at once (the socket is switched to non-blocking mode);
// only what the socket buffer cannot take is awaited in the reactor, under
// `timeout`: a peer that reads nothing for that long gets
// coronet::timeout_error. A failed write throws std::system_error. (Wrapping
// every write in with_timeout would start a task and arm a timer each time,
// which a connection that writes often should not pay for.) Use it from the
// socket's worker, one writer at a time.
#include <coronet/task.hpp>
#include <coronet/time.hpp>

#include <asio/buffer.hpp>
#include <asio/ip/tcp.hpp>

namespace coronet::net {

task<void> write_all(asio::ip::tcp::socket& socket, asio::const_buffer data, clock::duration timeout);

} // namespace coronet::net
