#include <coronet/sync/task_group.hpp>

#include <coronet/runtime.hpp>
#include <coronet/sync/channel.hpp>
#include <coronet/time.hpp>
#include <support/run.hpp>

#include <doctest/doctest.h>

#include <stdexcept>

using namespace std::chrono_literals;
using coronet::task;
using coronet::task_group;

namespace {

struct gauge {
  int now = 0;
  int peak = 0;
  int finished = 0;
};

task<void> busy(gauge& g, int yields)
{
  g.peak = std::max(g.peak, ++g.now);
  co_await coronet::test::yield(yields);
  --g.now;
  ++g.finished;
}

task<void> fail_after(int yields, const char* what)
{
  co_await coronet::test::yield(yields);
  throw std::runtime_error(what);
}

task<void> park_forever(coronet::channel<int> never, int& cancelled)
{
  try {
    co_await never.receive();
  } catch (const std::system_error& e) {
    if (e.code() == asio::error::operation_aborted)
      ++cancelled;
    throw;
  }
}

} // namespace

TEST_CASE("task_group wait returns after every child finished")
{
  coronet::runtime rt{1};
  auto body = []() -> task<int> {
    gauge g;
    task_group group;
    for (int i = 0; i < 20; ++i)
      group.spawn(busy(g, i % 4));
    co_await group.wait();
    CHECK(group.running() == 0);
    co_return g.finished;
  };
  CHECK(rt.block_on(body()) == 20);
}

TEST_CASE("task_group limit=3 never runs more than 3 children at once")
{
  coronet::runtime rt{1};
  auto body = []() -> task<gauge> {
    gauge g;
    task_group group{3};
    for (int i = 0; i < 30; ++i)
      group.spawn(busy(g, 1 + i % 5));
    co_await group.wait();
    co_return g;
  };
  auto g = rt.block_on(body());
  CHECK(g.finished == 30);
  CHECK(g.peak == 3);
}

TEST_CASE("task_group first error wins, cancels the rest and is rethrown by wait")
{
  coronet::runtime rt{1};
  auto body = []() -> task<int> {
    coronet::channel<int> never;
    int cancelled = 0;
    task_group group;
    for (int i = 0; i < 5; ++i)
      group.spawn(park_forever(never, cancelled));
    group.spawn(fail_after(2, "first"));
    group.spawn(fail_after(6, "second"));
    std::string error;
    try {
      co_await group.wait();
    } catch (const std::runtime_error& e) {
      error = e.what();
    }
    CHECK(error == "first");
    CHECK(group.cancelled());
    co_return cancelled;
  };
  CHECK(rt.block_on(body()) == 5);
}

TEST_CASE("task_group failure drops children still waiting for a slot")
{
  coronet::runtime rt{1};
  auto body = []() -> task<int> {
    gauge g;
    task_group group{1};
    group.spawn(fail_after(1, "boom"));
    for (int i = 0; i < 5; ++i)
      group.spawn(busy(g, 1));
    CHECK_THROWS_AS(co_await group.wait(), std::runtime_error);
    co_return g.finished;
  };
  CHECK(rt.block_on(body()) == 0);
}

TEST_CASE("task_group child timeouts and sleeps are cancelled with the group")
{
  coronet::runtime rt{1};
  auto body = []() -> task<void> {
    task_group group;
    group.spawn(coronet::sleep_for(10s));
    group.spawn(fail_after(1, "stop"));
    auto start = coronet::clock::now();
    CHECK_THROWS_AS(co_await group.wait(), std::runtime_error);
    CHECK(coronet::clock::now() - start < 5s);
  };
  rt.block_on(body());
}

TEST_CASE("task_group used off its worker is an error")
{
  CHECK_THROWS_AS(task_group{}, std::logic_error);
}
