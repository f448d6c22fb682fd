#pragma once
// Redis from coroutines: a pool of connections per worker, each call a task
// that suspends (Go's go-redis, on the runtime's workers). Replies are read
// by hiredis's reader; the bytes go through net::stream (plain or TLS).
//
//   redis::client cache{rt, redis::options::from(cfg)};          // [redis] keys
//   co_await cache.set("user:7", json, std::chrono::seconds(60));
//   std::optional<std::string> v = co_await cache.get("user:7");
//   auto n = co_await cache.command("INCRBY", "hits", 5);        // redis::reply
//   std::vector<redis::command> batch{redis::command{"INCR", "a"}, redis::command{"GET", "a"}};
//   auto replies = co_await cache.pipeline(std::move(batch));   // one round trip
//   auto done = co_await cache.transaction(std::move(batch));   // MULTI ... EXEC
//   std::vector<std::string> names{"orders"};
//   auto sub = co_await cache.subscribe(std::move(names));
//   while (auto m = co_await sub.messages().receive()) use(m->channel, m->payload);
//
// Each call takes a connection of its worker's pool (redis.pool_size; when
// all are busy it waits, until its deadline), writes its commands at once,
// reads their replies and gives the connection back. A call is bounded by
// redis.command_timeout_ms and by the deadline of the task's request (a
// cancelled call drops its connection: its reply would come to the next
// caller). A connection found closed while idle (a restart, the server's
// `timeout`) is replaced, and a call that failed on one before any reply
// came back is made once more on a new connection. Errors are redis::error
// (reply.hpp). Blocking commands (BLPOP, WAIT) hold their connection for
// as long as they block.
#include <coronet/config.hpp>
#include <coronet/detail/feed.hpp>
#include <coronet/redis/reply.hpp>
#include <coronet/sync/channel.hpp>
#include <coronet/task.hpp>
#include <coronet/time.hpp>

#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace coronet {
class runtime;
}

namespace coronet::redis {

// [redis]: read by options::from.
inline constexpr config_key redis_keys[] = {
  {"redis.url", "", "Redis: redis://[user:password@]host[:port][/db], rediss:// for TLS; empty: none"},
  {"redis.pool_size", 4, "connections per worker", 1, 10000},
  {"redis.connect_timeout_ms", 2000, "TCP connect, TLS handshake, AUTH and SELECT", 1},
  {"redis.command_timeout_ms", 2000, "each call's limit (a whole pipeline or transaction); 0: none", 0},
  {"redis.tls_ca", "", "rediss://: CA certificates to verify the server with; empty: the system's"},
  {"redis.tls_cert", "", "rediss://: a client certificate to present"},
  {"redis.tls_key", "", "rediss://: the client certificate's key"},
};

struct options {
  std::string host = "127.0.0.1";
  std::uint16_t port = 6379;
  std::string user;     // AUTH user password (Redis 6 ACLs); empty: AUTH password
  std::string password; // empty: no AUTH
  int db = 0;           // SELECT db when not 0
  bool tls = false;     // rediss://
  std::string tls_ca, tls_cert, tls_key;
  std::size_t pool_size{config_default<std::size_t>(redis_keys, "redis.pool_size")};
  std::chrono::milliseconds connect_timeout{config_default<std::int64_t>(redis_keys, "redis.connect_timeout_ms")};
  std::chrono::milliseconds command_timeout{config_default<std::int64_t>(redis_keys, "redis.command_timeout_ms")};

  // Reads the [redis] keys, the URL from `url_key` (an app may name it its
  // own way); throws config_error when it is empty or not a redis:// or
  // rediss:// URL.
  static options from(const config& cfg, std::string_view url_key = "redis.url");
  // The address part of `url` (host, port, user, password, db, tls) into o.
  static void parse_url(std::string_view url, options& o);
};

// One command and its arguments, each sent as a bulk string: text as its
// bytes, numbers in decimal.
class command {
public:
  template <class... A>
  explicit command(std::string_view name, const A&... args)
  {
    args_.reserve(1 + sizeof...(A));
    args_.emplace_back(name);
    (add(args), ...);
  }
  template <class A>
  command& add(const A& arg)
  {
    if constexpr (std::is_same_v<A, bool>)
      args_.emplace_back(arg ? "1" : "0");
    else if constexpr (std::is_integral_v<A>)
      args_.push_back(std::to_string(arg));
    else if constexpr (std::is_floating_point_v<A>)
      args_.push_back(format_double(static_cast<double>(arg)));
    else
      args_.emplace_back(std::string_view{arg});
    return *this;
  }
  const std::vector<std::string>& args() const noexcept { return args_; }
  std::string_view name() const noexcept { return args_.front(); }

private:
  static std::string format_double(double v);
  std::vector<std::string> args_;
};

// A message on a channel (SUBSCRIBE), or on one matching a pattern
// (PSUBSCRIBE: `pattern` is the pattern it matched).
struct message {
  std::string channel;
  std::string payload;
  std::string pattern;
};

// Messages as they come (client::subscribe). A connection of its own is
// subscribed; when it breaks, another is opened and subscribes again (what
// was published meanwhile is lost: Redis keeps nothing for a subscriber
// that is gone). Destroying it unsubscribes and closes the channel. Use it
// on the worker that made it.
class subscription final {
public:
  explicit subscription(coronet::detail::feed<message> f) : feed_(std::move(f)) {}

  // Closed once the subscription ends. When nobody takes them, messages
  // wait in it (up to its buffer), then in the socket (Redis may then drop
  // the subscriber: client-output-buffer-limit pubsub).
  const channel<message>& messages() const noexcept { return feed_.items(); }

private:
  coronet::detail::feed<message> feed_;
};

class client final {
public:
  client(runtime& rt, options o);
  ~client();
  client(const client&) = delete;
  client& operator=(const client&) = delete;

  // One command; an error reply throws redis::error (errc::server).
  task<reply> run(redis::command c);
  // (By value: a string literal decays to a pointer, which GCC 12 needs
  // when the call is inside a co_await.)
  template <class... A>
  task<reply> command(std::string_view name, A... args)
  {
    return run(redis::command{name, args...}); // built before the call suspends
  }
  // The commands in one round trip; error replies come back as replies.
  task<std::vector<reply>> pipeline(std::vector<redis::command> batch);
  // MULTI, the commands, EXEC in one round trip: EXEC's replies (a command
  // that failed as it ran is an error reply among them). A command Redis
  // refused to queue aborts it all: errc::server.
  task<std::vector<reply>> transaction(std::vector<redis::command> batch);

  task<std::optional<std::string>> get(std::string key);
  // SET, with PX ttl when ttl is not zero.
  task<void> set(std::string key, std::string value, std::chrono::milliseconds ttl = {});
  task<std::int64_t> del(std::string key);
  // The number of subscribers that got it.
  task<std::int64_t> publish(std::string channel, std::string payload);

  // SUBSCRIBE (or PSUBSCRIBE) to every one of `names` before returning.
  task<subscription> subscribe(std::vector<std::string> channels, std::size_t buffer = 1024);
  task<subscription> psubscribe(std::vector<std::string> patterns, std::size_t buffer = 1024);

  struct state;

private:
  task<subscription> start_subscription(std::vector<std::string> names, bool patterns, std::size_t buffer);
  std::shared_ptr<state> state_;
};

} // namespace coronet::redis
