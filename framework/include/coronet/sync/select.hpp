#pragma once
// select: Go's `select` over channel cases and a timeout.
//
//   auto r = co_await coronet::select(jobs.on_receive(), results.on_send(v),
//                                     coronet::after(100ms));
//   switch (r.index()) {
//   case 0: if (auto job = std::get<0>(r)) run(*job); else /* jobs closed */; break;
//   case 1: /* v was sent */ break;
//   case 2: /* timed out */ break;
//   }
//
// The result is a std::variant with one alternative per case, in order: a
// receive case holds std::optional<T> (nullopt: the channel is closed), send
// and after cases hold std::monostate. When several cases are ready, one is
// chosen at random, as in Go, so no case starves. A send case on a closed
// channel throws channel_closed. try_select is the non-blocking form (Go's
// `default`): std::nullopt when no case is ready.
#include <coronet/sync/channel.hpp>
#include <coronet/task.hpp>
#include <coronet/time.hpp>

#include <asio/this_coro.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>

namespace coronet {

// A select case that fires after `d` (Go's `<-time.After(d)`).
class after_case final {
public:
  using result_type = std::monostate;
  explicit after_case(std::chrono::steady_clock::duration d) : delay_(d) {}

  detail::spinlock* lock() const noexcept { return nullptr; }
  bool poll() const noexcept { return false; }
  void arm(detail::parked_op* op, int index);
  void disarm() noexcept;
  result_type result() const noexcept { return {}; }

  // The executor the timer runs on; set by select before arm().
  void bind(asio::any_io_executor ex) { executor_ = std::move(ex); }

private:
  std::chrono::steady_clock::duration delay_;
  asio::any_io_executor executor_;
  std::optional<alarm> alarm_; // never rings once the select has finished: disarm() stops it
};

inline after_case after(std::chrono::steady_clock::duration d)
{
  return after_case{d};
}

namespace detail {

std::uint32_t select_random() noexcept; // per-thread generator

template <std::size_t N>
class multi_lock final {
public:
  explicit multi_lock(std::array<spinlock*, N> locks) : locks_(locks)
  {
    std::sort(locks_.begin(), locks_.end());
    for (std::size_t i = 0; i < N; ++i)
      if (locks_[i] && (i == 0 || locks_[i] != locks_[i - 1]))
        locks_[i]->lock();
  }
  ~multi_lock()
  {
    for (std::size_t i = N; i-- > 0;)
      if (locks_[i] && (i == 0 || locks_[i] != locks_[i - 1]))
        locks_[i]->unlock();
  }
  multi_lock(const multi_lock&) = delete;
  multi_lock& operator=(const multi_lock&) = delete;

private:
  std::array<spinlock*, N> locks_;
};

template <class... Cases>
class select_state final {
public:
  static constexpr std::size_t size = sizeof...(Cases);
  using result = std::variant<typename Cases::result_type...>;

  explicit select_state(std::tuple<Cases...>& cases) : cases_(cases)
  {
    // Fisher-Yates: the order in which ready cases are tried.
    for (std::size_t i = 0; i < size; ++i)
      order_[i] = static_cast<int>(i);
    for (std::size_t i = size - 1; i > 0; --i)
      std::swap(order_[i], order_[select_random() % (i + 1)]);
  }

  std::array<spinlock*, size> locks() const
  {
    return std::apply([](auto&... c) { return std::array<spinlock*, size>{c.lock()...}; }, cases_);
  }

  // Under all locks: the index of the case that completed, or -1.
  int poll()
  {
    for (int i : order_) {
      bool ready = false;
      visit(i, [&](auto& c) { ready = c.poll(); });
      if (ready)
        return i;
    }
    return -1;
  }

  template <class F>
  void each(F f)
  {
    std::apply([&](auto&... c) { (f(c), ...); }, cases_);
  }

  result take(int index)
  {
    return take(index, std::make_index_sequence<size>{});
  }

private:
  template <class F>
  void visit(int index, F f)
  {
    int i = 0;
    std::apply([&](auto&... c) { ((i++ == index ? f(c) : void()), ...); }, cases_);
  }

  template <std::size_t... I>
  result take(int index, std::index_sequence<I...>)
  {
    result r;
    ((static_cast<int>(I) == index ? (void)r.template emplace<I>(std::get<I>(cases_).result()) : void()), ...);
    return r;
  }

  std::tuple<Cases...>& cases_;
  std::array<int, size> order_;
};

template <class... Cases>
class select_op final : public parked_op {
public:
  explicit select_op(select_state<Cases...>& s) : state_(s) {}
  ~select_op()
  {
    // Only when a frame is destroyed while parked (runtime shutdown).
    if (fired() == op_pending)
      disarm_all();
  }

  void arm_all()
  {
    int i = 0;
    state_.each([&](auto& c) { c.arm(this, i++); });
  }

private:
  void disarm_all()
  {
    state_.each([](auto& c) {
      if constexpr (std::is_same_v<std::decay_t<decltype(c)>, after_case>) {
        c.disarm();
      } else {
        std::lock_guard lock{*c.lock()};
        c.disarm();
      }
    });
  }
  void unpark() override { disarm_all(); }
  void before_resume() override { disarm_all(); }

  select_state<Cases...>& state_;
};

} // namespace detail

template <class... Cases>
std::optional<std::variant<typename Cases::result_type...>> try_select(Cases... cases)
{
  std::tuple<Cases...> all{std::move(cases)...};
  detail::select_state<Cases...> state{all};
  int fired;
  {
    detail::multi_lock lock{state.locks()};
    fired = state.poll();
  }
  if (fired < 0)
    return std::nullopt;
  return state.take(fired);
}

// GCC 12 misreads the coroutine frame's class-specific operator new/delete
// pair (Asio's recycling allocator) in this function as mismatched.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif
template <class... Cases>
task<std::variant<typename Cases::result_type...>> select(Cases... cases)
{
  static_assert(sizeof...(Cases) > 0, "select needs at least one case");
  std::tuple<Cases...> all{std::move(cases)...};
  detail::select_state<Cases...> state{all};
  {
    detail::multi_lock lock{state.locks()};
    if (int fired = state.poll(); fired >= 0)
      co_return state.take(fired);
  }
  auto executor = co_await asio::this_coro::executor;
  std::apply(
    [&](auto&... c) {
      auto bind = [&](auto& one) {
        if constexpr (std::is_same_v<std::decay_t<decltype(one)>, after_case>)
          one.bind(executor);
      };
      (bind(c), ...);
    },
    all);
  detail::select_op<Cases...> parked{state};
  co_await parked.park([&] {
    detail::multi_lock lock{state.locks()};
    if (int now = state.poll(); now >= 0) {
      parked.try_claim(now);
      parked.wake();
    } else {
      parked.arm_all();
    }
  });
  parked.rethrow_if_failed();
  co_return state.take(parked.fired());
}
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

} // namespace coronet
