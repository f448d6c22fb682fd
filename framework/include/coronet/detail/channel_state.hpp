#pragma once
// The shared state behind channel<T> handles. Every member is guarded by
// `lock`; channel.hpp and select.hpp hold it around these calls.
#include <coronet/detail/intrusive_list.hpp>
#include <coronet/detail/parked_op.hpp>
#include <coronet/detail/spinlock.hpp>
#include <coronet/error.hpp>

#include <algorithm>
#include <cstddef>
#include <optional>
#include <system_error>
#include <vector>

namespace coronet::detail {

// One parked send or receive (a select parks one per case).
template <class T>
struct chan_waiter {
  chan_waiter* prev_ = nullptr;
  chan_waiter* next_ = nullptr;
  bool linked_ = false;
  parked_op* op = nullptr;
  int index = 0;
  std::optional<T>* dest = nullptr; // receive: where the value goes
  T* src = nullptr;                 // send: the value to hand over
};

enum class take_result { value, closed, would_block };

template <class T>
class channel_state final {
public:
  // The buffer starts small and doubles up to `capacity` as values wait, so
  // a big, mostly empty channel (a client's outbox) costs little memory.
  explicit channel_state(std::size_t capacity) : ring_(std::min<std::size_t>(capacity, 8)), capacity_(capacity) {}

  spinlock lock;

  bool closed() const noexcept { return closed_; }
  std::size_t size() const noexcept { return count_; }
  std::size_t capacity() const noexcept { return capacity_; }

  // Hands `value` to a parked receiver or buffers it; false when it would
  // block (value untouched). Throws on a closed channel.
  bool offer(T& value)
  {
    if (closed_)
      throw std::system_error(make_error_code(errc::channel_closed));
    while (chan_waiter<T>* w = receivers_.pop_front()) {
      if (!w->op->try_claim(w->index))
        continue; // a select that another case already won
      w->dest->emplace(std::move(value));
      w->op->wake();
      return true;
    }
    if (count_ == capacity_)
      return false;
    push(std::move(value));
    return true;
  }

  // Takes the oldest value (buffer first, then a parked sender).
  take_result take(std::optional<T>& out)
  {
    if (count_ > 0) {
      auto& slot = ring_[head_];
      out.emplace(std::move(*slot));
      slot.reset();
      if (++head_ == ring_.size())
        head_ = 0;
      --count_;
      // A parked sender may now move its value into the freed slot.
      while (chan_waiter<T>* w = senders_.pop_front()) {
        if (!w->op->try_claim(w->index))
          continue;
        push(std::move(*w->src));
        w->op->wake();
        break;
      }
      return take_result::value;
    }
    while (chan_waiter<T>* w = senders_.pop_front()) {
      if (!w->op->try_claim(w->index))
        continue;
      out.emplace(std::move(*w->src));
      w->op->wake();
      return take_result::value;
    }
    return closed_ ? take_result::closed : take_result::would_block;
  }

  void park_receiver(chan_waiter<T>* w) noexcept { receivers_.push_back(w); }
  void park_sender(chan_waiter<T>* w) noexcept { senders_.push_back(w); }
  void unpark(chan_waiter<T>* w) noexcept
  {
    // A waiter is in exactly one of the two lists; remove() ignores the other.
    if (w->src)
      senders_.remove(w);
    else
      receivers_.remove(w);
  }

  // Receivers wake with nothing (nullopt); parked senders fail with
  // errc::channel_closed. Buffered values stay receivable.
  bool close()
  {
    if (closed_)
      return false;
    closed_ = true;
    while (chan_waiter<T>* w = receivers_.pop_front())
      if (w->op->try_claim(w->index))
        w->op->wake();
    while (chan_waiter<T>* w = senders_.pop_front())
      if (w->op->try_claim(w->index))
        w->op->wake(make_error_code(errc::channel_closed));
    return true;
  }

private:
  void push(T&& value)
  {
    if (count_ == ring_.size())
      grow();
    std::size_t tail = head_ + count_++;
    if (tail >= ring_.size())
      tail -= ring_.size();
    ring_[tail].emplace(std::move(value));
  }

  void grow()
  {
    std::vector<std::optional<T>> bigger(std::min(capacity_, ring_.size() * 2));
    for (std::size_t i = 0; i < count_; ++i) {
      auto& slot = ring_[(head_ + i) % ring_.size()];
      bigger[i].emplace(std::move(*slot));
    }
    ring_.swap(bigger);
    head_ = 0;
  }

  std::vector<std::optional<T>> ring_;
  std::size_t capacity_;
  std::size_t head_ = 0;
  std::size_t count_ = 0;
  bool closed_ = false;
  intrusive_list<chan_waiter<T>> receivers_;
  intrusive_list<chan_waiter<T>> senders_;
};

} // namespace coronet::detail
