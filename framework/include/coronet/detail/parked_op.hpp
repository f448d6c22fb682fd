#pragma once
// A coroutine parked on a primitive (channel, select, wait group, task group).
//
// Parking detaches the coroutine's Asio "thread" (its stack of awaitable
// frames) and keeps it in the op, which lives in the parked frame itself:
// parking allocates nothing. Waking puts the op on its worker's ready list;
// resuming re-attaches the thread and pumps it, as an Asio handler would.
// This is Asio 1.22's internal protocol for use_awaitable, minus the extra
// frame and handler object it costs per operation.
//
// Whoever completes the op must first win `try_claim`: a value is handed over
// only by the winner, so a wake-up racing a cancellation (or several channels
// racing for one select) delivers exactly once.
#include <coronet/detail/worker.hpp>

#include <asio/any_io_executor.hpp>
#include <asio/awaitable.hpp>
#include <asio/cancellation_type.hpp>
#include <asio/error.hpp>
#include <asio/post.hpp>
#include <asio/version.hpp>

#include <atomic>
#include <optional>
#include <system_error>
#include <utility>

#if ASIO_VERSION < 102200
#error "coronet needs Asio 1.22 or newer (Debian: libasio-dev)"
#endif

namespace coronet::detail {

inline constexpr int op_pending = -1;
inline constexpr int op_cancelled = -2;

using executor = asio::any_io_executor;
using asio_thread = asio::detail::awaitable_thread<executor>;
using asio_frame = asio::detail::awaitable_frame_base<executor>;

class parked_op : public parked_task {
public:
  parked_op() = default;
  parked_op(const parked_op&) = delete;
  parked_op& operator=(const parked_op&) = delete;

  // Claims the op for case `index`; only the winner may complete it.
  bool try_claim(int index) noexcept
  {
    int expected = op_pending;
    return fired_.compare_exchange_strong(expected, index, std::memory_order_acq_rel);
  }
  int fired() const noexcept { return fired_.load(std::memory_order_acquire); }

  // After a successful claim: resume the owner on its worker, never inline.
  void wake() noexcept { wake_with(nullptr, 0); }
  void wake(std::error_code ec) noexcept { wake_with(&ec.category(), ec.value()); }

  // `co_await op.park(arm)` suspends the calling coroutine. `arm` runs once
  // it is suspended and must park the op somewhere or claim and wake it.
  template <class Arm>
  auto park(Arm arm)
  {
    return [this, arm = std::move(arm)](asio_frame* frame) mutable -> asio_thread* {
      detach(frame);
      arm();
      watch_cancellation();
      return nullptr;
    };
  }
  // The same with the op's own arm(): the smallest awaiter, as every copy
  // of it takes room in the parked frame.
  auto park()
  {
    return [this](asio_frame* frame) -> asio_thread* {
      detach(frame);
      arm();
      watch_cancellation();
      return nullptr;
    };
  }

  // After resuming: throws what ended the op (operation_aborted when
  // cancelled, channel_closed for a send on a closed channel).
  void rethrow_if_failed() const
  {
    if (error_category_)
      throw std::system_error(error_value_, *error_category_);
  }

protected:
  ~parked_op()
  {
    // Only when the runtime's teardown destroys a frame parked here.
    if (home_)
      home_->parked().remove(this);
  }

  // Called on the owner's worker once the op is claimed for cancellation:
  // take the op out of wherever it is parked.
  virtual void unpark() = 0;
  // Called on the owner's worker right before the coroutine resumes.
  virtual void before_resume() {}
  // For park() without an argument: what park(arm) runs as `arm`.
  virtual void arm() {}

private:
  void detach(asio_frame* frame)
  {
    thread_.emplace(std::move(*frame->detach_thread()));
    // A coroutine running on a worker thread belongs to that worker's
    // io_context (workers run nothing else); elsewhere, post to its executor.
    // Listed on its worker while parked: nothing else could find its frames
    // at teardown.
    home_ = worker::current();
    if (home_)
      home_->parked().add(this);
  }

  // The error is kept as category + value: a default std::error_code costs a
  // call into the library on every op.
  void wake_with(const std::error_category* category, int value) noexcept
  {
    error_category_ = category;
    error_value_ = value;
    if (home_)
      home_->schedule(this);
    else
      asio::post(thread_->get_executor(), [this] { resume(); });
  }

  void resume() final
  {
    if (home_)
      home_->parked().remove(this);
    before_resume();
    // Pumping the thread may finish the coroutine and destroy this op: take
    // the thread out first.
    asio_thread thread = std::move(*thread_);
    thread_.reset();
    thread.get_cancellation_state().slot().clear();
    thread.launch();
  }

  // Listed on its worker while parked: the teardown abandons it from there.
  void discard() noexcept final {}

  // Destroying the thread hands its frames to its executor (Asio destroys a
  // coroutine stack there), whose io_context destroys them; the op, in one
  // of them, unparks itself from its primitive as it goes.
  void abandon() noexcept final { thread_.reset(); }

  // A cancellation (timeout, task group, shutdown) that wins the claim
  // unparks the op and resumes it with operation_aborted. Asio emits
  // cancellation on the owner's executor, so this never races resume().
  void watch_cancellation()
  {
    auto slot = thread_->get_cancellation_state().slot();
    if (!slot.is_connected() || fired() != op_pending)
      return;
    slot.assign([this](asio::cancellation_type type) {
      if (type == asio::cancellation_type::none || !try_claim(op_cancelled))
        return;
      unpark();
      wake(asio::error::operation_aborted);
    });
  }

  std::atomic<int> fired_{op_pending};
  worker* home_ = nullptr;
  const std::error_category* error_category_ = nullptr;
  int error_value_ = 0;
  std::optional<asio_thread> thread_;
};

} // namespace coronet::detail
