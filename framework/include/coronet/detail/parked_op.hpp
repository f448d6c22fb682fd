#pragma once
// A coroutine parked on a primitive (channel, select, wait group). It lives in
// the parked coroutine's frame, which stays put until the op resumes it.
//
// Whoever completes the op must first win `try_claim`: a value is handed over
// only by the winner, so a wake-up racing a cancellation (or several channels
// racing for one select) delivers exactly once.
#include <coronet/detail/worker.hpp>

#include <asio/associated_cancellation_slot.hpp>
#include <asio/async_result.hpp>
#include <asio/bind_executor.hpp>
#include <asio/cancellation_type.hpp>
#include <asio/error.hpp>
#include <asio/execution/context.hpp>
#include <asio/query.hpp>
#include <asio/use_awaitable.hpp>

#include <atomic>
#include <optional>
#include <system_error>
#include <type_traits>
#include <utility>

namespace coronet::detail {

inline constexpr int op_pending = -1;
inline constexpr int op_cancelled = -2;

template <class Result>
struct completion_signature {
  using type = void(std::error_code, Result);
};
template <>
struct completion_signature<void> {
  using type = void(std::error_code);
};

// The part of a parked op that primitives see: claim it, then wake it.
class parked_base : public resumable {
public:
  parked_base() = default;
  parked_base(const parked_base&) = delete;
  parked_base& operator=(const parked_base&) = delete;

  // Claims the op for case `index`; only the winner may complete it.
  bool try_claim(int index) noexcept
  {
    int expected = op_pending;
    return fired_.compare_exchange_strong(expected, index, std::memory_order_acq_rel);
  }
  int fired() const noexcept { return fired_.load(std::memory_order_acquire); }

  // After a successful claim: resume the owner on its worker, never inline.
  void wake(std::error_code ec = {})
  {
    ec_ = ec;
    if (home_)
      home_->schedule(this);
    else
      post_resume();
  }

protected:
  ~parked_base() = default;
  virtual void post_resume() = 0;

  std::atomic<int> fired_{op_pending};
  worker* home_ = nullptr;
  std::error_code ec_;
};

template <class Result>
class parked_op : public parked_base {
public:
  using signature = typename completion_signature<Result>::type;
  using handler_type =
    typename asio::async_result<asio::use_awaitable_t<>, signature>::handler_type;

  // Suspends the calling coroutine. `arm` runs once the coroutine is
  // suspended and must either park the op somewhere (returning) or claim and
  // wake it at once.
  template <class Arm>
  auto park(Arm arm)
  {
    return asio::async_initiate<const asio::use_awaitable_t<>&, signature>(
      [this, arm = std::move(arm)](handler_type handler) mutable {
        handler_.emplace(std::move(handler));
        home_ = home_of(*handler_);
        arm();
        watch_cancellation();
      },
      asio::use_awaitable);
  }

  // Storage for the value handed to the owner (when Result is not void).
  template <class R = Result>
    requires(!std::is_void_v<R>)
  R& result() noexcept
  {
    return result_.value;
  }

protected:
  ~parked_op() = default;

  void post_resume() final
  {
    asio::post(handler_->get_executor(), [this] { resume(); });
  }

  // Called on the owner's worker once the op is claimed for cancellation:
  // take the op out of wherever it is parked.
  virtual void unpark() = 0;

  // Called on the owner's worker right before the coroutine resumes.
  virtual void before_resume() {}

  void resume() final
  {
    before_resume();
    // The handler resumes the coroutine, which destroys this op: move out
    // everything first.
    auto handler = std::move(*handler_);
    handler_.reset();
    auto ec = ec_;
    if constexpr (std::is_void_v<Result>) {
      std::move(handler)(ec);
    } else {
      Result value = std::move(result_.value);
      std::move(handler)(ec, std::move(value));
    }
  }

private:
  static worker* home_of(handler_type& handler) noexcept
  {
    worker* w = worker::current();
    if (w && &asio::query(handler.get_executor(), asio::execution::context) == &w->context())
      return w;
    return nullptr;
  }

  // A cancellation (timeout, task group, shutdown) that wins the claim
  // unparks the op and resumes it with operation_aborted. Asio emits
  // cancellation on the owner's executor, so this never races resume().
  void watch_cancellation()
  {
    auto slot = asio::get_associated_cancellation_slot(*handler_);
    if (!slot.is_connected() || fired() != op_pending)
      return;
    slot.assign([this](asio::cancellation_type type) {
      if (type == asio::cancellation_type::none || !try_claim(op_cancelled))
        return;
      unpark();
      wake(asio::error::operation_aborted);
    });
  }

  struct empty {};
  struct holder {
    Result value{};
  };
  using storage = std::conditional_t<std::is_void_v<Result>, empty, holder>;

  std::optional<handler_type> handler_;
  [[no_unique_address]] storage result_;
};

} // namespace coronet::detail
