#include <coronet/sync/wait_group.hpp>

#include <coronet/runtime.hpp>
#include <coronet/time.hpp>
#include <support/run.hpp>

#include <doctest/doctest.h>

#include <atomic>

using namespace std::chrono_literals;
using coronet::task;
using coronet::wait_group;

namespace {

task<void> finish_later(wait_group& wg, std::atomic<int>& finished, int yields)
{
  co_await coronet::test::yield(yields);
  finished.fetch_add(1);
  wg.done();
}

task<void> wait_then_count(wait_group& wg, std::atomic<int>& woken)
{
  co_await wg.wait();
  woken.fetch_add(1);
}

} // namespace

TEST_CASE("wait_group wait returns once every task is done")
{
  coronet::runtime rt{1};
  auto body = []() -> task<int> {
    wait_group wg;
    std::atomic<int> finished{0};
    for (int i = 0; i < 10; ++i) {
      wg.add(1);
      coronet::spawn(finish_later(wg, finished, i));
    }
    co_await wg.wait();
    CHECK(wg.count() == 0);
    co_return finished.load();
  };
  CHECK(rt.block_on(body()) == 10);
}

TEST_CASE("wait_group wait with a zero count returns at once")
{
  coronet::runtime rt{1};
  auto body = []() -> task<void> {
    wait_group wg;
    co_await wg.wait();
    wg.add(2);
    wg.done();
    wg.done();
    co_await wg.wait();
  };
  rt.block_on(body());
}

TEST_CASE("wait_group done below zero is an error")
{
  wait_group wg;
  CHECK_THROWS_AS(wg.done(), std::logic_error);
  CHECK(wg.count() == 0);
  wg.add(1);
  CHECK_THROWS_AS(wg.add(-2), std::logic_error);
  CHECK(wg.count() == 1);
}

TEST_CASE("wait_group wakes every waiter, across workers")
{
  coronet::runtime rt{4};
  auto body = [](coronet::runtime& rt) -> task<int> {
    wait_group wg, waiters_done;
    std::atomic<int> woken{0}, finished{0};
    wg.add(1);
    for (std::size_t i = 0; i < 8; ++i) {
      waiters_done.add(1);
      rt.spawn(i % rt.size(), [](wait_group& wg, wait_group& done, std::atomic<int>& woken) -> task<void> {
        co_await wait_then_count(wg, woken);
        done.done();
      }(wg, waiters_done, woken));
    }
    co_await coronet::test::yield(3);
    rt.spawn(1, finish_later(wg, finished, 2));
    co_await waiters_done.wait();
    co_return woken.load();
  };
  CHECK(rt.block_on(body(rt)) == 8);
}

TEST_CASE("wait_group wait can be cancelled by a timeout")
{
  coronet::runtime rt{1};
  auto body = []() -> task<void> {
    wait_group wg;
    wg.add(1);
    CHECK_THROWS_AS(co_await coronet::with_timeout(wg.wait(), 5ms), coronet::timeout_error);
    wg.done(); // must not touch the cancelled waiter
    co_await wg.wait();
  };
  rt.block_on(body());
}
