#include <coronet/runtime.hpp>

#include <coronet/sync/channel.hpp>
#include <coronet/sync/wait_group.hpp>
#include <coronet/time.hpp>
#include <support/run.hpp>

#include <asio/io_context.hpp>
#include <asio/local/connect_pair.hpp>
#include <asio/local/stream_protocol.hpp>
#include <asio/query.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>

#include <doctest/doctest.h>

#include <atomic>
#include <csignal>
#include <future>
#include <memory>
#include <stdexcept>
#include <thread>
#include <vector>

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
  ~frame_probe()
  {
    if (released)
      released->store(true);
  }
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

namespace {

// I/O objects made on one worker's executor, to be owned by a task on another.
struct worker_objects {
  explicit worker_objects(const asio::any_io_executor& ex) : socket(ex), peer(ex), timer(ex)
  {
    asio::local::connect_pair(socket, peer);
    timer.expires_after(std::chrono::hours{1});
  }
  asio::local::stream_protocol::socket socket, peer;
  asio::steady_timer timer;
  coronet::channel<int> channel{1};
};

enum class parking { channel, timer, socket, wait_group };

std::atomic<int> resumed_after_stop{0};

// Owns `foreign` (another worker's objects) and parks on something of its
// own worker that never comes: the runtime is destroyed under it.
task<void> park_holding([[maybe_unused]] std::shared_ptr<worker_objects> foreign, parking how,
  [[maybe_unused]] std::shared_ptr<frame_probe> probe, std::shared_ptr<std::promise<void>> parked)
{
  auto executor = co_await asio::this_coro::executor;
  worker_objects own{executor};
  coronet::wait_group never;
  never.add(1);
  parked->set_value();
  char byte;
  switch (how) {
    case parking::channel: co_await own.channel.receive(); break;
    case parking::timer: co_await coronet::sleep_for(std::chrono::hours{1}); break;
    case parking::socket: co_await own.socket.async_read_some(asio::buffer(&byte, 1), asio::use_awaitable); break;
    case parking::wait_group: co_await never.wait(); break;
  }
  resumed_after_stop.fetch_add(1);
}

// Starts, on every worker, a task of each kind of parking that owns the
// objects of the worker next to it; returns once all have parked.
task<void> park_everywhere(coronet::runtime& rt, std::atomic<int>& released)
{
  std::vector<std::future<void>> all;
  for (std::size_t w = 0; w < rt.size(); ++w)
    for (auto how : {parking::channel, parking::timer, parking::socket, parking::wait_group}) {
      auto parked = std::make_shared<std::promise<void>>();
      all.push_back(parked->get_future());
      auto foreign = std::make_shared<worker_objects>(rt.executor((w + 1) % rt.size()));
      auto probe = std::shared_ptr<frame_probe>(new frame_probe{nullptr}, [&released](frame_probe* p) {
        released.fetch_add(1);
        delete p;
      });
      rt.spawn(w, park_holding(std::move(foreign), how, std::move(probe), std::move(parked)));
    }
  for (auto& f : all)
    while (f.wait_for(std::chrono::seconds{0}) != std::future_status::ready)
      co_await coronet::yield();
}

} // namespace

// The shutdown crash of a multi-worker gateway: a task on one worker owned a
// client whose sockets and timers belonged to another, whose io_context was
// destroyed first. Under ASan a use-after-free or a leak fails this test.
TEST_CASE("runtime teardown: tasks owning another worker's socket, timer and channel are destroyed first")
{
  for (std::size_t workers : {2, 4}) {
    CAPTURE(workers);
    std::atomic<int> released{0};
    {
      coronet::runtime rt{workers};
      rt.block_on(park_everywhere(rt, released));
      CHECK(released.load() == 0);
    }
    CHECK(released.load() == static_cast<int>(workers * 4));
  }
  CHECK(resumed_after_stop.load() == 0);
}

TEST_CASE("run_until_signal: main returning with tasks parked on every worker ends them all")
{
  std::atomic<int> released{0};
  {
    coronet::runtime rt{3};
    CHECK(rt.run_until_signal(park_everywhere(rt, released)) == 0);
    // The workers have stopped: nothing a worker holds is in use any more.
    auto s = rt.stats();
    CHECK(s.alive() == 12);
    CHECK(released.load() == 0);
  }
  CHECK(released.load() == 12);
  CHECK(resumed_after_stop.load() == 0);
}

TEST_CASE("runtime::stop from a worker is refused")
{
  coronet::runtime rt{1};
  CHECK_THROWS_AS(rt.block_on([](coronet::runtime& rt) -> task<void> {
    rt.stop();
    co_return;
  }(rt)),
    std::logic_error);
}
