#pragma once
// What PostgreSQL's LISTEN and Redis's SUBSCRIBE share: items that a
// connection of their own receives, delivered into a channel by a task that,
// when the connection breaks, opens another (which subscribes again),
// waiting longer each time (100 ms, doubling up to 5 s), until the handle
// goes. What is sent while no connection is open is lost: neither server
// keeps anything for a subscriber that is gone.
//
//   auto st = std::make_shared<detail::feed_state<item>>(buffer);
//   spawn(detail::feed_loop(st, std::move(conn), reopen, receive, "Redis: subscription"), st->stop.slot());
//   return detail::feed<item>{st};      // its items(): the channel
//
// reopen() -> task<std::unique_ptr<Conn>> opens and subscribes a connection;
// receive(Conn&, channel<T>&) -> task<void> waits for what comes next and
// sends it into the channel. A coronet::status_error from either (the
// clients' errors) is a broken connection; anything else ends the feed.
#include <coronet/error.hpp>
#include <coronet/sync/channel.hpp>
#include <coronet/task.hpp>
#include <coronet/time.hpp>

#include <asio/cancellation_signal.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <system_error>

namespace coronet::detail {

template <class T>
struct feed_state {
  explicit feed_state(std::size_t buffer) : out(buffer) {}
  channel<T> out;
  asio::cancellation_signal stop;
};

// The handle a subscription holds: the feed ends, and its channel closes,
// when it goes. Use it on the worker that made it.
template <class T>
class feed final {
public:
  explicit feed(std::shared_ptr<feed_state<T>> s) : state_(std::move(s)) {}
  feed(feed&&) noexcept = default;
  feed& operator=(feed&& other) noexcept
  {
    if (this != &other) {
      stop();
      state_ = std::move(other.state_);
    }
    return *this;
  }
  ~feed() { stop(); }

  const channel<T>& items() const noexcept { return state_->out; }

private:
  void stop() noexcept
  {
    if (state_) {
      state_->out.close();
      state_->stop.emit(asio::cancellation_type::terminal);
    }
  }
  std::shared_ptr<feed_state<T>> state_;
};

template <class T, class Conn, class Reopen, class Receive>
task<void> feed_loop(std::shared_ptr<feed_state<T>> st, std::unique_ptr<Conn> conn, Reopen reopen, Receive receive,
  std::string what)
{
  using std::chrono::milliseconds;
  auto backoff = milliseconds(100);
  try {
    for (;;) {
      bool failed = false;
      try {
        if (!conn) {
          conn = co_await reopen();
          spdlog::info("{}: connected again", what);
          backoff = milliseconds(100);
        }
        co_await receive(*conn, st->out);
      } catch (const status_error& e) {
        spdlog::warn("{}: {}; again in {} ms", what, e.what(), backoff.count());
        conn.reset();
        failed = true;
      }
      if (failed) {
        co_await sleep_for(backoff);
        backoff = std::min(backoff * 2, milliseconds(5000));
      }
    }
  } catch (const std::system_error&) {
    // cancelled: the handle is gone, or the channel closed
  }
  st->out.close();
}

} // namespace coronet::detail
