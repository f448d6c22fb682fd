// A project outside the tree: a producer and a consumer over a channel.
// Asio comes first, before any standard header, as in many a user's file.
#include <asio/io_context.hpp>

#include <coronet/runtime.hpp>
#include <coronet/sync/channel.hpp>

#ifdef CONSUMER_HAS_PG
#include <coronet/pg/database.hpp>
#endif
#ifdef CONSUMER_HAS_REDIS
#include <coronet/redis/client.hpp>
#endif
#ifdef CONSUMER_HAS_GRPC
#include "greeter.coronet.hpp"

// A service from the installed protoc-gen-coronet, mounted on a router.
class greeter final : public hello::GreeterServer {
  coronet::task<hello::Reply> SayHello(coronet::grpc::server_context&, const hello::Request& q) override
  {
    hello::Reply r;
    r.set_text("hello " + q.name());
    co_return r;
  }
};
#endif

#include <cstdio>
#include <string>

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
  if (sum != 55)
    return 1;
#ifdef CONSUMER_HAS_PG
  // Links libpq through coronet::pg: the statement is only built.
  auto s = coronet::pg::sql("select $1::int", 7);
  std::printf("pg: %s\n", s.sql.c_str());
#endif
#ifdef CONSUMER_HAS_GRPC
  greeter g;
  coronet::http::router routes;
  g.mount(routes);
  std::printf("grpc: %s mounted\n", std::string(greeter::service_name).c_str());
#endif
#ifdef CONSUMER_HAS_REDIS
  coronet::redis::options o;
  coronet::redis::options::parse_url("redis://127.0.0.1:6390/2", o);
  if (o.port != 6390 || o.db != 2)
    return 1;
  std::printf("redis: %s:%u\n", o.host.c_str(), o.port);
#endif
  return 0;
}
