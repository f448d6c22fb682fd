// coronet-load-chat: N clients in one room of a chat server (the line
// protocol over TCP), sending at a total rate for a set time; a share of them
// connect and join but never read. Prints one JSON object: deliveries/s,
// delivery latency percentiles (send to receipt, over the readers), errors.
//
//   coronet-load-chat --target 127.0.0.1:7070 --clients 10000 --rate 20 --seconds 10 --silent 0.1
#include "stats.hpp"

#include <coronet/net/tcp_server.hpp>
#include <coronet/runtime.hpp>
#include <coronet/sync/channel.hpp>
#include <coronet/sync/wait_group.hpp>
#include <coronet/time.hpp>

#include <asio/read_until.hpp>
#include <asio/write.hpp>
#include <CLI/CLI.hpp>

#include <atomic>
#include <charconv>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

using asio::ip::tcp;
using namespace std::chrono_literals;

namespace {

struct shared {
  tcp::endpoint at;
  std::string room;
  std::size_t padding = 0; // bytes added to each message
  load::clock::time_point start, end; // the measured window (by send time)
  std::atomic<std::uint64_t> connect_errors{0};
  std::atomic<std::uint64_t> dropped_readers{0}; // readers the server disconnected or that failed
  std::atomic<std::uint64_t> error_lines{0};     // "error: ..." lines to readers
  std::atomic<std::uint64_t> delivered{0};       // lines received in the window
  std::atomic<std::uint64_t> sent{0};            // messages sent in the window
  std::atomic<std::uint64_t> send_skipped{0};    // the socket was full: not sent
  load::latencies latency;
  coronet::wait_group joined;  // every client connected and (readers) in the room
  coronet::channel<std::monostate> stop; // closed: the run is over
};

struct client {
  std::size_t index;
  bool reader;
  std::unique_ptr<tcp::socket> socket;
  bool alive = false;
};

std::int64_t now_ns()
{
  return std::chrono::duration_cast<std::chrono::nanoseconds>(load::clock::now().time_since_epoch()).count();
}

coronet::task<void> read_lines(client& c, shared& s)
{
  std::string buffer;
  std::string own_join = "* l" + std::to_string(c.index) + " joined " + s.room;
  bool in_room = false;
  load::latencies mine;
  try {
    for (;;) {
      auto n = co_await asio::async_read_until(*c.socket, asio::dynamic_buffer(buffer, 64 * 1024), '\n',
        asio::use_awaitable);
      std::string_view line{buffer.data(), n - 1};
      auto received = load::clock::now();
      if (!in_room && line == own_join) {
        in_room = true;
        s.joined.done();
      } else if (auto mark = line.find(": t"); mark != std::string_view::npos && line.front() == '[') {
        std::int64_t sent_ns = 0;
        auto digits = line.substr(mark + 3);
        std::from_chars(digits.data(), digits.data() + digits.size(), sent_ns);
        load::clock::time_point sent{std::chrono::nanoseconds{sent_ns}};
        if (sent >= s.start && sent < s.end) {
          mine.add(received - sent);
          s.delivered.fetch_add(1, std::memory_order_relaxed);
        }
      } else if (line.starts_with("error:")) {
        s.error_lines.fetch_add(1);
        std::fprintf(stderr, "client %zu: %.*s\n", c.index, static_cast<int>(line.size()), line.data());
      }
      buffer.erase(0, n);
    }
  } catch (const std::system_error& e) {
    if (!s.stop.closed()) {
      s.dropped_readers.fetch_add(1);
      if (!in_room)
        s.joined.done();
    }
  }
  c.alive = false;
  s.latency.merge(mine);
}

coronet::task<void> start_client(client& c, shared& s, coronet::channel<std::monostate> slots, coronet::wait_group& ended)
{
  try {
    c.socket = std::make_unique<tcp::socket>(co_await asio::this_coro::executor);
    co_await c.socket->async_connect(s.at, asio::use_awaitable);
    c.socket->set_option(tcp::no_delay(true));
    c.socket->non_blocking(true);
    auto hello = "/nick l" + std::to_string(c.index) + "\n/join " + s.room + "\n";
    co_await asio::async_write(*c.socket, asio::buffer(hello), asio::use_awaitable);
    c.alive = true;
  } catch (const std::exception& e) {
    if (s.connect_errors.fetch_add(1) < 5)
      std::fprintf(stderr, "client %zu: connect failed: %s\n", c.index, e.what());
  }
  if (!c.alive) {
    s.joined.done();
    co_await slots.receive();
    ended.done();
    co_return;
  }
  co_await slots.receive(); // lets the next client connect
  if (c.reader) {
    co_await read_lines(c, s);
  } else {
    s.joined.done();
    co_await s.stop.receive(); // never reads
  }
  ended.done();
}

// Sends `rate` messages per second in all, from this worker's readers in
// turn, each message a timestamp.
coronet::task<void> pace(std::vector<client*> senders, double rate, shared& s)
{
  const std::string padding(s.padding, '.');
  if (senders.empty() || rate <= 0)
    co_return;
  std::size_t next = 0;
  double owed = 0;
  auto last = load::clock::now();
  std::uint64_t seq = 0;
  while (!s.stop.closed()) {
    co_await coronet::sleep_for(2ms);
    auto now = load::clock::now();
    owed += std::chrono::duration<double>(now - last).count() * rate;
    last = now;
    if (now >= s.end)
      break;
    for (; owed >= 1; owed -= 1) {
      client* c = nullptr;
      for (std::size_t tries = 0; tries < senders.size() && !c; ++tries) {
        auto* candidate = senders[next++ % senders.size()];
        if (candidate->alive)
          c = candidate;
      }
      if (!c)
        co_return;
      auto line = "t" + std::to_string(now_ns()) + " " + std::to_string(seq++) + padding + "\n";
      std::error_code ec;
      auto n = c->socket->write_some(asio::buffer(line), ec);
      if (ec || n != line.size()) {
        s.send_skipped.fetch_add(1); // a full socket (a short write would garble the line: not expected for tiny lines)
        continue;
      }
      if (now >= s.start)
        s.sent.fetch_add(1, std::memory_order_relaxed);
    }
  }
}

} // namespace

int main(int argc, char** argv)
{
  CLI::App app{"coronet-load-chat: load for a chat server's TCP line protocol"};
  std::string target = "127.0.0.1:7070";
  std::size_t clients = 1000, threads = 1, concurrency = 256;
  double rate = 20, seconds = 10, warmup = 2, silent = 0;
  std::string room = "load";
  app.add_option("--target", target, "HOST:PORT of the chat server's line protocol");
  app.add_option("--clients", clients, "clients in the room")->check(CLI::Range(1, 1000000));
  app.add_option("--rate", rate, "messages per second, all senders together")->check(CLI::NonNegativeNumber);
  app.add_option("--seconds", seconds, "how long to measure")->check(CLI::PositiveNumber);
  app.add_option("--warmup", warmup, "seconds of load before measuring")->check(CLI::NonNegativeNumber);
  app.add_option("--silent", silent, "share of clients that never read (0..1)")->check(CLI::Range(0.0, 1.0));
  app.add_option("--room", room, "the room to join");
  std::size_t padding = 0;
  app.add_option("--size", padding, "bytes of padding in each message (beyond the timestamp)")->check(CLI::Range(0, 3000));
  app.add_option("--threads", threads, "worker threads of the load client")->check(CLI::Range(1, 64));
  app.add_option("--connect-concurrency", concurrency, "connections being set up at once")->check(CLI::Range(1, 100000));
  CLI11_PARSE(app, argc, argv);

  shared s;
  try {
    s.at = coronet::net::parse_endpoint(target);
  } catch (const std::invalid_argument& e) {
    std::fprintf(stderr, "coronet-load-chat: --target: %s\n", e.what());
    return 2;
  }
  s.room = room;
  s.padding = padding;
  coronet::runtime rt{threads};

  // Every 1/silent-th client never reads, spread evenly.
  std::vector<client> all(clients);
  std::size_t silent_count = static_cast<std::size_t>(silent * static_cast<double>(clients) + 0.5);
  for (std::size_t i = 0; i < clients; ++i) {
    all[i].index = i;
    all[i].reader = silent_count == 0 || (i * silent_count) / clients == ((i + 1) * silent_count) / clients;
  }

  auto connect_started = load::clock::now();
  coronet::wait_group ended;
  coronet::channel<std::monostate> slots{concurrency};
  s.joined.add(static_cast<std::int64_t>(clients));
  ended.add(static_cast<std::int64_t>(clients));
  rt.block_on([](coronet::runtime& rt, std::vector<client>& all, shared& s, coronet::channel<std::monostate> slots,
                coronet::wait_group& ended) -> coronet::task<void> {
    for (auto& c : all) {
      co_await slots.send({});
      rt.spawn(c.index % rt.size(), start_client(c, s, slots, ended));
    }
    co_await s.joined.wait();
  }(rt, all, s, slots, ended));
  double connect_seconds = std::chrono::duration<double>(load::clock::now() - connect_started).count();

  s.start = load::clock::now() + std::chrono::duration_cast<load::clock::duration>(std::chrono::duration<double>(warmup));
  s.end = s.start + std::chrono::duration_cast<load::clock::duration>(std::chrono::duration<double>(seconds));
  rt.block_on([](coronet::runtime& rt, std::vector<client>& all, double rate, shared& s) -> coronet::task<void> {
    coronet::wait_group paced;
    paced.add(static_cast<std::int64_t>(rt.size()));
    for (std::size_t w = 0; w < rt.size(); ++w) {
      std::vector<client*> mine;
      for (auto& c : all)
        if (c.reader && c.alive && c.index % rt.size() == w)
          mine.push_back(&c);
      rt.spawn(w, [](std::vector<client*> mine, double rate, shared& s, coronet::wait_group& paced) -> coronet::task<void> {
        co_await pace(std::move(mine), rate, s);
        paced.done();
      }(std::move(mine), rate / static_cast<double>(rt.size()), s, paced));
    }
    paced.add(1);
    rt.spawn(0, load::announce_window(s.start, s.end, paced));
    co_await paced.wait();
    co_await coronet::sleep_for(1s); // the last deliveries
  }(rt, all, rate, s));

  std::size_t readers = 0;
  for (auto& c : all)
    readers += c.reader;
  // Closing the sockets ends the readers; each on its own worker.
  s.stop.close();
  for (auto& c : all)
    if (c.socket)
      asio::post(c.socket->get_executor(), [&c] {
        std::error_code ignored;
        c.socket->shutdown(tcp::socket::shutdown_both, ignored);
        c.socket->close(ignored);
      });
  rt.block_on(ended.wait());

  auto sent = s.sent.load();
  auto delivered = s.delivered.load();
  double expected = static_cast<double>(sent) * static_cast<double>(readers - s.dropped_readers.load());
  std::printf("{\"tool\":\"coronet-load-chat\",\"target\":\"%s\",\"clients\":%zu,\"silent\":%zu,\"rate\":%.1f,"
              "\"seconds\":%.1f,\"connect_seconds\":%.2f,\"sent\":%llu,\"delivered\":%llu,\"deliveries_per_second\":%.0f,"
              "\"delivery_ratio\":%.4f,%s,\"connect_errors\":%llu,\"dropped_readers\":%llu,\"error_lines\":%llu,"
              "\"send_skipped\":%llu}\n",
    target.c_str(), clients, clients - readers, rate, seconds, connect_seconds,
    static_cast<unsigned long long>(sent), static_cast<unsigned long long>(delivered),
    static_cast<double>(delivered) / seconds, expected > 0 ? static_cast<double>(delivered) / expected : 0.0,
    s.latency.json_percentiles().c_str(), static_cast<unsigned long long>(s.connect_errors.load()),
    static_cast<unsigned long long>(s.dropped_readers.load()), static_cast<unsigned long long>(s.error_lines.load()),
    static_cast<unsigned long long>(s.send_skipped.load()));
  bool ok = s.connect_errors.load() == 0 && s.dropped_readers.load() == 0 && s.error_lines.load() == 0;
  return ok ? 0 : 1;
}
