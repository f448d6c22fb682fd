#pragma once
// http::client's insides, shared by the exchange (client.cpp) and the
// replica policies (replicas.cpp): what a URL names, a pooled connection,
// the replicas of a target with their pools and health, the retry budget,
// and the client's per-worker state.
#include <coronet/client/client.hpp>
#include <coronet/metrics.hpp>
#include <coronet/net/stream.hpp>
#include <coronet/sync/channel.hpp>

#include <asio/ip/tcp.hpp>
#include <openssl/ssl.h>

#include <array>
#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <variant>
#include <vector>

namespace coronet::http::detail {

class h2_client_connection;

struct url_parts {
  bool tls = false;
  std::string host;
  unsigned short port = 80;
  std::string target;    // "/path?query"
  std::string authority; // "host:port" as in the URL, the Host header
  std::string key;       // "https://host:port", the origin
};

// Throws client_error(bad_url) naming what is wrong.
url_parts parse_url(std::string_view url);

bool idempotent(std::string_view method) noexcept;

// Why an attempt failed, as far as a retry is concerned: at `connect`
// nothing reached the replica (any call may go elsewhere); `unprocessed`
// the server said it did not process the request (HTTP/2 REFUSED_STREAM or
// above a GOAWAY's last stream: any call may go again); `stale` a pooled
// HTTP/1.1 connection the server had closed got the request and gave no
// byte back (an idempotent call goes again on a new connection);
// `before_response` the request may have arrived but no byte of an answer
// came back (an idempotent call may be sent again); `response` anything later.
class attempt_error : public client_error {
public:
  enum class stage { connect, unprocessed, stale, before_response, response };
  attempt_error(client_errc kind, const std::string& message, stage s) : client_error(kind, message), where(s) {}
  stage where;
};

struct connection {
  connection(const asio::any_io_executor& ex, std::shared_ptr<asio::ssl::context> tls)
    : stream(ex, std::move(tls)), buffer(new char[buffer_size])
  {
  }
  static constexpr std::size_t buffer_size = 8 * 1024;
  net::stream stream;
  std::unique_ptr<char[]> buffer; // responses are read here; reused while the connection is
  clock::time_point idle_since;
};

// The connections to one address.
struct host_pool {
  host_pool(asio::ip::tcp::endpoint to, std::size_t max_connections);
  asio::ip::tcp::endpoint endpoint;
  std::string address;                           // "10.0.0.5:8082", "[::1]:8082": in messages and metrics
  std::vector<std::unique_ptr<connection>> idle; // most recently used last
  channel<std::monostate> slots;                 // a token per connection in use
  std::shared_ptr<SSL_SESSION> session;          // TLS: resumed by the next connection
  // HTTP/2: the connections calls multiplex over, whether the server speaks
  // it (learnt from the first TLS handshake), and the connection being
  // opened, which other callers wait for instead of opening their own.
  std::vector<std::shared_ptr<h2_client_connection>> h2;
  enum class speaks { unknown, http1, http2 } protocol = speaks::unknown;
  std::optional<channel<std::monostate>> h2_opening;
  std::uint32_t h2_stream_limit = 0; // the server's last SETTINGS_MAX_CONCURRENT_STREAMS; 0: not known yet
};

// One address of a target, with its connections, its load and its health.
// Shared: a call in flight keeps it while a DNS refresh drops it.
struct replica {
  replica(std::size_t origin, asio::ip::tcp::endpoint to, std::size_t max_connections);
  std::size_t origin;   // which of the set's origins it came from
  host_pool pool;
  std::size_t outstanding = 0; // attempts in flight
  unsigned failures = 0;       // in a row
  unsigned ejections = 0;      // in a row: each lasts twice the one before
  clock::time_point ejected_until{}; // {}: not ejected
  bool probation = false;      // back from an ejection: one call at a time until one succeeds
  bool probing = false;        // that call is out
};

// Finagle's retry budget: each call deposits `percent`/100 of a retry, a
// retry or a hedge withdraws one, deposits expire after ten seconds, and a
// reserve of `min_per_second` x 10 s lets a quiet client retry at all.
class retry_budget {
public:
  retry_budget(unsigned percent, double min_per_second) : percent_(percent), reserve_(min_per_second * window) {}
  void deposit(clock::time_point now) noexcept;
  bool withdraw(clock::time_point now) noexcept;

private:
  static constexpr int window = 10; // seconds
  void advance(clock::time_point now) noexcept;
  unsigned percent_;
  double reserve_;
  std::array<std::uint32_t, window> calls_{}, retries_{};
  std::int64_t second_ = 0; // the current bucket's second
};

// What a client.get(url) or an http::upstream calls: its origins (one URL
// each), the replicas they resolve to, and the budget their retries share.
// One per target per worker.
struct replica_set {
  struct origin_entry {
    url_parts u;                      // target "/"
    bool literal = false;             // an IP address: never resolved again
    clock::time_point resolved_at{};  // {}: never
    bool resolving = false;
  };
  replica_set(std::string label, std::vector<url_parts> origins, retry_budget budget, std::size_t worker);

  // Answer times of the last attempts that succeeded, for hedging at the
  // target's p95 (recomputed every 32 answers).
  void observe(clock::duration took) noexcept;
  clock::duration p95() const noexcept { return p95_; }

  std::string label; // metrics: the call's name, or the first origin
  std::vector<origin_entry> origins;
  std::vector<std::shared_ptr<replica>> replicas;
  retry_budget budget;
  std::size_t worker;      // whose set it is
  std::size_t ejected = 0; // replicas ejected now
  bool sweeping = false;    // a task closes idle connections as they expire

private:
  std::array<std::uint32_t, 256> took_us_{};
  std::size_t observed_ = 0;
  clock::duration p95_{0}; // 0: not known yet
};

} // namespace coronet::http::detail

namespace coronet::http {

struct client::state {
  state(runtime& r, client_options o);
  runtime& rt;
  client_options options;
  // Per worker: only that worker's thread touches its map.
  struct key_hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view k) const noexcept { return std::hash<std::string_view>{}(k); }
  };
  std::vector<std::unordered_map<std::string, std::shared_ptr<detail::replica_set>, key_hash, std::equal_to<>>> sets;
  std::atomic<std::size_t> connects{0}, reuses{0}, retries{0}, resumed{0}, http2{0};
  std::vector<std::atomic<std::size_t>> idle_counts = std::vector<std::atomic<std::size_t>>(rt.size());

  clock::time_point now() const { return options.now ? options.now() : clock::now(); }
  double random() const; // in [0, 1)
  http2_mode mode_for(const detail::url_parts& u) const;
  // The worker's replica set named `key` (nullptr before its first call),
  // and the one made for that call.
  std::shared_ptr<detail::replica_set> find_set(std::size_t worker, std::string_view key) const;
  std::shared_ptr<detail::replica_set> add_set(std::size_t worker, std::string key,
    std::vector<detail::url_parts> origins, const std::string& label);
};

} // namespace coronet::http
