// A project outside the tree: a producer and a consumer over a channel.
// Asio comes first, before any standard header, as in many a user's file.
#include <asio/io_context.hpp>

#include <coronet/runtime.hpp>
#include <coronet/sync/channel.hpp>

#include <cstdio>

coronet::task<void> produce(coronet::channel<int> ch)
{
  for (int i = 1; i <= 10; ++i)
    co_await ch.send(i);
  ch.close();
}

coronet::task<int> consume(coronet::channel<int> ch)
{
  coronet::spawn(produce(ch));
  int sum = 0;
  while (auto v = co_await ch.receive())
    sum += *v;
  co_return sum;
}

int main()
{
  coronet::runtime rt{1};
  int sum = rt.block_on(consume(coronet::channel<int>{}));
  std::printf("sum=%d\n", sum);
  return sum == 55 ? 0 : 1;
}
