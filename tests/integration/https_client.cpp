// http::client over HTTPS against the real coronet-hello with a certificate
// from a throwaway CA: verification, pooled reuse, session resumption.
#include <coronet/client/client.hpp>

#include <support/pki.hpp>
#include <support/process.hpp>

#include <doctest/doctest.h>

#include <csignal>
#include <string>
#include <vector>
#include <string_view>

namespace http = coronet::http;
using coronet::task;

namespace {

std::vector<std::string> tls_flags(const std::string& cert, bool mtls)
{
  std::vector<std::string> flags{"--set", "tls.cert_file=" + coronet::test::pki(cert + ".pem"), "--set",
    "tls.key_file=" + coronet::test::pki(cert + ".key")};
  if (mtls) {
    flags.push_back("--set");
    flags.push_back("tls.client_ca_file=" + coronet::test::pki("ca.pem"));
  }
  return flags;
}

struct https_hello : coronet::test::app {
  explicit https_hello(const std::string& cert = "server", bool mtls = false)
    : app("coronet-hello", tls_flags(cert, mtls))
  {
  }
  ~https_hello()
  {
    proc.signal(SIGTERM);
    proc.wait();
  }
  std::string url(const char* host = "localhost") const
  {
    return std::string("https://") + host + ":" + std::to_string(port) + "/plaintext";
  }
};

task<int> get_status(http::client& c, std::string url)
{
  auto r = co_await c.get(std::move(url));
  co_return r.body == "Hello, World!" ? r.status : -1;
}

// stats() from a worker, as it must be called.
http::client::pool_stats stats_of(coronet::runtime& rt, http::client& c)
{
  return rt.block_on([](http::client& c) -> task<http::client::pool_stats> { co_return c.stats(); }(c));
}

task<http::client_errc> failure_of(http::client& c, std::string url, std::string_view reason = "certificate verify failed")
{
  try {
    co_await c.get(std::move(url));
  } catch (const http::client_error& e) {
    INFO(e.what());
    CHECK(std::string_view(e.what()).find(reason) != std::string_view::npos);
    co_return e.kind();
  }
  co_return http::client_errc::bad_url; // no failure: the check fails
}

} // namespace

TEST_CASE("https client: pooled connections are reused, new ones resume the session")
{
  https_hello server;
  REQUIRE(server.port != 0);
  coronet::runtime rt{1};
  http::client_options o;
  o.tls.ca_file = coronet::test::pki("ca.pem");
  SUBCASE("a pooled connection serves the next call (HTTP/2 by ALPN, or HTTP/1.1)")
  {
    for (auto mode : {http::http2_mode::automatic, http::http2_mode::off}) {
      o.http2 = mode;
      http::client c{rt, o};
      for (int i = 0; i < 3; ++i)
        CHECK(rt.block_on(get_status(c, server.url())) == 200);
      auto s = stats_of(rt, c);
      CHECK(s.connects == 1);
      CHECK(s.reuses == 2);
      CHECK(s.http2 == (mode == http::http2_mode::off ? 0u : 3u));
    }
  }
  SUBCASE("with nothing pooled, each new connection resumes the first one's session")
  {
    o.http2 = http::http2_mode::off;
    o.max_idle_per_host = 0; // every connection closes after its call
    http::client c{rt, o};
    for (int i = 0; i < 3; ++i)
      CHECK(rt.block_on(get_status(c, server.url())) == 200);
    auto s = stats_of(rt, c);
    CHECK(s.connects == 3);
    CHECK(s.resumed == 2);
  }
}

TEST_CASE("https client: a certificate that does not verify is a tls error, the reason from OpenSSL")
{
  https_hello server;
  https_hello wrong_name{"wrong-name"}; // signed by the trusted CA, for wrong.example only
  REQUIRE(server.port != 0);
  REQUIRE(wrong_name.port != 0);
  coronet::runtime rt{1};
  SUBCASE("the CA is not trusted")
  {
    http::client c{rt}; // the system store does not know the test CA
    CHECK(rt.block_on(failure_of(c, server.url())) == http::client_errc::tls);
  }
  SUBCASE("the name does not match")
  {
    http::client_options o;
    o.tls.ca_file = coronet::test::pki("ca.pem");
    http::client c{rt, o};
    CHECK(rt.block_on(failure_of(c, wrong_name.url())) == http::client_errc::tls);
  }
  SUBCASE("insecure_skip_verify trusts it anyway")
  {
    http::client_options o;
    o.tls.insecure_skip_verify = true;
    http::client c{rt, o};
    CHECK(rt.block_on(get_status(c, server.url())) == 200);
  }
}

TEST_CASE("https client: a server that requires a client certificate gets it from client.cert_file")
{
  https_hello server{"server", true};
  REQUIRE(server.port != 0);
  coronet::runtime rt{1};
  http::client_options o;
  o.tls.ca_file = coronet::test::pki("ca.pem");
  SUBCASE("without one, the call fails as a tls error")
  {
    http::client c{rt, o};
    CHECK(rt.block_on(failure_of(c, server.url(), "certificate")) == http::client_errc::tls);
  }
  SUBCASE("with one from the CA the server trusts, it is served")
  {
    o.tls.cert_file = coronet::test::pki("client.pem");
    o.tls.key_file = coronet::test::pki("client.key");
    http::client c{rt, o};
    CHECK(rt.block_on(get_status(c, server.url())) == 200);
  }
}
