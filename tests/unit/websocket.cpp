// The WebSocket handshake and the UTF-8 check, without a network. The
// protocol itself is tested against a foreign client in chat_test.py.
#include <coronet/websocket/websocket.hpp>
#include <coronet/utf8.hpp>

#include "websocket/frames.hpp"

#include <doctest/doctest.h>

#include <string>

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

namespace {

// A frame as a client (masked) or a server (not) sends it.
std::string frame_of(std::uint8_t op, std::string_view payload, bool fin = true, bool masked = true)
{
  std::string f;
  f.push_back(static_cast<char>((fin ? 0x80 : 0) | op));
  const char m = masked ? static_cast<char>(0x80) : 0;
  if (payload.size() < 126) {
    f.push_back(static_cast<char>(m | static_cast<char>(payload.size())));
  } else {
    f.push_back(static_cast<char>(m | 126));
    f.push_back(static_cast<char>(payload.size() >> 8));
    f.push_back(static_cast<char>(payload.size() & 0xFF));
  }
  const char mask[4] = {0x12, 0x34, 0x56, 0x78};
  if (masked)
    f.append(mask, 4);
  for (std::size_t i = 0; i < payload.size(); ++i)
    f.push_back(masked ? static_cast<char>(payload[i] ^ mask[i & 3]) : payload[i]);
  return f;
}

using result = http::ws::frame_reader::result;

} // namespace

TEST_CASE("websocket frames: a fragmented message with a ping between its pieces, fed a byte at a time")
{
  http::ws::frame_reader reader{1024, true};
  std::string wire = frame_of(http::ws::text, "hel", false) + frame_of(http::ws::ping, "are you there") +
                     frame_of(http::ws::continuation, std::string(200, 'l'), false) +
                     frame_of(http::ws::continuation, "o");
  std::string in;
  std::vector<result::kind_t> seen;
  std::string pinged, message;
  for (char c : wire) {
    in.push_back(c);
    for (;;) {
      auto r = reader.next({in.data(), in.size()});
      if (r.kind == result::need_more) {
        REQUIRE(r.needed > in.size());
        break;
      }
      REQUIRE(r.kind != result::failure);
      seen.push_back(r.kind);
      if (r.kind == result::ping)
        pinged = std::string(r.payload);
      if (r.kind == result::message)
        message = reader.take_message();
      in.erase(0, r.used);
    }
  }
  CHECK(in.empty());
  CHECK(seen == std::vector<result::kind_t>{result::fragment, result::ping, result::fragment, result::message});
  CHECK(pinged == "are you there");
  CHECK(message == "hel" + std::string(200, 'l') + "o");
  CHECK_FALSE(reader.binary());
}

TEST_CASE("websocket frames: a client reads a server's unmasked frames and refuses masked ones")
{
  http::ws::frame_reader client{1024, false};
  auto wire = frame_of(http::ws::binary, std::string("\0\xff", 2), true, false);
  auto r = client.next({wire.data(), wire.size()});
  REQUIRE(r.kind == result::message);
  CHECK(client.binary());
  CHECK(client.take_message() == std::string("\0\xff", 2));

  auto masked = frame_of(http::ws::text, "x");
  r = client.next({masked.data(), masked.size()});
  CHECK(r.kind == result::failure);
  CHECK(r.code == http::close_code::protocol_error);
}

TEST_CASE("websocket frames: what ends the connection, with the close code for each")
{
  auto first = [](std::string wire, std::size_t limit = 64) {
    http::ws::frame_reader reader{limit, true};
    for (;;) {
      auto r = reader.next({wire.data(), wire.size()});
      if (r.kind == result::failure || r.kind == result::need_more || r.kind == result::close ||
          r.kind == result::message)
        return r.kind == result::failure ? r.code : std::uint16_t{0};
      wire.erase(0, r.used);
    }
  };
  CHECK(first(frame_of(http::ws::text, "x", true, false)) == http::close_code::protocol_error); // unmasked
  CHECK(first(frame_of(http::ws::continuation, "x")) == http::close_code::protocol_error);      // no message
  CHECK(first(frame_of(http::ws::text, "a", false) + frame_of(http::ws::text, "b")) == http::close_code::protocol_error);
  CHECK(first(frame_of(http::ws::ping, "x", false)) == http::close_code::protocol_error);       // fragmented control
  CHECK(first(frame_of(3, "x")) == http::close_code::protocol_error);                           // unknown opcode
  CHECK(first(frame_of(http::ws::text, "\xc3\x28")) == http::close_code::invalid_payload);
  CHECK(first(frame_of(http::ws::binary, std::string(65, 'z'))) == http::close_code::message_too_big);
  CHECK(first(frame_of(http::ws::close, "\x03")) == http::close_code::protocol_error);          // one byte
  CHECK(first(frame_of(http::ws::close, "\x03\xed")) == http::close_code::protocol_error);      // 1005 may not be sent
  // Too big is known from the header alone: nothing more is awaited.
  std::string header = frame_of(http::ws::binary, std::string(300, 'z')).substr(0, 4);
  http::ws::frame_reader reader{64, true};
  CHECK(reader.next({header.data(), header.size()}).kind == result::failure);
}

TEST_CASE("websocket frames: a close frame's code and reason")
{
  http::ws::frame_reader reader{64, true};
  auto wire = frame_of(http::ws::close, std::string("\x03\xe8", 2) + "bye");
  auto r = reader.next({wire.data(), wire.size()});
  REQUIRE(r.kind == result::close);
  CHECK(r.code == 1000);
  CHECK(r.payload == "bye");
  auto empty = frame_of(http::ws::close, "");
  http::ws::frame_reader other{64, true};
  r = other.next({empty.data(), empty.size()});
  REQUIRE(r.kind == result::close);
  CHECK(r.code == http::close_code::no_status);
}
