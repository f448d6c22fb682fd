// http::client over HTTP/2 against coronet's own HTTP/2 server, both in this
// process (each on its own runtime): multiplexing, a second connection past
// the server's stream limit, a timeout or a cancellation resetting one
// stream (and cancelling its handler) while its siblings finish, h2 by ALPN
// with a fallback to HTTP/1.1, and handlers that cannot tell the protocols
// apart.
#include <coronet/app/app.hpp>
#include <coronet/config.hpp>
#include <coronet/error.hpp>
#include <coronet/client/client.hpp>
#include <coronet/http/error.hpp>
#include <coronet/server/server.hpp>
#include <coronet/runtime.hpp>
#include <coronet/sync/wait_group.hpp>
#include <coronet/time.hpp>

#include "support/pki.hpp"
#include "support/process.hpp"
#include "support/raw_http.hpp"

#include <asio/ip/tcp.hpp>
#include <asio/write.hpp>
#include <asio/ssl/context.hpp>

#include <doctest/doctest.h>

#include <stdlib.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace http = coronet::http;
using coronet::task;
using namespace std::chrono_literals;

namespace {

unsigned short free_port()
{
  asio::io_context io;
  asio::ip::tcp::acceptor a{io, {asio::ip::address_v4::loopback(), 0}};
  return a.local_endpoint().port();
}

// Until something accepts connections on `port` (5 s at most).
void wait_listening(unsigned short port)
{
  for (int i = 0; i < 500; ++i) {
    asio::io_context io;
    asio::ip::tcp::socket probe{io};
    std::error_code ec;
    probe.connect({asio::ip::address_v4::loopback(), port}, ec);
    if (!ec)
      return;
    std::this_thread::sleep_for(10ms);
  }
}

// What the server's handlers saw.
struct seen {
  std::atomic<int> cancelled{0};
  std::atomic<int> finished{0};
  std::atomic<int> http2{0};
};

struct tenant {
  std::string name;
};

http::router routes(std::shared_ptr<seen> s)
{
  http::router r;
  r.get("/sleep/{ms}", [s](http::request& req) -> task<http::response> {
    if (req.version_major == 2)
      ++s->http2;
    auto ms = http::positive_integer(req.param("ms"), "ms");
    try {
      co_await coronet::sleep_for(std::chrono::milliseconds{ms});
    } catch (const std::system_error&) {
      ++s->cancelled; // the client reset the stream
      throw;
    }
    ++s->finished;
    co_return http::response::text(http::status::ok, "slept " + std::to_string(ms));
  });
  r.post("/echo", [](http::request& req) -> task<http::response> {
    auto resp = http::response::text(http::status::ok, req.body);
    resp.headers.add("X-Method", req.method);
    resp.headers.add("X-Host", std::string(req.header("Host").value_or("")));
    co_return resp;
  });
  r.get("/budget", [s](http::request& req) -> task<http::response> {
    ++s->finished;
    auto left = req.deadline == coronet::clock::time_point::max()
      ? std::string("none")
      : std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(req.deadline - coronet::clock::now()).count());
    co_return http::response::text(http::status::ok,
      left + " " + std::string(req.header("X-Request-Timeout-Ms").value_or("-")));
  });
  // The request's context: who sent it, and a value a middleware set.
  r.get("/whoami", [](http::request& req) -> task<http::response> {
    const tenant* t = req.values.get<tenant>();
    co_return http::response::text(http::status::ok,
      req.peer + " " + req.client_ip + " " + (t ? t->name : std::string("-")));
  });
  r.use([](http::request& req, http::next next) -> task<http::response> {
    if (auto name = req.header("X-Tenant"))
      req.values.set(tenant{std::string(*name)});
    co_return co_await next(req);
  });
  r.get("/fail", [](http::request&) -> task<http::response> {
    throw http::error{http::status::conflict, "no such luck"};
    co_return http::response{};
  });
  // Trailers: set with the response, or added by a streamed body's producer at its end.
  r.get("/trailers/buffered", [](http::request&) -> task<http::response> {
    auto resp = http::response::text(http::status::ok, "body");
    resp.trailers.add("X-Checksum", "abc");
    resp.trailers.add("Content-Type", "text/html"); // describes the body: never a trailer
    co_return resp;
  });
  r.get("/trailers/streamed", [](http::request&) -> task<http::response> {
    co_return http::response::streamed(http::status::ok, "text/plain", [](http::body_writer& out) -> task<void> {
      co_await out.write("one ");
      co_await out.write("two");
      out.trailers().add("Grpc-Status", "0");
      out.trailers().add("Grpc-Message", "all%20good");
    });
  });
  // A streamed body echoed piece by piece as it arrives (a gRPC-typed
  // request's body is read as it comes), then a trailer.
  r.post("/pieces", [s](http::request& req) -> task<http::response> {
    auto* in = req.body_stream;
    if (!in)
      throw http::error{http::status::bad_request, "not a streamed body"};
    co_return http::response::streamed(http::status::ok, "application/grpc",
      [in, s](http::body_writer& out) -> task<void> {
        std::string piece;
        try {
          while (co_await in->read(piece)) {
            co_await out.write(piece);
            piece.clear();
          }
        } catch (const std::system_error&) {
          ++s->cancelled; // the client reset the stream
          throw;
        }
        out.trailers().add("x-end", "done");
      });
  });
  return r;
}

// An HTTP server on its own runtime and port, for as long as it lives.
struct server {
  explicit server(http::server_options o = {}) : state(std::make_shared<seen>())
  {
    port = free_port();
    o.listen = "127.0.0.1:" + std::to_string(port);
    rt.spawn([](coronet::runtime& rt, http::server_options o, std::shared_ptr<seen> state,
               std::promise<void>& ended) -> task<void> {
      try {
        co_await http::serve(rt, o, routes(state));
      } catch (...) {
      }
      ended.set_value();
    }(rt, o, state, ended));
    wait_listening(port);
  }
  // Stops the server and waits for its drain: nothing of it outlives the test.
  ~server()
  {
    rt.request_stop();
    ended.get_future().wait();
  }
  std::string url(const std::string& path, const char* scheme = "http", const char* host = "127.0.0.1") const
  {
    return std::string(scheme) + "://" + host + ":" + std::to_string(port) + path;
  }
  coronet::runtime rt{1};
  std::shared_ptr<seen> state;
  std::promise<void> ended;
  unsigned short port = 0;
};

http::client_options h2c()
{
  http::client_options o;
  o.http2 = http::http2_mode::prior_knowledge;
  return o;
}

task<void> get_into(http::client& c, std::string url, std::string& body, coronet::wait_group& wg)
{
  try {
    auto r = co_await c.get(std::move(url));
    body = std::to_string(r.status) + " " + r.body;
  } catch (const std::exception& e) {
    body = e.what();
  }
  wg.done();
}

// One call to `url` per element of `bodies`, each filling its own; `wg` is
// done once all have answered.
void spawn_gets(http::client& c, const std::string& url, std::vector<std::string>& bodies, coronet::wait_group& wg)
{
  wg.add(static_cast<int>(bodies.size()));
  for (auto& b : bodies)
    coronet::spawn(get_into(c, url, b, wg));
}

http::client::pool_stats stats_of(coronet::runtime& rt, http::client& c)
{
  return rt.block_on([](http::client& c) -> task<http::client::pool_stats> { co_return c.stats(); }(c));
}

} // namespace

TEST_CASE("http2 client: concurrent calls to one host multiplex over one connection")
{
  server s;
  coronet::runtime rt{1};
  http::client client{rt, h2c()};
  std::vector<std::string> bodies(20);
  rt.block_on([&]() -> task<void> {
    coronet::wait_group wg;
    spawn_gets(client, s.url("/sleep/100"), bodies, wg);
    co_await wg.wait();
  }());
  for (auto& b : bodies)
    CHECK(b == "200 slept 100");
  auto st = stats_of(rt, client);
  CHECK(st.connects == 1);
  CHECK(st.http2 == 20);
  CHECK(s.state->http2 == 20);
}

TEST_CASE("http2 client: past the server's SETTINGS_MAX_CONCURRENT_STREAMS a second connection opens")
{
  http::server_options o;
  o.http2.max_concurrent_streams = 2;
  server s{o};
  coronet::runtime rt{1};
  http::client client{rt, h2c()};
  std::vector<std::string> bodies(5);
  rt.block_on([&]() -> task<void> {
    auto first = co_await client.get(s.url("/sleep/1")); // learns the server's settings
    CHECK(first.status == 200);
    coronet::wait_group wg;
    // Each handler holds its stream for a second, so all five calls are in
    // flight together even on a loaded machine (with 200 ms, a busy CI box
    // sometimes started the fifth after the first two had ended).
    spawn_gets(client, s.url("/sleep/1000"), bodies, wg);
    co_await wg.wait();
  }());
  for (auto& b : bodies)
    CHECK(b == "200 slept 1000");
  CHECK(stats_of(rt, client).connects == 3); // 2 + 2 + 1 streams
}

TEST_CASE("http2 client: a timeout resets its stream and cancels its handler, and its siblings and the connection go on")
{
  server s;
  coronet::runtime rt{1};
  http::client client{rt, h2c()};
  std::vector<std::string> siblings(3);
  std::string timed_out;
  rt.block_on([&]() -> task<void> {
    coronet::wait_group wg;
    spawn_gets(client, s.url("/sleep/400"), siblings, wg);
    http::request_options quick;
    quick.timeout = 100ms;
    try {
      co_await client.get(s.url("/sleep/5000"), std::move(quick));
    } catch (const http::client_error& e) {
      timed_out = to_string(e.kind());
    }
    co_await wg.wait();
    // The same connection serves the next call.
    auto r = co_await client.get(s.url("/sleep/1"));
    CHECK(r.status == 200);
  }());
  CHECK(timed_out == "timeout");
  for (auto& b : siblings)
    CHECK(b == "200 slept 400");
  CHECK(s.state->cancelled == 1);
  CHECK(s.state->finished == 4);
  CHECK(stats_of(rt, client).connects == 1);
}

TEST_CASE("http2 client: cancelling the calling task (with_timeout) resets the stream")
{
  server s;
  coronet::runtime rt{1};
  http::client client{rt, h2c()};
  bool gave_up = false;
  rt.block_on([&]() -> task<void> {
    try {
      co_await coronet::with_timeout(client.get(s.url("/sleep/5000")), 100ms);
    } catch (const coronet::timeout_error&) {
      gave_up = true;
    }
    auto r = co_await client.get(s.url("/sleep/1"));
    CHECK(r.status == 200);
  }());
  CHECK(gave_up);
  for (int i = 0; i < 200 && s.state->cancelled == 0; ++i)
    std::this_thread::sleep_for(5ms); // the reset crosses the loopback
  CHECK(s.state->cancelled == 1);
  CHECK(stats_of(rt, client).connects == 1);
}

namespace {

http::request_options streamed_body()
{
  http::request_options o;
  o.headers.add("content-type", "application/grpc"); // the server reads such a body as it arrives
  return o;
}

// What the stream brings back until it holds `n` bytes.
task<std::string> read_at_least(http::client_stream& st, std::size_t n)
{
  std::string got;
  while (got.size() < n) {
    auto piece = co_await st.read();
    if (!piece)
      break;
    got += *piece;
  }
  co_return got;
}

} // namespace

TEST_CASE("http2 client: a streamed call writes and reads its body piece by piece, both at once")
{
  server s;
  coronet::runtime rt{1};
  http::client client{rt, h2c()};
  std::vector<std::string> echoes;
  std::optional<std::string> after_end;
  std::string trailer;
  rt.block_on([&]() -> task<void> {
    auto st = co_await client.stream("POST", s.url("/pieces"), streamed_body());
    for (std::size_t size : {3, 7, 100000}) {
      // Each piece comes back before the next is sent: the body is not buffered whole.
      auto sent = st.write(std::string(size, 'a' + static_cast<char>(echoes.size())));
      co_await std::move(sent);
      auto echo = co_await read_at_least(st, size);
      echoes.push_back(std::move(echo));
    }
    st.close_write();
    after_end = co_await st.read();
    trailer = std::string(st.trailers().get("x-end").value_or(""));
    CHECK(st.response().status == 200);
    CHECK(st.ended());
  }());
  REQUIRE(echoes.size() == 3);
  CHECK(echoes[0] == "aaa");
  CHECK(echoes[1] == std::string(7, 'b'));
  CHECK(echoes[2] == std::string(100000, 'c'));
  CHECK(!after_end);
  CHECK(trailer == "done");
}

TEST_CASE("http2 client: a streamed call's cancel or deadline resets its stream, and the server's handler sees it")
{
  server s;
  coronet::runtime rt{1};
  http::client client{rt, h2c()};
  std::string timed_out;
  bool aborted = false;
  rt.block_on([&]() -> task<void> {
    auto st = co_await client.stream("POST", s.url("/pieces"), streamed_body());
    auto sent = st.write("ping");
    co_await std::move(sent);
    auto echo = co_await read_at_least(st, 4);
    CHECK(echo == "ping");
    st.cancel();
    try {
      co_await st.read();
    } catch (const std::system_error& e) {
      aborted = e.code() == asio::error::operation_aborted;
    }
    auto o = streamed_body();
    o.timeout = 100ms;
    auto late = co_await client.stream("POST", s.url("/pieces"), std::move(o));
    try {
      co_await late.read(); // the server waits for a body that never comes
    } catch (const http::client_error& e) {
      timed_out = to_string(e.kind());
    }
    auto r = co_await client.get(s.url("/sleep/1")); // the connection goes on
    CHECK(r.status == 200);
  }());
  CHECK(aborted);
  CHECK(timed_out == "timeout");
  for (int i = 0; i < 200 && s.state->cancelled < 2; ++i)
    std::this_thread::sleep_for(5ms); // the resets cross the loopback
  CHECK(s.state->cancelled == 2);
  CHECK(stats_of(rt, client).connects == 1);
}

TEST_CASE("http2 client: a streamed call to a target not called over HTTP/2 is an http2_required error")
{
  server s;
  coronet::runtime rt{1};
  http::client client{rt}; // http:// without prior knowledge: HTTP/1.1
  std::string kind;
  rt.block_on([&]() -> task<void> {
    try {
      co_await client.stream("POST", s.url("/pieces"), streamed_body());
    } catch (const http::client_error& e) {
      kind = to_string(e.kind());
    }
  }());
  CHECK(kind == "http2_required");
}

TEST_CASE("http2: handlers see the same request, errors map the same, bodies go both ways")
{
  server s;
  coronet::runtime rt{1};
  http::client client{rt, h2c()};
  rt.block_on([&]() -> task<void> {
    std::string big(200000, 'b');
    http::request_options o;
    o.headers.add("X-Trace", "t-1");
    auto r = co_await client.post(s.url("/echo"), big, std::move(o));
    CHECK(r.status == 200);
    CHECK(r.body == big);
    CHECK(r.header("x-method") == "POST");
    CHECK(r.header("X-Host") == "127.0.0.1:" + std::to_string(s.port));
    auto fail = co_await client.get(s.url("/fail"));
    CHECK(fail.status == 409);
    CHECK(fail.body == "no such luck\n");
    auto missing = co_await client.get(s.url("/nowhere"));
    CHECK(missing.status == 404);
  }());
  CHECK(stats_of(rt, client).http2 == 3);
}

TEST_CASE("server: trailers follow the body, on HTTP/2 and after a chunked HTTP/1.1 body")
{
  server s;
  coronet::runtime rt{1};
  http::client client{rt, h2c()};
  rt.block_on([&]() -> task<void> {
    auto buffered = co_await client.get(s.url("/trailers/buffered"));
    CHECK(buffered.status == 200);
    CHECK(buffered.body == "body");
    CHECK(buffered.header("x-checksum") == "abc"); // the client adds trailers to the headers
    CHECK(std::count_if(buffered.headers.begin(), buffered.headers.end(),
            [](const auto& f) { return f.first == "content-type"; }) == 1);
    auto streamed = co_await client.get(s.url("/trailers/streamed"));
    CHECK(streamed.body == "one two");
    CHECK(streamed.header("grpc-status") == "0");
    CHECK(streamed.header("grpc-message") == "all%20good");
  }());
  // HTTP/1.1: in the last chunk, as the producer spelled them.
  auto wire = coronet::test::get(s.port, "/trailers/streamed");
  CHECK(wire.status == 200);
  CHECK(wire.has("Transfer-Encoding: chunked\r\n"));
  CHECK(wire.body.ends_with("0\r\nGrpc-Status: 0\r\nGrpc-Message: all%20good\r\n\r\n"));
}

TEST_CASE("http2 client: h2 by ALPN to an https:// server that offers it, HTTP/1.1 to one that does not")
{
  auto tls_options = [](bool h2) {
    coronet::net::tls_server_options t;
    t.cert_file = coronet::test::pki("server.pem");
    t.key_file = coronet::test::pki("server.key");
    if (h2)
      t.alpn = {"h2", "http/1.1"};
    http::server_options o;
    o.tls = std::make_shared<coronet::net::tls_server>(t);
    return o;
  };
  http::client_options c;
  c.tls.ca_file = coronet::test::pki("ca.pem");
  for (bool h2 : {true, false}) {
    CAPTURE(h2);
    server s{tls_options(h2)};
    coronet::runtime rt{1};
    http::client client{rt, c};
    rt.block_on([&]() -> task<void> {
      for (int i = 0; i < 3; ++i) {
        auto r = co_await client.get(s.url("/sleep/1", "https", "localhost"));
        CHECK(r.status == 200);
      }
    }());
    auto st = stats_of(rt, client);
    CHECK(st.connects == 1);
    CHECK(st.http2 == (h2 ? 3u : 0u));
    CHECK(s.state->http2 == (h2 ? 3 : 0));
  }
}

TEST_CASE("http2 client: http2 = off and per-target settings keep HTTP/1.1")
{
  server s;
  coronet::runtime rt{1};
  auto o = h2c();
  o.http2_targets["http://127.0.0.1:" + std::to_string(s.port)] = http::http2_mode::off;
  http::client client{rt, o};
  rt.block_on([&]() -> task<void> {
    auto r = co_await client.get(s.url("/sleep/1"));
    CHECK(r.status == 200);
  }());
  CHECK(stats_of(rt, client).http2 == 0);
  CHECK(s.state->http2 == 0);
}

TEST_CASE("http2 client: prior knowledge to a server that speaks only HTTP/1.1 is a clear error")
{
  http::server_options o;
  o.http2.enabled = false;
  server s{o};
  coronet::runtime rt{1};
  http::client client{rt, h2c()};
  std::string what;
  auto kind = rt.block_on([&]() -> task<http::client_errc> {
    try {
      co_await client.get(s.url("/sleep/1"));
    } catch (const http::client_error& e) {
      what = e.what();
      co_return e.kind();
    }
    co_return http::client_errc::bad_url;
  }());
  CHECK(kind == http::client_errc::malformed_response);
  CHECK(what.find("not HTTP/2") != std::string::npos);
}

namespace {

// nginx (Debian's nginx-light) serving /plaintext over h2c on one port and h2
// over TLS on another, in a scratch folder, for as long as it lives.
struct nginx_h2 {
  nginx_h2() : dir(make_dir()), h2c(free_port()), h2(free_port()), proc(argv())
  {
    wait_listening(h2c);
    wait_listening(h2);
  }
  ~nginx_h2() { std::filesystem::remove_all(dir); }

  static std::string make_dir()
  {
    char path[] = "/tmp/coronet-nginx-XXXXXX";
    return ::mkdtemp(path);
  }
  std::vector<std::string> argv() const
  {
    std::ofstream conf{dir + "/nginx.conf"};
    auto location = "location = /plaintext { default_type text/plain; return 200 \"Hello from nginx\"; }";
    conf << "daemon off; master_process off; pid nginx.pid; error_log stderr warn;\n"
         << "events { worker_connections 1024; }\n"
         << "http { access_log off;\n"
         << "  server { listen 127.0.0.1:" << h2c << " http2; " << location << " }\n"
         << "  server { listen 127.0.0.1:" << h2 << " ssl http2; ssl_certificate "
         << coronet::test::pki("server.pem") << "; ssl_certificate_key " << coronet::test::pki("server.key")
         << "; " << location << " }\n}\n";
    return {"/usr/sbin/nginx", "-p", dir, "-c", dir + "/nginx.conf", "-e", "stderr"};
  }
  std::string dir;
  unsigned short h2c, h2;
  coronet::test::process proc;
};

} // namespace

TEST_CASE("http2 client: against nginx, h2c with prior knowledge and h2 by ALPN, multiplexed")
{
  REQUIRE_MESSAGE(std::filesystem::exists("/usr/sbin/nginx"), "nginx is missing: scripts/setup.sh installs it");
  nginx_h2 nginx;
  coronet::runtime rt{1};
  auto o = h2c();
  o.tls.ca_file = coronet::test::pki("ca.pem");
  http::client client{rt, o};
  std::vector<std::string> bodies(20);
  rt.block_on([&]() -> task<void> {
    coronet::wait_group wg;
    wg.add(static_cast<int>(bodies.size()));
    for (std::size_t i = 0; i < bodies.size(); ++i) {
      auto url = i % 2 ? "https://localhost:" + std::to_string(nginx.h2) + "/plaintext"
                       : "http://127.0.0.1:" + std::to_string(nginx.h2c) + "/plaintext";
      coronet::spawn(get_into(client, url, bodies[i], wg));
    }
    co_await wg.wait();
  }());
  INFO(nginx.proc.output());
  for (auto& b : bodies)
    CHECK(b == "200 Hello from nginx");
  auto st = stats_of(rt, client);
  CHECK(st.http2 == 20);
  CHECK(st.connects == 2); // one per host, every call multiplexed
}

TEST_CASE("http2 client: client.h2c_targets names the origins called over h2c, and bad entries name the key")
{
  server s;
  auto load = [](std::string targets) {
    coronet::config::sources from;
    from.keys = coronet::framework_keys();
    from.sets = {"client.h2c_targets=" + targets};
    static const char* const no_env[] = {nullptr};
    from.environment = no_env;
    return coronet::config::load("test", from);
  };
  coronet::runtime rt{1};
  http::client client{rt, http::client_options::from(load(" http://127.0.0.1:" + std::to_string(s.port) + "/ ,"))};
  rt.block_on([&]() -> task<void> {
    auto r = co_await client.get(s.url("/sleep/1"));
    CHECK(r.status == 200);
  }());
  CHECK(stats_of(rt, client).http2 == 1);
  for (auto bad : {"https://127.0.0.1:1", "http://127.0.0.1:1/path", "ftp://x"}) {
    CAPTURE(bad);
    CHECK_THROWS_WITH_AS(http::client_options::from(load(bad)), doctest::Contains("client.h2c_targets"),
      coronet::config_error);
  }
}

TEST_CASE("server: beyond http.max_concurrent_requests, 503 with Retry-After at once, /healthz is never shed")
{
  http::server_options o;
  o.max_concurrent_requests = 2;
  server s{o};
  for (auto mode : {http::http2_mode::off, http::http2_mode::prior_knowledge}) {
    CAPTURE(static_cast<int>(mode));
    coronet::runtime rt{1};
    http::client_options c;
    c.http2 = mode;
    http::client client{rt, c};
    std::vector<std::string> bodies(6);
    std::string health;
    std::string retry_after;
    rt.block_on([&]() -> task<void> {
      coronet::wait_group wg;
      spawn_gets(client, s.url("/sleep/300"), bodies, wg);
      // Two run; the other four are refused at once, while those two still run.
      auto refused = [&] { return std::count(bodies.begin(), bodies.end(), "503 Service Unavailable: too busy, try again\n"); };
      for (auto until = coronet::clock::now() + 250ms; refused() < 4 && coronet::clock::now() < until;)
        co_await coronet::sleep_for(2ms);
      CHECK(refused() == 4);
      auto h = co_await client.get(s.url("/healthz"));
      health = std::to_string(h.status);
      auto shed = co_await client.get(s.url("/sleep/1"));
      retry_after = std::string(shed.header("Retry-After").value_or("none"));
      co_await wg.wait();
    }());
    CHECK(std::count(bodies.begin(), bodies.end(), "200 slept 300") == 2);
    CHECK(std::count(bodies.begin(), bodies.end(), "503 Service Unavailable: too busy, try again\n") == 4);
    CHECK(health == "404"); // not a route here, but answered, not shed
    CHECK(retry_after == "1");
  }
}

TEST_CASE("server: with http.queue_timeout_ms a request beyond the limit waits for a place, on either protocol")
{
  http::server_options o;
  o.max_concurrent_requests = 2;
  o.queue_timeout = 2000ms;
  server s{o};
  for (auto mode : {http::http2_mode::off, http::http2_mode::prior_knowledge}) {
    CAPTURE(static_cast<int>(mode));
    coronet::runtime rt{1};
    http::client_options c;
    c.http2 = mode;
    http::client client{rt, c};
    std::vector<std::string> bodies(6);
    rt.block_on([&]() -> task<void> {
      coronet::wait_group wg;
      spawn_gets(client, s.url("/sleep/100"), bodies, wg);
      co_await wg.wait();
    }());
    for (auto& b : bodies)
      CHECK(b == "200 slept 100"); // three rounds of two, none past the queue timeout
  }
}

namespace {

// GET `path` with `headers`: the status and the body.
std::pair<int, std::string> status_and_body(coronet::runtime& rt, http::client& c, const server& s,
  const std::string& path, std::vector<std::pair<std::string, std::string>> headers,
  std::chrono::milliseconds timeout = {})
{
  return rt.block_on([&]() -> task<std::pair<int, std::string>> {
    http::request_options o;
    for (auto& [k, v] : headers)
      o.headers.add(k, v);
    o.timeout = timeout;
    auto r = co_await c.get(s.url(path), std::move(o));
    co_return std::pair{r.status, r.body};
  }());
}

// "<ms left> <X-Request-Timeout-Ms as received>" from /budget, and the status.
std::pair<int, std::string> budget_of(coronet::runtime& rt, http::client& c, const server& s,
  std::vector<std::pair<std::string, std::string>> headers, std::chrono::milliseconds timeout = {})
{
  return status_and_body(rt, c, s, "/budget", std::move(headers), timeout);
}

int left_ms(const std::string& body)
{
  return std::stoi(body.substr(0, body.find(' ')));
}

} // namespace

TEST_CASE("server: X-Request-Timeout-Ms and grpc-timeout set the request's deadline, a spent budget is 504 at once")
{
  http::server_options o;
  o.request_timeout = std::chrono::milliseconds{2000}; // the cap
  server s{o};
  coronet::runtime rt{1};
  for (auto mode : {http::http2_mode::off, http::http2_mode::prior_knowledge}) {
    CAPTURE(static_cast<int>(mode));
    http::client_options c;
    c.http2 = mode;
    http::client client{rt, c};
    auto [status, body] = budget_of(rt, client, s, {{"X-Request-Timeout-Ms", "500"}});
    CHECK(status == 200);
    CHECK(left_ms(body) > 400);
    CHECK(left_ms(body) <= 500);
    auto grpc = budget_of(rt, client, s, {{"grpc-timeout", "300m"}, {"X-Request-Timeout-Ms", ""}});
    CHECK(left_ms(grpc.second) <= 300); // an empty X-Request-Timeout-Ms says nothing
    auto capped = budget_of(rt, client, s, {{"X-Request-Timeout-Ms", "99999999"}});
    CHECK(left_ms(capped.second) <= 2000);
    CHECK(left_ms(capped.second) > 1500);
    auto finished = s.state->finished.load();
    auto spent = budget_of(rt, client, s, {{"X-Request-Timeout-Ms", "0"}});
    CHECK(spent.first == 504);
    CHECK(spent.second == "Gateway Timeout: the request's deadline has passed\n");
    CHECK(s.state->finished == finished); // the handler never ran
  }
}

TEST_CASE("server: a handler still running at its request's deadline is cancelled and answered 504, on either protocol")
{
  http::server_options o;
  o.request_timeout = std::chrono::milliseconds{300}; // every request's deadline, when the caller sends none
  server s{o};
  coronet::runtime rt{1};
  for (auto mode : {http::http2_mode::off, http::http2_mode::prior_knowledge}) {
    CAPTURE(static_cast<int>(mode));
    http::client_options c;
    c.http2 = mode;
    c.max_retries = 0; // a 504 is retried otherwise: one handler run a request here
    http::client client{rt, c};
    auto get = [&](const std::string& path, std::vector<std::pair<std::string, std::string>> headers) {
      return status_and_body(rt, client, s, path, std::move(headers));
    };
    auto before = s.state->cancelled.load();
    auto finished = s.state->finished.load();
    auto asked = get("/sleep/10000", {{"X-Request-Timeout-Ms", "50"}}); // the caller's deadline
    CHECK(asked.first == 504);
    CHECK(asked.second == "Gateway Timeout: the request's deadline passed before its answer\n");
    auto capped = get("/sleep/10000", {}); // the server's own
    CHECK(capped.first == 504);
    CHECK(s.state->cancelled == before + 2); // the handlers' sleeps were cancelled, not left running
    CHECK(s.state->finished == finished);
    CHECK(get("/sleep/1", {}).first == 200); // in time: answered as usual
  }
}

TEST_CASE("client: a call sends the budget it has left as X-Request-Timeout-Ms")
{
  server s; // no cap: the request's deadline is what the header says
  coronet::runtime rt{1};
  for (auto mode : {http::http2_mode::off, http::http2_mode::prior_knowledge}) {
    http::client_options c;
    c.http2 = mode;
    http::client client{rt, c};
    auto [status, body] = budget_of(rt, client, s, {}, std::chrono::milliseconds{700});
    CHECK(status == 200);
    auto sent = std::stoi(body.substr(body.find(' ') + 1));
    CHECK(sent > 600);
    CHECK(sent <= 700);
    CHECK(left_ms(body) <= sent);
  }
}

// Until `done()` holds (5 s at most).
template <class Done>
bool eventually(Done done)
{
  for (int i = 0; i < 500 && !done(); ++i)
    std::this_thread::sleep_for(10ms);
  return done();
}

TEST_CASE("server: an HTTP/1.1 client that goes away cancels its handler, one that stays is answered")
{
  server s;
  auto connect = [&] {
    auto io = std::make_shared<asio::io_context>();
    auto sock = std::make_shared<asio::ip::tcp::socket>(*io);
    sock->connect({asio::ip::address_v4::loopback(), s.port});
    return std::make_pair(io, sock);
  };
  auto read_all = [](asio::ip::tcp::socket& sock) {
    std::string got;
    std::error_code ec;
    char buf[4096];
    while (!ec) {
      auto n = sock.read_some(asio::buffer(buf), ec);
      got.append(buf, n);
    }
    return got;
  };
  {
    // Asks, then closes before the answer (a browser tab closed, a caller that gave up).
    auto [io, sock] = connect();
    asio::write(*sock, asio::buffer(std::string("GET /sleep/5000 HTTP/1.1\r\nHost: t\r\n\r\n")));
    std::this_thread::sleep_for(50ms);
    sock->close();
    CHECK(eventually([&] { return s.state->cancelled == 1; }));
    CHECK(s.state->finished == 0);
  }
  {
    // Keep-alive, then pipelined: the watch never mistakes a client that stays.
    auto [io, sock] = connect();
    asio::write(*sock, asio::buffer(std::string("GET /sleep/30 HTTP/1.1\r\nHost: t\r\n\r\n")));
    char buf[4096];
    auto n = sock->read_some(asio::buffer(buf));
    CHECK(std::string(buf, n).find("slept 30") != std::string::npos);
    asio::write(*sock, asio::buffer(std::string("GET /sleep/30 HTTP/1.1\r\nHost: t\r\n\r\n"
                                                "GET /sleep/20 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")));
    auto rest = read_all(*sock);
    CHECK(rest.find("slept 30") != std::string::npos);
    CHECK(rest.find("slept 20") != std::string::npos);
    CHECK(s.state->finished == 3);
    CHECK(s.state->cancelled == 1);
  }
  {
    // A client that half-closes after its request (shutdown of its write
    // side) has gone as far as HTTP/1.1 can tell: Go cancels it too.
    auto [io, sock] = connect();
    asio::write(*sock, asio::buffer(std::string("GET /sleep/5000 HTTP/1.1\r\nHost: t\r\n\r\n")));
    std::this_thread::sleep_for(50ms);
    sock->shutdown(asio::ip::tcp::socket::shutdown_send);
    CHECK(eventually([&] { return s.state->cancelled == 2; }));
  }
}

TEST_CASE("server: the request carries its peer, the client's address through trusted proxies, and middleware values")
{
  http::server_options o;
  for (auto n : {"127.0.0.0/8", "10.0.0.0/8"})
    o.trusted_proxies.push_back(*http::ip_network::parse(n));
  server s{o};
  coronet::runtime rt{1};
  http::client client{rt};
  auto ask = [&](std::vector<std::pair<std::string, std::string>> headers) {
    return rt.block_on([](http::client& c, std::string url,
                          std::vector<std::pair<std::string, std::string>> headers) -> task<std::string> {
      http::request_options o;
      for (auto& [k, v] : headers)
        o.headers.add(k, v);
      auto r = co_await c.get(std::move(url), std::move(o));
      co_return r.body;
    }(client, s.url("/whoami"), std::move(headers)));
  };
  auto plain = ask({});
  CHECK(plain.rfind("127.0.0.1:", 0) == 0);
  CHECK(plain.find(" 127.0.0.1 -") != std::string::npos);
  // Through two trusted proxies (127.0.0.1 is one, 10.1.2.3 the next): the client is the first untrusted hop.
  CHECK(ask({{"X-Forwarded-For", "6.6.6.6, 203.0.113.9, 10.1.2.3"}, {"X-Tenant", "acme"}}).ends_with(
    " 203.0.113.9 acme"));
  CHECK(ask({{"Forwarded", "for=192.0.2.60;proto=http, for=\"[2001:db8::1]:4711\""}}).ends_with(" 2001:db8::1 -"));
  // A hop that is no address stops the walk at the last believable one.
  CHECK(ask({{"X-Forwarded-For", "unknown, 10.9.9.9"}}).ends_with(" 10.9.9.9 -"));

  CHECK(http::ip_network::parse("10.0.0.0/8")->contains(asio::ip::make_address("10.200.1.1")));
  CHECK_FALSE(http::ip_network::parse("10.0.0.0/8")->contains(asio::ip::make_address("11.0.0.1")));
  CHECK(http::ip_network::parse("fd00::/8")->contains(asio::ip::make_address("fd12::1")));
  CHECK(http::ip_network::parse("127.0.0.1")->contains(asio::ip::make_address("::ffff:127.0.0.1")));
  CHECK_FALSE(http::ip_network::parse("10.0.0.0/33"));
  CHECK_FALSE(http::ip_network::parse("example.com"));
}

TEST_CASE("server: an untrusted peer's X-Forwarded-For is not believed")
{
  server s;
  coronet::runtime rt{1};
  http::client client{rt};
  auto body = rt.block_on([](http::client& c, std::string url) -> task<std::string> {
    http::request_options o;
    o.headers.add("X-Forwarded-For", "203.0.113.9");
    co_return (co_await c.get(std::move(url), std::move(o))).body;
  }(client, s.url("/whoami")));
  CHECK(body.find(" 127.0.0.1 -") != std::string::npos);
}
