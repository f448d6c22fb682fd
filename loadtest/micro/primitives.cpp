// Primitive costs, each the same work as its Go twin in
// loadtest/peers/go/primitives (run both with loadtest/micro/compare.sh).
// Benchmarks run on one worker unless named cross_worker; the loop runs on
// the worker thread, so times are wall-clock (UseRealTime).
#include <coronet/runtime.hpp>
#include <coronet/sync/channel.hpp>
#include <coronet/sync/select.hpp>
#include <coronet/sync/wait_group.hpp>

#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <unistd.h>

using coronet::channel;
using coronet::task;
using coronet::wait_group;

namespace {

task<void> mark_done(wait_group& wg)
{
  wg.done();
  co_return;
}

task<void> spawn_join(benchmark::State& state)
{
  wait_group wg;
  for (auto _ : state) {
    wg.add(1);
    coronet::spawn(mark_done(wg));
  }
  co_await wg.wait();
}

void BM_spawn_join(benchmark::State& state)
{
  coronet::runtime rt{1};
  rt.block_on(spawn_join(state));
}
BENCHMARK(BM_spawn_join)->UseRealTime();

task<void> echo(channel<int> ping, channel<int> pong)
{
  while (auto v = co_await ping.receive())
    co_await pong.send(*v);
}

task<void> pingpong(benchmark::State& state, coronet::runtime& rt, std::size_t peer_worker)
{
  channel<int> ping, pong;
  rt.spawn(peer_worker, echo(ping, pong));
  int i = 0;
  for (auto _ : state) {
    co_await ping.send(i++);
    benchmark::DoNotOptimize(co_await pong.receive());
  }
  ping.close();
}

void BM_channel_pingpong(benchmark::State& state)
{
  coronet::runtime rt{1};
  rt.block_on(pingpong(state, rt, 0));
}
BENCHMARK(BM_channel_pingpong)->UseRealTime();

void BM_channel_pingpong_cross_worker(benchmark::State& state)
{
  coronet::runtime rt{2};
  rt.block_on(pingpong(state, rt, 1));
}
BENCHMARK(BM_channel_pingpong_cross_worker)->UseRealTime();

task<void> produce(channel<int> ch, std::int64_t n)
{
  for (std::int64_t i = 0; i < n; ++i)
    co_await ch.send(static_cast<int>(i));
  ch.close();
}

task<void> buffered(benchmark::State& state)
{
  channel<int> ch{static_cast<std::size_t>(state.range(0))};
  coronet::spawn(produce(ch, state.max_iterations));
  for (auto _ : state)
    benchmark::DoNotOptimize(co_await ch.receive());
}

void BM_channel_buffered(benchmark::State& state)
{
  coronet::runtime rt{1};
  rt.block_on(buffered(state));
}
BENCHMARK(BM_channel_buffered)->Arg(1024)->UseRealTime();

task<void> send_one(channel<int> ch, int v, wait_group& wg)
{
  co_await ch.send(v);
  wg.done();
}

task<void> fanout(benchmark::State& state)
{
  const int n = static_cast<int>(state.range(0));
  channel<int> ch{static_cast<std::size_t>(n)};
  wait_group wg;
  for (auto _ : state) {
    wg.add(n);
    for (int i = 0; i < n; ++i)
      coronet::spawn(send_one(ch, i, wg));
    int sum = 0;
    for (int i = 0; i < n; ++i)
      sum += *co_await ch.receive();
    co_await wg.wait();
    benchmark::DoNotOptimize(sum);
  }
}

void BM_fanout(benchmark::State& state)
{
  coronet::runtime rt{1};
  rt.block_on(fanout(state));
}
BENCHMARK(BM_fanout)->Arg(16)->UseRealTime();

task<void> select2(benchmark::State& state)
{
  channel<int> a{1}, b{1};
  a.try_send(1);
  b.try_send(2);
  for (auto _ : state) {
    auto r = co_await coronet::select(a.on_receive(), b.on_receive());
    // Refill the channel that fired so both stay ready.
    if (r.index() == 0)
      a.try_send(1);
    else
      b.try_send(2);
  }
}

void BM_select(benchmark::State& state)
{
  coronet::runtime rt{1};
  rt.block_on(select2(state));
}
BENCHMARK(BM_select)->Arg(2)->UseRealTime();

// --parked=N: park N tasks on one channel and report resident memory per task.
long resident_bytes()
{
  long pages = 0, resident = 0;
  std::ifstream statm{"/proc/self/statm"};
  statm >> pages >> resident;
  return resident * sysconf(_SC_PAGESIZE);
}

task<void> park(channel<int> ch, wait_group& started)
{
  started.done();
  co_await ch.receive();
}

task<void> park_many(long n)
{
  channel<int> ch;
  wait_group started;
  long before = resident_bytes();
  started.add(n);
  for (long i = 0; i < n; ++i)
    coronet::spawn(park(ch, started));
  co_await started.wait();
  long after = resident_bytes();
  std::printf("parked_tasks=%ld rss_delta_bytes=%ld bytes_per_parked_task=%ld\n", n, after - before,
    (after - before) / n);
  ch.close();
}

} // namespace

int main(int argc, char** argv)
{
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--parked=", 9) == 0) {
      long n = std::strtol(argv[i] + 9, nullptr, 10);
      if (n <= 0) {
        std::fprintf(stderr, "--parked needs a positive count\n");
        return 2;
      }
      coronet::runtime rt{1};
      rt.block_on(park_many(n));
      return 0;
    }
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv))
    return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
