#include <coronet/sync/select.hpp>

#include <coronet/runtime.hpp>
#include <coronet/time.hpp>
#include <support/run.hpp>

#include <doctest/doctest.h>

using namespace std::chrono_literals;
using coronet::channel;
using coronet::task;

namespace {

task<void> send_later(channel<int> ch, int value)
{
  co_await coronet::test::yield(3);
  co_await ch.send(value);
}

task<void> receive_later(channel<int> ch, std::optional<int>& out)
{
  co_await coronet::test::yield(3);
  out = co_await ch.receive();
}

} // namespace

TEST_CASE("select returns the ready case and its value")
{
  coronet::runtime rt{1};
  auto body = []() -> task<void> {
    channel<int> a{1}, b{1};
    co_await b.send(5);
    auto r = co_await coronet::select(a.on_receive(), b.on_receive());
    REQUIRE(r.index() == 1);
    CHECK(std::get<1>(r) == 5);
  };
  rt.block_on(body());
}

TEST_CASE("select chooses fairly among ready cases over many rounds")
{
  coronet::runtime rt{1};
  auto body = []() -> task<std::array<int, 2>> {
    channel<int> a{1}, b{1};
    std::array<int, 2> wins{};
    for (int round = 0; round < 10000; ++round) {
      a.try_send(1);
      b.try_send(2);
      auto r = co_await coronet::select(a.on_receive(), b.on_receive());
      ++wins[r.index()];
    }
    co_return wins;
  };
  auto wins = rt.block_on(body());
  CAPTURE(wins[0]);
  CAPTURE(wins[1]);
  // Binomial(10000, 0.5): 4500..5500 is more than 10 standard deviations.
  CHECK(wins[0] > 4500);
  CHECK(wins[1] > 4500);
}

TEST_CASE("select parks until a channel becomes ready, and disarms the other cases")
{
  coronet::runtime rt{1};
  auto body = []() -> task<void> {
    channel<int> a, b;
    coronet::spawn(send_later(b, 11));
    auto r = co_await coronet::select(a.on_receive(), b.on_receive());
    REQUIRE(r.index() == 1);
    CHECK(std::get<1>(r) == 11);
    // The case on `a` is no longer parked: nothing can hand a value to it.
    CHECK_FALSE(a.try_send(1));
  };
  rt.block_on(body());
}

TEST_CASE("select send case completes when a receiver arrives")
{
  coronet::runtime rt{1};
  auto body = []() -> task<void> {
    channel<int> in, out;
    std::optional<int> got;
    coronet::spawn(receive_later(out, got));
    auto r = co_await coronet::select(in.on_receive(), out.on_send(21));
    CHECK(r.index() == 1);
    co_await coronet::test::yield(3);
    CHECK(got == 21);
  };
  rt.block_on(body());
}

TEST_CASE("select after case fires when nothing else is ready")
{
  coronet::runtime rt{1};
  auto body = []() -> task<void> {
    channel<int> a;
    auto start = coronet::clock::now();
    auto r = co_await coronet::select(a.on_receive(), coronet::after(20ms));
    CHECK(r.index() == 1);
    CHECK(coronet::clock::now() - start >= 20ms);
    CHECK_FALSE(a.try_send(1)); // receive case disarmed
  };
  rt.block_on(body());
}

TEST_CASE("select on a closed channel yields nullopt for that case")
{
  coronet::runtime rt{1};
  auto body = []() -> task<void> {
    channel<int> a, done;
    done.close();
    auto r = co_await coronet::select(a.on_receive(), done.on_receive(), coronet::after(1s));
    REQUIRE(r.index() == 1);
    CHECK_FALSE(std::get<1>(r));
  };
  rt.block_on(body());
}

TEST_CASE("select send case on a closed channel throws channel_closed")
{
  coronet::runtime rt{1};
  auto body = []() -> task<void> {
    channel<int> a;
    a.close();
    std::error_code error;
    try {
      co_await coronet::select(a.on_send(1));
    } catch (const std::system_error& e) {
      error = e.code();
    }
    CHECK(error == coronet::errc::channel_closed);
  };
  rt.block_on(body());
}

TEST_CASE("try_select is Go's default: nullopt when nothing is ready")
{
  coronet::runtime rt{1};
  auto body = []() -> task<void> {
    channel<int> a{1}, b{1};
    CHECK_FALSE(coronet::try_select(a.on_receive(), b.on_receive()));
    b.try_send(3);
    auto r = coronet::try_select(a.on_receive(), b.on_receive());
    REQUIRE(r);
    CHECK(r->index() == 1);
    CHECK(std::get<1>(*r) == 3);
    co_return;
  };
  rt.block_on(body());
}

TEST_CASE("select cancelled by a timeout leaves no waiter behind")
{
  coronet::runtime rt{1};
  auto body = []() -> task<void> {
    channel<int> a, b;
    CHECK_THROWS_AS(co_await coronet::with_timeout(coronet::select(a.on_receive(), b.on_send(4)), 5ms),
      coronet::timeout_error);
    CHECK_FALSE(a.try_send(1));
    CHECK_FALSE(b.try_receive());
  };
  rt.block_on(body());
}
