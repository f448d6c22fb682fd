#pragma once
// A connected byte stream, plain TCP or TLS, with Go's deadlines: the one way
// every protocol in coronet reads and writes bytes.
//
//   net::stream& s = ...;                        // from serve_tcp, or stream{ex, tls} + connect()
//   s.set_read_deadline(clock::now() + 10s);     // for this read and the ones after
//   auto [ec, n] = co_await s.read_some(asio::buffer(buf));
//   if (ec == net::timed_out) ...                // the deadline passed
//   s.set_write_timeout(30s);
//   if (auto ec = co_await s.write(asio::buffer(reply))) ...
//
// Reads and writes are tried at once (the socket is non-blocking) and wait in
// the reactor only for what the socket cannot do now. A deadline is a point
// in time, as Go's SetReadDeadline: a wait that outlives it ends with
// `net::timed_out`, and so does every wait after it until the deadline moves.
// Deadlines cost one timer per stream that is re-armed only when it fires or
// when a deadline moves earlier, never a timer per operation. Expected
// network outcomes (EOF, reset, timeout) are error codes, not exceptions; a
// cancellation of the awaiting task (with_timeout, a task group) reaches the
// pending operation too.
//
// One reader and one writer may wait at the same time (a WebSocket reads
// while its writer writes). Use a stream from its own worker only.
#include <coronet/task.hpp>
#include <coronet/time.hpp>

#include <asio/buffer.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/ip/tcp.hpp>

#include <cstddef>
#include <memory>
#include <span>
#include <string_view>
#include <system_error>

namespace asio::ssl {
class context;
} // namespace asio::ssl
struct ssl_st; // OpenSSL's SSL

namespace coronet::net {

// What a wait that passed its deadline ends with.
inline const std::error_code timed_out = asio::error::timed_out;

struct io_result {
  std::error_code ec;
  std::size_t bytes = 0;
};

enum class tls_role { client, server };

class stream final {
public:
  // A plain TCP stream over a connected socket.
  explicit stream(asio::ip::tcp::socket socket);
  // A TLS stream over a connected socket; handshake() before anything else.
  // The stream holds the context for its life.
  stream(asio::ip::tcp::socket socket, std::shared_ptr<asio::ssl::context> tls, tls_role role);
  // A client stream not yet connected: connect(), then handshake() when
  // `tls` is set.
  explicit stream(const asio::any_io_executor& ex, std::shared_ptr<asio::ssl::context> tls = nullptr);
  ~stream();
  stream(const stream&) = delete;
  stream& operator=(const stream&) = delete;

  bool is_tls() const noexcept { return ssl_ != nullptr; }

  // At most buffer.size() bytes, as soon as any are there; {eof} when the
  // peer has closed, {timed_out} past the read deadline.
  task<io_result> read_some(asio::mutable_buffer buffer);
  // Only what has already arrived: {would_block} when nothing has. Never waits.
  io_result read_now(asio::mutable_buffer buffer);
  // Waits for bytes, then reads: for a caller whose read_now just found
  // nothing (the socket is not tried again first).
  task<io_result> wait_read(asio::mutable_buffer buffer);
  // The same, but `buffer` is written only once the awaiting task runs
  // again, never while it waits: it may be a buffer that other streams use
  // meanwhile (a worker's scratch), so a waiting connection holds none.
  task<io_result> wait_read_now(asio::mutable_buffer buffer);
  // What the socket takes now, without waiting: {would_block} when it takes
  // nothing. (Most responses fit: no coroutine, no reactor.)
  io_result write_now(asio::const_buffer data);
  // All of `data` (at most 8 buffers), under the write deadline.
  task<std::error_code> write(asio::const_buffer data);
  task<std::error_code> write(std::span<const asio::const_buffer> data);

  void set_read_deadline(clock::time_point at) noexcept;
  void set_write_deadline(clock::time_point at) noexcept;
  void set_read_timeout(clock::duration d) noexcept { set_read_deadline(clock::now() + d); }
  // How long each write may wait for the peer to take its bytes, counted
  // from when it starts waiting (a write that the socket takes at once costs
  // no clock and no timer). Replaces the write deadline; zero: none.
  void set_write_timeout(clock::duration d) noexcept;
  static constexpr clock::time_point no_deadline = clock::time_point::max();

  // For a library that reads and writes the socket itself (libpq): waits
  // until it can be read, under the read deadline, or written, under the
  // write deadline. Plain streams only.
  task<std::error_code> wait_readable() { return wait_ready(true, want::read); }
  task<std::error_code> wait_writable() { return wait_ready(false, want::write); }

  // Connects to the first of `endpoints` that accepts, under the write
  // deadline (TCP_NODELAY set).
  task<std::error_code> connect(std::span<const asio::ip::tcp::endpoint> endpoints);

  // TLS: the handshake, under the read deadline. The server name is sent as
  // SNI and, unless verification is off in the context, checked against the
  // peer's certificate. Plain streams: nothing to do.
  task<std::error_code> handshake(std::string_view server_name = {});
  // The protocol ALPN chose ("h2", "http/1.1"), empty when none or plain.
  std::string_view alpn() const noexcept;

  // An orderly end: TLS sends close_notify (without waiting for the peer's),
  // then the socket is closed.
  void close() noexcept;
  // An abrupt end: pending reads and writes fail at once. Safe from anywhere
  // on the stream's worker, while operations wait.
  void shut_down() noexcept;

  asio::ip::tcp::endpoint remote_endpoint() const noexcept;
  asio::any_io_executor get_executor() noexcept { return socket_.get_executor(); }
  // The TCP socket under it, for options (no_delay, buffer sizes) only:
  // protocol code reads and writes through the stream.
  asio::ip::tcp::socket& lowest_layer() noexcept { return socket_; }

  // SSL* of a TLS stream (certificate details, session reuse), else nullptr.
  void* native_tls() noexcept;

  // A server's connection: the signal that cancels the task serving this
  // stream (tcp_server sets it; it outlives the stream).
  void set_task_cancel(asio::cancellation_signal* cancel) noexcept { task_cancel_ = cancel; }
  // While a handler runs, Go's background read: when the peer closes or
  // resets the connection before the answer (having sent nothing more), the
  // serving task is cancelled, and with it what the handler waits for (its
  // calls to other services too). Costs a pending wait on the socket, kept
  // from one request to the next. Until unwatch_peer(). No effect without a
  // task_cancel. TLS: a peer that ends with close_notify is seen only once
  // the next read finds it.
  void watch_peer();
  void unwatch_peer() noexcept;
  struct peer_watch;

  struct deadlines;

private:
  // What OpenSSL asks for after a call that did not complete, and what the
  // call came to.
  enum class want : unsigned char { nothing, read, write };
  struct tls_step;
  tls_step tls_read(asio::mutable_buffer buffer);
  tls_step tls_write(asio::const_buffer data);
  tls_step tls_result(int r);

  task<io_result> wait_readable_then_read(asio::mutable_buffer buffer);
  task<std::error_code> wait_write(std::span<const asio::const_buffer> data, std::size_t skip);
  task<std::error_code> write_tls(std::span<const asio::const_buffer> data);
  // Waits until the socket can be read (or written, as OpenSSL asks), under
  // the read or the write side's deadline.
  task<std::error_code> wait_ready(bool for_read, want what);

  asio::ip::tcp::socket socket_;
  std::shared_ptr<asio::ssl::context> tls_context_; // TLS: kept for the life of ssl_
  ssl_st* ssl_ = nullptr;
  bool tls_ended_ = false; // TLS: an error or the peer's end was seen; no close_notify
  std::unique_ptr<deadlines> deadlines_;
  asio::cancellation_signal* task_cancel_ = nullptr;
  std::shared_ptr<peer_watch> peer_watch_; // made the first time watch_peer() is
};

} // namespace coronet::net
