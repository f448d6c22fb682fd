// Multi-worker stress: many producers and consumers on several workers; every
// message is received exactly once, so counts and sums are conserved exactly.
#include <coronet/runtime.hpp>
#include <coronet/sync/channel.hpp>
#include <coronet/sync/select.hpp>
#include <coronet/sync/wait_group.hpp>
#include <coronet/time.hpp>

#include <doctest/doctest.h>

#include <atomic>
#include <cstdint>

using namespace std::chrono_literals;
using coronet::channel;
using coronet::task;

namespace {

struct totals {
  std::atomic<std::int64_t> sent_count{0}, sent_sum{0};
  std::atomic<std::int64_t> received_count{0}, received_sum{0};
};

task<void> produce(channel<std::int64_t> ch, std::int64_t from, std::int64_t n, totals& t,
  coronet::wait_group& wg)
{
  for (std::int64_t i = from; i < from + n; ++i) {
    co_await ch.send(i);
    t.sent_count.fetch_add(1, std::memory_order_relaxed);
    t.sent_sum.fetch_add(i, std::memory_order_relaxed);
  }
  wg.done();
}

task<void> consume(channel<std::int64_t> ch, totals& t, coronet::wait_group& wg)
{
  std::int64_t count = 0, sum = 0;
  while (auto v = co_await ch.receive()) {
    ++count;
    sum += *v;
  }
  t.received_count.fetch_add(count);
  t.received_sum.fetch_add(sum);
  wg.done();
}

// Receives with a short timeout, so many receives are cancelled while values
// are racing towards them: none may be lost or duplicated.
task<void> consume_impatiently(channel<std::int64_t> ch, totals& t, coronet::wait_group& wg)
{
  std::int64_t count = 0, sum = 0;
  for (;;) {
    try {
      auto v = co_await coronet::with_timeout(ch.receive(), 50us);
      if (!v)
        break;
      ++count;
      sum += *v;
    } catch (const coronet::timeout_error&) {
    }
  }
  t.received_count.fetch_add(count);
  t.received_sum.fetch_add(sum);
  wg.done();
}

task<void> run_stress(coronet::runtime& rt, std::size_t capacity, std::int64_t per_producer, int producers,
  int consumers, bool impatient, totals& t)
{
  channel<std::int64_t> ch{capacity};
  coronet::wait_group producing, consuming;
  for (int c = 0; c < consumers; ++c) {
    consuming.add(1);
    rt.spawn(c % rt.size(),
      impatient && c % 2 == 0 ? consume_impatiently(ch, t, consuming) : consume(ch, t, consuming));
  }
  for (int p = 0; p < producers; ++p) {
    producing.add(1);
    rt.spawn(p % rt.size(), produce(ch, p * per_producer, per_producer, t, producing));
  }
  co_await producing.wait();
  ch.close();
  co_await consuming.wait();
}

constexpr std::int64_t total_messages = 1'000'000;

} // namespace

TEST_CASE("stress: 4 workers, 8 producers, 8 consumers, 1M messages conserved")
{
  for (std::size_t capacity : {std::size_t{0}, std::size_t{64}}) {
    CAPTURE(capacity);
    coronet::runtime rt{4};
    totals t;
    std::int64_t per = total_messages / 8;
    rt.block_on(run_stress(rt, capacity, per, 8, 8, false, t));
    CHECK(t.sent_count == total_messages);
    CHECK(t.received_count == total_messages);
    CHECK(t.received_sum == t.sent_sum);
    CHECK(t.sent_sum == total_messages * (total_messages - 1) / 2);
  }
}

TEST_CASE("stress: receives cancelled by timeouts lose and duplicate nothing")
{
  coronet::runtime rt{4};
  totals t;
  rt.block_on(run_stress(rt, 0, 25'000, 4, 8, true, t));
  CHECK(t.sent_count == 100'000);
  CHECK(t.received_count == 100'000);
  CHECK(t.received_sum == t.sent_sum);
}

namespace {

task<void> select_consumer(channel<std::int64_t> a, channel<std::int64_t> b, totals& t, coronet::wait_group& wg)
{
  std::int64_t count = 0, sum = 0;
  bool a_open = true, b_open = true;
  while (a_open || b_open) {
    auto r = co_await coronet::select(a.on_receive(), b.on_receive(), coronet::after(1ms));
    if (r.index() == 0) {
      if (auto v = std::get<0>(r)) {
        ++count;
        sum += *v;
      } else {
        a_open = false;
        a = channel<std::int64_t>{}; // a closed channel would win every round
      }
    } else if (r.index() == 1) {
      if (auto v = std::get<1>(r)) {
        ++count;
        sum += *v;
      } else {
        b_open = false;
        b = channel<std::int64_t>{};
      }
    }
  }
  t.received_count.fetch_add(count);
  t.received_sum.fetch_add(sum);
  wg.done();
}

task<void> run_select_stress(coronet::runtime& rt, totals& t)
{
  channel<std::int64_t> a, b{16};
  coronet::wait_group producing, consuming;
  for (int c = 0; c < 6; ++c) {
    consuming.add(1);
    rt.spawn(c % rt.size(), select_consumer(a, b, t, consuming));
  }
  for (int p = 0; p < 4; ++p) {
    producing.add(1);
    rt.spawn(p % rt.size(), produce(p % 2 ? a : b, p * 50'000, 50'000, t, producing));
  }
  co_await producing.wait();
  a.close();
  b.close();
  co_await consuming.wait();
}

} // namespace

TEST_CASE("stress: selects across workers receive every message exactly once")
{
  coronet::runtime rt{4};
  totals t;
  rt.block_on(run_select_stress(rt, t));
  CHECK(t.sent_count == 200'000);
  CHECK(t.received_count == 200'000);
  CHECK(t.received_sum == t.sent_sum);
}
