#include <coronet/sync/channel.hpp>

#include <coronet/runtime.hpp>
#include <coronet/time.hpp>
#include <support/run.hpp>

#include <doctest/doctest.h>

#include <memory>
#include <vector>

using namespace std::chrono_literals;
using coronet::channel;
using coronet::task;

namespace {

task<void> send_all(channel<int> ch, int from, int to, bool close_after)
{
  for (int i = from; i < to; ++i)
    co_await ch.send(i);
  if (close_after)
    ch.close();
}

task<void> send_and_flag(channel<int> ch, int value, bool& sent)
{
  co_await ch.send(value);
  sent = true;
}

task<void> receive_into(channel<int> ch, std::optional<int>& out, bool& done)
{
  out = co_await ch.receive();
  done = true;
}

task<void> send_catching(channel<int> ch, int value, std::error_code& error, bool& done)
{
  try {
    co_await ch.send(value);
  } catch (const std::system_error& e) {
    error = e.code();
  }
  done = true;
}

} // namespace

TEST_CASE("channel buffered: values come out in the order they went in")
{
  coronet::runtime rt{1};
  auto body = []() -> task<std::vector<int>> {
    channel<int> ch{8};
    for (int i = 0; i < 8; ++i)
      co_await ch.send(i);
    CHECK(ch.size() == 8);
    CHECK_FALSE(ch.try_send(99));
    std::vector<int> out;
    for (int i = 0; i < 8; ++i)
      out.push_back(*co_await ch.receive());
    co_return out;
  };
  CHECK(rt.block_on(body()) == std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7});
}

TEST_CASE("channel buffered: the buffer grows on demand and keeps the order across its wrap-around")
{
  // The ring starts small and doubles: fill it while its head is mid-ring.
  channel<int> ch{100};
  int next_in = 0, next_out = 0;
  for (int round = 0; round < 5; ++round) {
    for (int i = 0; i < 7; ++i)
      REQUIRE(ch.try_send(next_in++));
    for (int i = 0; i < 5; ++i)
      CHECK(ch.try_receive() == next_out++);
  }
  while (ch.try_send(next_in))
    ++next_in;
  CHECK(ch.size() == 100); // exactly the capacity, no more
  while (auto v = ch.try_receive())
    CHECK(*v == next_out++);
  CHECK(next_out == next_in);
}

TEST_CASE("channel unbuffered: send waits until a receiver takes the value")
{
  coronet::runtime rt{1};
  auto body = []() -> task<void> {
    channel<int> ch;
    bool sent = false;
    coronet::spawn(send_and_flag(ch, 7, sent));
    co_await coronet::test::yield(5);
    CHECK_FALSE(sent); // parked: nobody received yet
    auto v = co_await ch.receive();
    REQUIRE(v);
    CHECK(*v == 7);
    co_await coronet::test::yield(2);
    CHECK(sent);
  };
  rt.block_on(body());
}

TEST_CASE("channel unbuffered: a parked receiver gets the value directly")
{
  coronet::runtime rt{1};
  auto body = []() -> task<void> {
    channel<int> ch;
    std::optional<int> got;
    bool done = false;
    coronet::spawn(receive_into(ch, got, done));
    co_await coronet::test::yield(3);
    CHECK_FALSE(done);
    CHECK(ch.try_send(5)); // the parked receiver makes try_send succeed
    co_await coronet::test::yield(3);
    CHECK(done);
    CHECK(got == 5);
  };
  rt.block_on(body());
}

TEST_CASE("channel closed: buffered values drain, then receive yields nullopt")
{
  coronet::runtime rt{1};
  auto body = []() -> task<void> {
    channel<int> ch{4};
    co_await ch.send(1);
    co_await ch.send(2);
    CHECK(ch.close());
    CHECK_FALSE(ch.close()); // idempotent
    CHECK(*co_await ch.receive() == 1);
    CHECK(*co_await ch.receive() == 2);
    CHECK_FALSE(co_await ch.receive());
    CHECK_FALSE(co_await ch.receive());
  };
  rt.block_on(body());
}

TEST_CASE("channel closed: send throws channel_closed, try_send too")
{
  coronet::runtime rt{1};
  auto body = []() -> task<void> {
    channel<int> ch{4};
    ch.close();
    std::error_code error;
    try {
      co_await ch.send(1);
    } catch (const std::system_error& e) {
      error = e.code();
    }
    CHECK(error == coronet::errc::channel_closed);
    CHECK_THROWS_AS(ch.try_send(1), std::system_error);
  };
  rt.block_on(body());
}

TEST_CASE("channel close wakes parked receivers with nullopt and parked senders with an error")
{
  coronet::runtime rt{1};
  auto body = []() -> task<void> {
    channel<int> in, out;
    std::optional<int> got = 42;
    bool received = false, sent = false;
    std::error_code error;
    coronet::spawn(receive_into(in, got, received));
    coronet::spawn(send_catching(out, 1, error, sent));
    co_await coronet::test::yield(3);
    CHECK_FALSE(received);
    CHECK_FALSE(sent);
    in.close();
    out.close();
    co_await coronet::test::yield(3);
    CHECK(received);
    CHECK_FALSE(got);
    CHECK(sent);
    CHECK(error == coronet::errc::channel_closed);
  };
  rt.block_on(body());
}

TEST_CASE("channel of move-only values")
{
  coronet::runtime rt{1};
  auto body = []() -> task<void> {
    channel<std::unique_ptr<int>> ch{1};
    co_await ch.send(std::make_unique<int>(3));
    auto extra = std::make_unique<int>(4);
    CHECK_FALSE(ch.try_send(extra)); // full: the value stays with the sender
    CHECK(extra);
    auto v = co_await ch.receive();
    REQUIRE(v);
    CHECK(**v == 3);
    CHECK(ch.try_send(extra));
    CHECK_FALSE(extra);
    CHECK(**ch.try_receive() == 4);
    CHECK_FALSE(ch.try_receive());
  };
  rt.block_on(body());
}

TEST_CASE("channel receive cancelled by a timeout leaves no waiter behind")
{
  coronet::runtime rt{1};
  auto body = []() -> task<void> {
    channel<int> ch;
    CHECK_THROWS_AS(co_await coronet::with_timeout(ch.receive(), 5ms), coronet::timeout_error);
    // A stale waiter would accept this value and lose it.
    CHECK_FALSE(ch.try_send(1));
  };
  rt.block_on(body());
}

TEST_CASE("channel send cancelled by a timeout does not deliver")
{
  coronet::runtime rt{1};
  auto body = []() -> task<void> {
    channel<int> ch;
    CHECK_THROWS_AS(co_await coronet::with_timeout(ch.send(9), 5ms), coronet::timeout_error);
    CHECK_FALSE(ch.try_receive());
  };
  rt.block_on(body());
}

TEST_CASE("channel producer and consumer: every value once, in order")
{
  coronet::runtime rt{1};
  for (std::size_t capacity : {0, 1, 7, 1024}) {
    auto run = [](std::size_t capacity) -> task<long> {
      channel<int> ch{capacity};
      coronet::spawn(send_all(ch, 0, 10000, true));
      long sum = 0;
      int expected = 0;
      while (auto v = co_await ch.receive()) {
        if (*v != expected++)
          co_return -1;
        sum += *v;
      }
      co_return sum;
    };
    CAPTURE(capacity);
    CHECK(rt.block_on(run(capacity)) == 10000L * 9999 / 2);
  }
}
