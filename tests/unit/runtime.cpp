#include <coronet/runtime.hpp>

#include <coronet/sync/channel.hpp>
#include <coronet/sync/wait_group.hpp>
#include <support/run.hpp>

#include <asio/io_context.hpp>
#include <asio/query.hpp>

#include <doctest/doctest.h>

#include <atomic>
#include <csignal>
#include <future>
#include <stdexcept>
#include <thread>

using coronet::task;

namespace {

task<void> ok(coronet::wait_group& wg)
{
  wg.done();
  co_return;
}

task<void> fails(coronet::wait_group& wg)
{
  wg.done();
  throw std::runtime_error("expected failure");
  co_return;
}

task<std::size_t> worker_index_of_spawned(coronet::runtime& rt)
{
  coronet::wait_group wg;
  wg.add(1);
  std::thread::id parent = std::this_thread::get_id(), child;
  coronet::spawn([](coronet::wait_group& wg, std::thread::id& child) -> task<void> {
    child = std::this_thread::get_id();
    wg.done();
    co_return;
  }(wg, child));
  co_await wg.wait();
  (void)rt;
  co_return parent == child ? 1 : 0;
}

} // namespace

TEST_CASE("runtime block_on returns the task's value and rethrows its exception")
{
  coronet::runtime rt{2};
  CHECK(rt.size() == 2);
  CHECK(rt.block_on([]() -> task<int> { co_return 42; }()) == 42);
  CHECK_THROWS_AS(rt.block_on([]() -> task<void> {
    throw std::out_of_range("x");
    co_return;
  }()),
    std::out_of_range);
}

TEST_CASE("runtime counts spawned, completed, failed and alive tasks")
{
  // One worker: a spawned child runs to its end before spawn returns, so the
  // counters read on the worker are final (the reading task is the one alive).
  coronet::runtime rt{1};
  auto body = [](coronet::runtime& rt) -> task<coronet::task_stats> {
    coronet::wait_group wg;
    wg.add(5);
    for (int i = 0; i < 3; ++i)
      coronet::spawn(ok(wg));
    rt.spawn(0, fails(wg));
    coronet::spawn(fails(wg));
    co_await wg.wait();
    co_return rt.stats();
  };
  auto s = rt.block_on(body(rt));
  CHECK(s.spawned == 6); // 5 + block_on's own task
  CHECK(s.failed == 2);
  CHECK(s.completed == 3);
  CHECK(s.alive() == 1);
}

TEST_CASE("spawn starts the child on the calling worker")
{
  coronet::runtime rt{4};
  CHECK(rt.block_on(worker_index_of_spawned(rt)) == 1);
}

TEST_CASE("spawn outside a runtime worker is an error")
{
  CHECK_THROWS_AS(coronet::spawn([]() -> task<void> { co_return; }()), std::logic_error);
}

TEST_CASE("spawn_blocking runs off the worker and returns the result or the exception")
{
  coronet::runtime rt{1};
  auto body = []() -> task<bool> {
    auto worker = std::this_thread::get_id();
    auto where = co_await coronet::spawn_blocking([] { return std::this_thread::get_id(); });
    CHECK(std::this_thread::get_id() == worker); // resumed on its own worker
    bool threw = false;
    try {
      co_await coronet::spawn_blocking([] { throw std::runtime_error("in pool"); });
    } catch (const std::runtime_error&) {
      threw = true;
    }
    CHECK(threw);
    co_return where != worker;
  };
  CHECK(rt.block_on(body()));
}

TEST_CASE("request_stop closes done() for every waiting task")
{
  coronet::runtime rt{2};
  auto body = [](coronet::runtime& rt) -> task<bool> {
    CHECK_FALSE(rt.stop_requested());
    rt.request_stop();
    auto v = co_await rt.done().receive();
    co_return !v && rt.stop_requested();
  };
  CHECK(rt.block_on(body(rt)));
}

TEST_CASE("run_until_signal: SIGTERM requests a graceful stop and main's end returns 0")
{
  coronet::runtime rt{2};
  auto main_task = [](coronet::runtime& rt) -> task<void> {
    std::raise(SIGTERM);
    co_await rt.done().receive(); // returns once the signal is handled
  };
  CHECK(rt.run_until_signal(main_task(rt)) == 0);
  CHECK(rt.stop_requested());
}

TEST_CASE("run_until_signal returns 1 when main throws")
{
  coronet::runtime rt{1};
  CHECK(rt.run_until_signal([]() -> task<void> {
    throw std::runtime_error("main failed");
    co_return;
  }()) == 1);
}

namespace {

task<void> append(std::vector<int>& order, int v, int yields)
{
  for (int i = 0; i < yields; ++i)
    co_await coronet::yield();
  order.push_back(v);
}

} // namespace

TEST_CASE("yield lets the other ready tasks run first, in order")
{
  coronet::runtime rt{1};
  auto body = []() -> task<std::vector<int>> {
    std::vector<int> order;
    coronet::spawn(append(order, 1, 1));
    coronet::spawn(append(order, 2, 1));
    order.push_back(0);
    co_await coronet::yield();
    order.push_back(3);
    co_return order;
  };
  CHECK(rt.block_on(body()) == std::vector<int>{0, 1, 2, 3});
}

namespace {

// Sets its flag when destroyed, with the frame that holds it.
struct frame_probe {
  std::atomic<bool>* released;
  ~frame_probe() { released->store(true); }
};

task<void> wait_for_close(coronet::channel<int>& c, std::promise<void>& parking, std::atomic<bool>& woke,
  std::atomic<bool>& released)
{
  frame_probe probe{&released};
  parking.set_value();
  co_await c.receive();
  woke.store(true);
}

// Blocks its worker's thread until worker 0 is stopping, then wakes the task
// parked there: the wake-up arrives after that worker's last round.
task<void> close_once_stopped(coronet::runtime& rt, coronet::channel<int>& c)
{
  auto& stopping = static_cast<asio::io_context&>(asio::query(rt.executor(0), asio::execution::context));
  while (!stopping.stopped())
    std::this_thread::yield();
  c.close();
  co_return;
}

} // namespace

TEST_CASE("a task woken as the runtime stops still runs on, and its frame is released")
{
  coronet::channel<int> c;
  std::promise<void> parking;
  std::atomic<bool> woke{false}, released{false};
  {
    coronet::runtime rt{2};
    rt.spawn(0, wait_for_close(c, parking, woke, released));
    parking.get_future().wait();
    rt.spawn(1, close_once_stopped(rt, c));
  }
  CHECK(woke.load());
  CHECK(released.load());
}
