#pragma once
// One worker's connections of a client pool (PostgreSQL sessions, Redis
// connections): idle ones to reuse, how many are open, and the calls that
// wait for one. Only its worker touches it. Conn has bool still_open()
// (nothing came while it sat idle, and it is not closed) and bool
// reusable() const (it may serve another call).
//
//   auto c = co_await pool.take(max, deadline, gauges, [&] { return Conn::open(...); });
//   if (!c.conn) throw ...;          // the deadline passed: all max are busy
//   ...
//   pool.give_back(std::move(c.conn), gauges);
#include <coronet/metrics.hpp>
#include <coronet/runtime.hpp>
#include <coronet/task.hpp>
#include <coronet/time.hpp>

#include <asio/this_coro.hpp>

#include <algorithm>
#include <cstddef>
#include <deque>
#include <exception>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace coronet::detail {

// The series a pool keeps up to date: connections in use and idle (of all
// workers), and the calls waiting.
struct pool_gauges {
  metrics::gauge& in_use;
  metrics::gauge& idle;
  metrics::gauge& waiting;
};

// The calling worker's index on `rt`: a client's pools are per worker.
// Throws std::logic_error naming `who` when called from elsewhere.
inline std::size_t worker_of(const runtime& rt, std::string_view who)
{
  auto w = runtime::current_worker();
  if (!w || runtime::current() != &rt)
    throw std::logic_error(std::string(who) + " called from outside its runtime's workers");
  return *w;
}

// A failed call, counted in `errors` by its kind when it is the client's
// own Error (with kind() and a to_string of it); a cancellation is the
// caller's doing, and is not counted.
template <class Error>
void count_error(metrics::family<metrics::counter>& errors, const std::exception_ptr& e)
{
  try {
    std::rethrow_exception(e);
  } catch (const Error& err) {
    errors.with({to_string(err.kind())}).inc();
  } catch (...) {
  }
}

// One worker's series of a labelled histogram by a key (a statement's
// text, a command's name), found by a hash lookup instead of the family's
// lock and label building; at most `max` keys are kept.
class series_cache {
public:
  explicit series_cache(std::size_t max) : max_(max) {}

  // label(key): the series' label, made only when the key is new.
  template <class Label>
  metrics::histogram& get(metrics::family<metrics::histogram>& family, std::string_view key, Label label)
  {
    if (auto it = series_.find(key); it != series_.end())
      return *it->second;
    auto& h = family.with({label(key)});
    if (series_.size() < max_)
      series_.emplace(std::string(key), &h);
    return h;
  }

private:
  struct hash : std::hash<std::string_view> {
    using is_transparent = void;
  };
  std::unordered_map<std::string, metrics::histogram*, hash, std::equal_to<>> series_;
  std::size_t max_;
};

template <class Conn>
class worker_pool {
public:
  struct taken {
    std::unique_ptr<Conn> conn; // null: the deadline passed first
    bool reused = false;        // was idle: it may have gone stale since
  };

  // An idle connection still open, a new one (open() -> task<unique_ptr<Conn>>)
  // while fewer than `max` are open, or the first one given back before
  // `deadline`. What open() throws goes on.
  template <class Open>
  task<taken> take(std::size_t max, clock::time_point deadline, const pool_gauges& g, Open open)
  {
    for (;;) {
      while (!idle_.empty()) {
        auto c = std::move(idle_.back());
        idle_.pop_back();
        g.idle.add(-1);
        if (c->still_open()) {
          g.in_use.add(1);
          co_return taken{std::move(c), true};
        }
        --open_; // closed by the server while idle: replaced below
      }
      if (open_ < max) {
        ++open_;
        try {
          auto c = co_await open();
          g.in_use.add(1);
          co_return taken{std::move(c), false};
        } catch (...) {
          --open_;
          wake_one();
          throw;
        }
      }
      wakeup w{co_await asio::this_coro::executor};
      queued in_line{*this, w, g};
      if (!co_await w.wait_until(deadline))
        co_return taken{};
    }
  }

  // A connection a call took: kept when it is reusable, else closed.
  void give_back(std::unique_ptr<Conn> c, const pool_gauges& g)
  {
    if (c && c->reusable()) {
      idle_.push_back(std::move(c));
      g.idle.add(1);
    } else {
      --open_;
    }
    g.in_use.add(-1);
    wake_one();
  }

  std::size_t idle_count() const noexcept { return idle_.size(); }
  // The idle connections of a client's pools that go with it, off the gauge.
  template <class Pools>
  static void forget_idle(const Pools& pools, const pool_gauges& g) noexcept
  {
    std::size_t n = 0;
    for (auto& p : pools)
      n += p.idle_count();
    g.idle.add(-static_cast<std::int64_t>(n));
  }
  // Calls wait for a connection.
  bool has_waiters() const noexcept { return !waiters_.empty(); }

private:
  void wake_one()
  {
    if (!waiters_.empty()) {
      waiters_.front()->wake();
      waiters_.pop_front();
    }
  }

  // In the wait queue however the wait ends (woken, timed out, cancelled).
  struct queued {
    worker_pool& pool;
    wakeup& w;
    const pool_gauges& g;
    int unwinding = std::uncaught_exceptions();
    queued(worker_pool& p, wakeup& wk, const pool_gauges& gauges) : pool(p), w(wk), g(gauges)
    {
      pool.waiters_.push_back(&w);
      g.waiting.add(1);
    }
    ~queued()
    {
      bool woken = std::erase(pool.waiters_, &w) == 0;
      g.waiting.add(-1);
      if (woken && std::uncaught_exceptions() > unwinding)
        pool.wake_one(); // cancelled as it was woken: what it was woken for goes to the next
    }
  };

  std::vector<std::unique_ptr<Conn>> idle_;
  std::size_t open_ = 0; // idle, in use and being opened
  std::deque<wakeup*> waiters_;
};

} // namespace coronet::detail
