// coronet-load-echo: N connections each sending a message and waiting for
// it to come back, for a set time. Prints one JSON object: messages/s,
// latency percentiles, errors, and whether every byte came back intact.
//
//   coronet-load-echo --target 127.0.0.1:7000 --connections 64 --size 64 --seconds 10
#include "stats.hpp"

#include <coronet/net/tcp_server.hpp>
#include <coronet/runtime.hpp>
#include <coronet/sync/wait_group.hpp>

#include <asio/connect.hpp>
#include <asio/read.hpp>
#include <asio/write.hpp>
#include <CLI/CLI.hpp>

#include <atomic>
#include <cstdio>
#include <string>

using asio::ip::tcp;

namespace {

struct totals {
  std::atomic<std::uint64_t> messages{0};
  std::atomic<std::uint64_t> errors{0};
  std::atomic<std::uint64_t> mismatches{0};
  load::latencies latency;
};

coronet::task<void> connection(tcp::endpoint at, std::size_t size, load::clock::time_point start,
  load::clock::time_point end, totals& t, coronet::wait_group& wg)
{
  load::latencies mine;
  std::uint64_t count = 0;
  try {
    tcp::socket s{co_await asio::this_coro::executor};
    co_await s.async_connect(at, asio::use_awaitable);
    s.set_option(tcp::no_delay(true));
    std::string out(size, '\0'), in(size, '\0');
    for (std::size_t i = 0; i < size; ++i)
      out[i] = static_cast<char>('a' + i % 26);
    for (std::uint64_t n = 0;; ++n) {
      auto sent = load::clock::now();
      if (sent >= end)
        break;
      out[0] = static_cast<char>(n); // every message differs
      co_await asio::async_write(s, asio::buffer(out), asio::use_awaitable);
      co_await asio::async_read(s, asio::buffer(in), asio::use_awaitable);
      auto back = load::clock::now();
      if (in != out)
        t.mismatches.fetch_add(1);
      if (sent >= start) { // after the warm-up
        mine.add(back - sent);
        ++count;
      }
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "connection failed: %s\n", e.what());
    t.errors.fetch_add(1);
  }
  t.messages.fetch_add(count);
  t.latency.merge(mine);
  wg.done();
}

coronet::task<void> run(coronet::runtime& rt, tcp::endpoint at, int connections, std::size_t size,
  double warmup, double seconds, totals& t)
{
  auto start = load::clock::now() + std::chrono::duration_cast<load::clock::duration>(std::chrono::duration<double>(warmup));
  auto end = start + std::chrono::duration_cast<load::clock::duration>(std::chrono::duration<double>(seconds));
  coronet::wait_group wg;
  wg.add(connections + 1);
  for (int i = 0; i < connections; ++i)
    rt.spawn(connection(at, size, start, end, t, wg));
  rt.spawn(load::announce_window(start, end, wg));
  co_await wg.wait();
}

} // namespace

int main(int argc, char** argv)
{
  CLI::App app{"coronet-load-echo: load for an echo server"};
  std::string target = "127.0.0.1:7000";
  int connections = 64;
  std::size_t size = 64;
  double seconds = 10, warmup = 1;
  std::size_t threads = 1;
  app.add_option("--target", target, "HOST:PORT of the echo server");
  app.add_option("--connections", connections, "connections, each with one message in flight")->check(CLI::Range(1, 100000));
  app.add_option("--size", size, "bytes per message")->check(CLI::Range(1, 1 << 20));
  app.add_option("--seconds", seconds, "how long to measure")->check(CLI::PositiveNumber);
  app.add_option("--warmup", warmup, "seconds of load before measuring")->check(CLI::NonNegativeNumber);
  app.add_option("--threads", threads, "worker threads of the load client")->check(CLI::Range(1, 64));
  CLI11_PARSE(app, argc, argv);

  tcp::endpoint at;
  try {
    at = coronet::net::parse_endpoint(target);
  } catch (const std::invalid_argument& e) {
    std::fprintf(stderr, "coronet-load-echo: --target: %s\n", e.what());
    return 2;
  }
  coronet::runtime rt{threads};
  totals t;
  rt.block_on(run(rt, at, connections, size, warmup, seconds, t));
  std::printf("{\"tool\":\"coronet-load-echo\",\"target\":\"%s\",\"connections\":%d,\"size\":%zu,\"seconds\":%.1f,"
              "\"messages\":%llu,\"messages_per_second\":%.0f,%s,\"errors\":%llu,\"mismatches\":%llu}\n",
    target.c_str(), connections, size, seconds, static_cast<unsigned long long>(t.messages.load()),
    static_cast<double>(t.messages.load()) / seconds, t.latency.json_percentiles().c_str(),
    static_cast<unsigned long long>(t.errors.load()), static_cast<unsigned long long>(t.mismatches.load()));
  return t.errors.load() == 0 && t.mismatches.load() == 0 ? 0 : 1;
}
