#include <coronet/time.hpp>

#include <coronet/runtime.hpp>

#include <doctest/doctest.h>

#include <stdexcept>
#include <vector>

using namespace std::chrono_literals;
using coronet::task;

namespace {

task<int> slow_value(std::chrono::milliseconds d, int v)
{
  co_await coronet::sleep_for(d);
  co_return v;
}

task<int> throws_now()
{
  throw std::invalid_argument("bad");
  co_return 0;
}

} // namespace

TEST_CASE("sleep_for waits at least the duration")
{
  coronet::runtime rt{1};
  auto start = coronet::clock::now();
  rt.block_on(coronet::sleep_for(20ms));
  CHECK(coronet::clock::now() - start >= 20ms);
}

TEST_CASE("with_timeout returns the value of an operation that finishes in time")
{
  coronet::runtime rt{1};
  CHECK(rt.block_on(coronet::with_timeout(slow_value(1ms, 7), 5s)) == 7);
}

TEST_CASE("with_timeout cancels a slow operation and throws timeout_error")
{
  coronet::runtime rt{1};
  auto start = coronet::clock::now();
  try {
    rt.block_on(coronet::with_timeout(slow_value(10s, 7), 20ms));
    FAIL("no timeout");
  } catch (const coronet::timeout_error& e) {
    CHECK(e.code() == coronet::errc::timed_out);
    CHECK(e.code() == std::errc::timed_out);
  }
  CHECK(coronet::clock::now() - start < 5s); // the 10 s sleep was cancelled
}

TEST_CASE("with_timeout passes an operation's own exception through")
{
  coronet::runtime rt{1};
  CHECK_THROWS_AS(rt.block_on(coronet::with_timeout(throws_now(), 5s)), std::invalid_argument);
}

TEST_CASE("with_deadline in the past times out")
{
  coronet::runtime rt{1};
  CHECK_THROWS_AS(
    rt.block_on(coronet::with_deadline(slow_value(1s, 1), coronet::clock::now() - 1ms)), coronet::timeout_error);
}

TEST_CASE("with_timeout of a void operation")
{
  coronet::runtime rt{1};
  rt.block_on(coronet::with_timeout(coronet::sleep_for(1ms), 5s));
  CHECK_THROWS_AS(rt.block_on(coronet::with_timeout(coronet::sleep_for(10s), 5ms)), coronet::timeout_error);
}

namespace {

task<void> wake_later(coronet::wakeup& w, std::chrono::milliseconds after)
{
  co_await coronet::sleep_for(after);
  w.wake();
}

} // namespace

TEST_CASE("wakeup: a wake ends the wait with true, long before the deadline")
{
  coronet::runtime rt{1};
  auto woken = rt.block_on([]() -> task<bool> {
    coronet::wakeup w{co_await asio::this_coro::executor};
    coronet::spawn(wake_later(w, 1ms));
    co_return co_await w.wait_until(coronet::clock::now() + 10s);
  }());
  CHECK(woken);
}

TEST_CASE("wakeup: the deadline ends the wait with false; a wake with nobody waiting is kept")
{
  coronet::runtime rt{1};
  rt.block_on([]() -> task<void> {
    coronet::wakeup w{co_await asio::this_coro::executor};
    auto start = coronet::clock::now();
    CHECK_FALSE(co_await w.wait_until(start + 20ms));
    CHECK(coronet::clock::now() - start >= 20ms);
    w.wake();
    CHECK(co_await w.wait_until(coronet::clock::now() + 10s)); // at once: the wake was kept
    CHECK_FALSE(co_await w.wait_until(coronet::clock::now() + 1ms)); // and used up
  }());
}

namespace {

// Waits until cancelled, and says what the wait threw.
task<void> wait_forever(coronet::wakeup& w, std::error_code& thrown)
{
  try {
    co_await w.wait_until(coronet::clock::time_point::max());
  } catch (const std::system_error& e) {
    thrown = e.code();
    throw;
  }
}

} // namespace

TEST_CASE("wakeup: a cancelled waiter gets operation_aborted")
{
  coronet::runtime rt{1};
  std::error_code thrown;
  rt.block_on([](std::error_code& thrown) -> task<void> {
    coronet::wakeup w{co_await asio::this_coro::executor};
    CHECK_THROWS_AS(co_await coronet::with_timeout(wait_forever(w, thrown), 5ms), coronet::timeout_error);
  }(thrown));
  CHECK(thrown == asio::error::operation_aborted);
}

TEST_CASE("alarm: rings once at its time; moved later, it rings then and not before")
{
  coronet::runtime rt{1};
  rt.block_on([]() -> task<void> {
    auto executor = co_await asio::this_coro::executor;
    coronet::wakeup rung{executor};
    std::vector<coronet::clock::time_point> rang;
    coronet::alarm a{executor, [&] {
      rang.push_back(coronet::clock::now());
      rung.wake();
    }};
    auto start = coronet::clock::now();
    a.ring_at(start + 10ms);
    a.ring_at(start + 40ms); // later: the 10 ms wake finds it moved
    CHECK(a.at() == start + 40ms);
    CHECK(co_await rung.wait_until(start + 10s));
    REQUIRE(rang.size() == 1);
    CHECK(rang[0] - start >= 40ms);
    CHECK(a.at() == coronet::clock::time_point::max()); // rung: not set any more
    auto again = coronet::clock::now();
    a.ring_at(again + 10s);
    a.ring_at(again + 1ms); // earlier: rings at the earlier time
    CHECK(co_await rung.wait_until(again + 5s));
    CHECK(rang.size() == 2);
  }());
}

TEST_CASE("alarm: stopped or gone, it never rings; stopped, it can be set again")
{
  coronet::runtime rt{1};
  rt.block_on([]() -> task<void> {
    auto executor = co_await asio::this_coro::executor;
    int rang = 0;
    coronet::wakeup rung{executor};
    coronet::alarm stopped{executor, [&] {
      ++rang;
      rung.wake();
    }};
    stopped.ring_at(coronet::clock::now() + 5ms);
    stopped.stop();
    {
      coronet::alarm gone{executor, [&] { ++rang; }};
      gone.ring_at(coronet::clock::now() + 5ms);
    }
    co_await coronet::sleep_for(50ms); // past both times
    CHECK(rang == 0);
    stopped.ring_at(coronet::clock::now() + 1ms);
    CHECK(co_await rung.wait_until(coronet::clock::now() + 5s));
    CHECK(rang == 1);
  }());
}
