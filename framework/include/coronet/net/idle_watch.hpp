#pragma once
// An idle timeout for a connection that costs nothing per operation: one
// timer per connection, re-armed only when it fires, cancels the pending
// operation once nothing happened for `idle`. (with_timeout arms and cancels
// a timer for every operation, which is what a chatty connection should not
// pay for.)
//
//   net::idle_watch watch{socket.get_executor(), 60s};
//   auto [ec, n] = co_await socket.async_read_some(buf, watch.bind(use_tuple));
//   watch.touch();                    // activity: the idle time starts again
//   if (ec == asio::error::operation_aborted && watch.expired()) ...
//
// Use it from the connection's own worker.
#include <asio/bind_cancellation_slot.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/steady_timer.hpp>

#include <chrono>
#include <memory>

namespace coronet::net {

class idle_watch {
public:
  template <class Executor>
  idle_watch(Executor ex, std::chrono::steady_clock::duration idle)
    : state_(std::make_shared<state>(ex, idle))
  {
    state_->last = std::chrono::steady_clock::now();
    arm(state_, state_->last + idle);
  }
  ~idle_watch() { state_->timer.cancel(); }
  idle_watch(const idle_watch&) = delete;
  idle_watch& operator=(const idle_watch&) = delete;

  // Activity: the idle time starts again.
  void touch() noexcept { state_->last = std::chrono::steady_clock::now(); }
  // The idle time ran out (and the pending operation, if any, was cancelled).
  bool expired() const noexcept { return state_->expired; }

  // A completion token for the watched operation.
  template <class Token>
  auto bind(Token token)
  {
    return asio::bind_cancellation_slot(state_->cancel.slot(), std::move(token));
  }

private:
  struct state {
    template <class Executor>
    state(Executor ex, std::chrono::steady_clock::duration d) : timer(ex), idle(d) {}
    asio::steady_timer timer;
    asio::cancellation_signal cancel;
    std::chrono::steady_clock::duration idle;
    std::chrono::steady_clock::time_point last;
    bool expired = false;
  };

  // The handler holds the state weakly: once the watch is gone, a late
  // firing does nothing.
  static void arm(const std::shared_ptr<state>& s, std::chrono::steady_clock::time_point at)
  {
    s->timer.expires_at(at);
    s->timer.async_wait([weak = std::weak_ptr<state>(s)](std::error_code ec) {
      auto s = weak.lock();
      if (ec || !s)
        return;
      auto due = s->last + s->idle;
      if (std::chrono::steady_clock::now() < due) {
        arm(s, due);
        return;
      }
      s->expired = true;
      s->cancel.emit(asio::cancellation_type::terminal);
    });
  }

  std::shared_ptr<state> state_;
};

} // namespace coronet::net
