// The WebSocket handshake and the UTF-8 check, without a network. The
// protocol itself is tested against a foreign client in chat_test.py.
#include <coronet/http/websocket.hpp>
#include <coronet/utf8.hpp>

#include <doctest/doctest.h>

namespace http = coronet::http;

namespace {

http::request upgrade_request()
{
  http::request req;
  req.method = "GET";
  req.target = req.path = "/ws";
  req.headers.add("Host", "example.com");
  req.headers.add("Upgrade", "websocket");
  req.headers.add("Connection", "keep-alive, Upgrade");
  req.headers.add("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==");
  req.headers.add("Sec-WebSocket-Version", "13");
  return req;
}

} // namespace

TEST_CASE("websocket handshake: the accept key of RFC 6455's example")
{
  auto r = http::websocket_handshake(upgrade_request());
  CHECK(r.status == http::status::switching_protocols);
  CHECK(r.headers.get("Sec-WebSocket-Accept") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
  CHECK(r.headers.get("Upgrade") == "websocket");
}

TEST_CASE("websocket handshake: refusals say what is wrong")
{
  auto refused = [](auto change) {
    auto req = upgrade_request();
    change(req);
    return http::websocket_handshake(req);
  };
  auto no_upgrade = refused([](http::request& r) { r.headers.remove("Upgrade"); });
  CHECK(no_upgrade.status == http::status::upgrade_required);
  CHECK(no_upgrade.headers.get("Upgrade") == "websocket");

  auto old_version = refused([](http::request& r) { r.headers.set("Sec-WebSocket-Version", "8"); });
  CHECK(old_version.status == http::status::upgrade_required);
  CHECK(old_version.headers.get("Sec-WebSocket-Version") == "13");

  CHECK(refused([](http::request& r) { r.headers.set("Sec-WebSocket-Key", "c2hvcnQ="); }).status ==
        http::status::bad_request); // 5 bytes, not 16
  CHECK(refused([](http::request& r) { r.headers.set("Sec-WebSocket-Key", "!!!!!!!!!!!!!!!!!!!!!!=="); }).status ==
        http::status::bad_request);
  CHECK(refused([](http::request& r) { r.headers.set("Connection", "close"); }).status == http::status::bad_request);
  CHECK(refused([](http::request& r) { r.version_minor = 0; }).status == http::status::bad_request);
  CHECK(refused([](http::request& r) { r.method = "POST"; }).status == http::status::bad_request);
}

TEST_CASE("valid_utf8: RFC 3629, not just well-formed bytes")
{
  using coronet::valid_utf8;
  CHECK(valid_utf8(""));
  CHECK(valid_utf8("plain ascii, long enough to take the fast path"));
  CHECK(valid_utf8("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"));    // é € 😀
  CHECK(valid_utf8("\xf4\x8f\xbf\xbf"));                             // U+10FFFF
  CHECK_FALSE(valid_utf8("\xc0\xaf"));                               // overlong '/'
  CHECK_FALSE(valid_utf8("\xe0\x80\xaf"));                           // overlong
  CHECK_FALSE(valid_utf8("\xed\xa0\x80"));                           // a surrogate
  CHECK_FALSE(valid_utf8("\xf4\x90\x80\x80"));                       // above U+10FFFF
  CHECK_FALSE(valid_utf8("\xff"));
  CHECK_FALSE(valid_utf8("abcdefgh\xc3"));                           // cut short
  CHECK_FALSE(valid_utf8("\xe2\x82"));
  CHECK_FALSE(valid_utf8("\xe2\x28\xa1"));                           // bad continuation
}
