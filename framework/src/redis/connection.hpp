#pragma once
// One connection to Redis: commands written in RESP, replies read by
// hiredis's reader from what the stream brought.
#include <coronet/net/stream.hpp>
#include <coronet/redis/client.hpp>

#include <memory>
#include <span>
#include <string>
#include <vector>

struct redisReader;

namespace coronet::redis::detail {

class connection final {
public:
  // Connected (TLS: handshake; AUTH and SELECT when the options ask) by
  // `deadline`. Throws redis::error (errc::unavailable, errc::timeout).
  static task<std::unique_ptr<connection>> open(const options& o, const std::shared_ptr<asio::ssl::context>& tls,
    clock::time_point deadline);
  connection(const asio::any_io_executor& ex, std::shared_ptr<asio::ssl::context> tls, std::string address);
  ~connection();
  connection(const connection&) = delete;
  connection& operator=(const connection&) = delete;

  // Writes every command, then reads as many replies, all by `deadline`.
  task<std::vector<reply>> round_trip(std::span<const command> batch, clock::time_point deadline);
  // Writes without waiting for replies (SUBSCRIBE), by `deadline`.
  task<void> send(std::span<const command> batch, clock::time_point deadline);
  // The next reply, by `deadline` (clock::time_point::max(): none).
  task<reply> next(clock::time_point deadline);

  // Nothing came while it sat idle, and it is not closed: one system call.
  bool still_open() noexcept;
  bool reusable() const noexcept { return !broken_; }
  // Whether any byte of a reply arrived since the connection was opened
  // or last given back (a call that failed before may be made again).
  bool heard_back() const noexcept { return heard_back_; }
  void given_back() noexcept { heard_back_ = false; }
  const std::string& address() const noexcept { return address_; }

private:
  task<void> write_all(clock::time_point deadline);
  [[noreturn]] void fail(const std::error_code& ec, std::string_view doing);

  net::stream stream_;
  std::string address_; // host:port, for messages
  redisReader* reader_;
  std::string out_;
  std::vector<char> in_;
  bool broken_ = false;
  bool heard_back_ = false;
};

// `batch` in RESP, appended to `out`.
void encode(std::span<const command> batch, std::string& out);

} // namespace coronet::redis::detail
