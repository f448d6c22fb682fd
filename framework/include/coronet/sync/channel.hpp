#pragma once
// channel<T>: Go's `chan T`. A handle: copies share one channel, so pass it by
// value to the tasks that use it. Safe across workers.
//
//   coronet::channel<int> ch{16};             // buffered; channel<int>{} is a rendezvous
//   co_await ch.send(42);                     // ch <- 42
//   while (auto v = co_await ch.receive())    // for v := range ch
//     use(*v);
//   ch.close();                               // close(ch)
//
// Rules, as in Go: receiving from a closed, drained channel yields
// std::nullopt; sending on a closed channel throws std::system_error with
// coronet::errc::channel_closed (Go panics). Values buffered before close()
// are still received.
//
// A parked send or receive can be cancelled (with_timeout, a deadline, a
// task_group failing, shutdown): it then throws operation_aborted and the
// value is not delivered. A value is received exactly once or not at all.
#include <coronet/detail/channel_state.hpp>
#include <coronet/task.hpp>

#include <cstddef>
#include <memory>
#include <mutex>
#include <optional>
#include <variant>

namespace coronet {

template <class T>
class receive_case;
template <class T>
class send_case;

template <class T>
class channel final {
public:
  using value_type = T;

  explicit channel(std::size_t capacity = 0)
    : state_(std::make_shared<detail::channel_state<T>>(capacity))
  {
  }

  // Waits until a receiver takes the value (unbuffered) or it is buffered.
  task<void> send(T value) const;
  // Waits for a value; std::nullopt once the channel is closed and drained.
  task<std::optional<T>> receive() const;

  // Non-blocking forms. try_send moves from `value` only when it succeeds.
  bool try_send(T& value) const;
  bool try_send(T&& value) const { return try_send(value); }
  // std::nullopt when nothing is ready (check closed() to tell why).
  std::optional<T> try_receive() const;

  // Wakes every parked receiver (with nullopt) and sender (with
  // channel_closed). Returns false when it was already closed.
  bool close() const
  {
    std::lock_guard lock{state_->lock};
    return state_->close();
  }

  bool closed() const
  {
    std::lock_guard lock{state_->lock};
    return state_->closed();
  }
  // Values buffered right now.
  std::size_t size() const
  {
    std::lock_guard lock{state_->lock};
    return state_->size();
  }
  std::size_t capacity() const noexcept { return state_->capacity(); }

  // Cases for select().
  receive_case<T> on_receive() const { return receive_case<T>{state_}; }
  send_case<T> on_send(T value) const { return send_case<T>{state_, std::move(value)}; }

  friend bool operator==(const channel& a, const channel& b) noexcept { return a.state_ == b.state_; }

private:
  using state = detail::channel_state<T>;

  // A send or receive parked in the channel, living in the parked frame.
  // It reaches the state through a plain pointer: the channel handle the op
  // was started from keeps the state alive while the op is parked.
  class op final : public detail::parked_op {
  public:
    explicit op(state* s) : state_(s) {}
    ~op()
    {
      // Only when a frame is destroyed while parked (runtime shutdown).
      if (waiter.linked_) {
        std::lock_guard lock{state_->lock};
        state_->unpark(&waiter);
      }
    }
    detail::chan_waiter<T> waiter;

  private:
    // Runs once parked, with the channel's lock held since the fast path:
    // the waiter joins its queue and the lock is released.
    void arm() override
    {
      if (waiter.src)
        state_->park_sender(&waiter);
      else
        state_->park_receiver(&waiter);
      state_->lock.unlock();
    }
    void unpark() override
    {
      std::lock_guard lock{state_->lock};
      state_->unpark(&waiter);
    }
    state* state_;
  };

  std::shared_ptr<state> state_;
};

template <class T>
task<void> channel<T>::send(T value) const
{
  // The lock taken for the fast path is kept until the op is parked, so
  // nothing can change in between (the frame's lock releases it if the fast
  // path throws).
  std::unique_lock lock{state_->lock};
  if (state_->offer(value)) {
    lock.unlock();
    co_return;
  }
  op parked{state_.get()};
  parked.waiter.op = &parked;
  parked.waiter.src = &value;
  lock.release(); // parked.arm() unlocks it once parked
  co_await parked.park();
  parked.rethrow_if_failed();
}

template <class T>
task<std::optional<T>> channel<T>::receive() const
{
  std::optional<T> out;
  std::unique_lock lock{state_->lock}; // kept until parked, as in send()
  if (state_->take(out) != detail::take_result::would_block) {
    lock.unlock();
    co_return out;
  }
  op parked{state_.get()};
  parked.waiter.op = &parked;
  parked.waiter.dest = &out;
  lock.release(); // parked.arm() unlocks it once parked
  co_await parked.park();
  parked.rethrow_if_failed();
  co_return out;
}

template <class T>
bool channel<T>::try_send(T& value) const
{
  std::lock_guard lock{state_->lock};
  return state_->offer(value);
}

template <class T>
std::optional<T> channel<T>::try_receive() const
{
  std::optional<T> out;
  std::lock_guard lock{state_->lock};
  state_->take(out);
  return out;
}

// select() cases; see select.hpp. Each keeps its channel's state, its own
// parked waiter and, for receive, the value received.
template <class T>
class receive_case final {
public:
  using result_type = std::optional<T>;
  explicit receive_case(std::shared_ptr<detail::channel_state<T>> s) : state_(std::move(s)) {}

  detail::spinlock* lock() const noexcept { return &state_->lock; }
  bool poll() { return state_->take(value_) != detail::take_result::would_block; }
  void arm(detail::parked_op* op, int index)
  {
    waiter_.op = op;
    waiter_.index = index;
    waiter_.dest = &value_;
    state_->park_receiver(&waiter_);
  }
  void disarm() noexcept { state_->unpark(&waiter_); }
  result_type result() { return std::move(value_); }

private:
  std::shared_ptr<detail::channel_state<T>> state_;
  detail::chan_waiter<T> waiter_;
  std::optional<T> value_;
};

template <class T>
class send_case final {
public:
  using result_type = std::monostate;
  send_case(std::shared_ptr<detail::channel_state<T>> s, T value)
    : state_(std::move(s)), value_(std::move(value))
  {
  }

  detail::spinlock* lock() const noexcept { return &state_->lock; }
  // A closed channel makes the case ready; result() then throws.
  bool poll()
  {
    closed_ = state_->closed();
    return closed_ || state_->offer(value_);
  }
  void arm(detail::parked_op* op, int index)
  {
    waiter_.op = op;
    waiter_.index = index;
    waiter_.src = &value_;
    state_->park_sender(&waiter_);
  }
  void disarm() noexcept { state_->unpark(&waiter_); }
  result_type result()
  {
    if (closed_)
      throw std::system_error(make_error_code(errc::channel_closed));
    return {};
  }

private:
  std::shared_ptr<detail::channel_state<T>> state_;
  detail::chan_waiter<T> waiter_;
  T value_;
  bool closed_ = false;
};

} // namespace coronet
