#include <coronet/websocket/websocket.hpp>

#include "websocket/frames.hpp"

#include <coronet/config.hpp>
#include <coronet/http/upgrade.hpp>
#include <coronet/runtime.hpp>
#include <coronet/sync/select.hpp>
#include <coronet/time.hpp>
#include <coronet/utf8.hpp>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <vector>

namespace coronet::http {

using namespace std::string_view_literals;

websocket_options websocket_options::from(const config& cfg)
{
  websocket_options o;
  // A config without the [ws] keys (an app that does not declare them) leaves the defaults.
  auto size = [&](const char* key, std::size_t fallback) {
    return cfg.contains(key) ? static_cast<std::size_t>(cfg.get_positive(key)) : fallback;
  };
  auto ms = [&](const char* key, std::chrono::milliseconds fallback) {
    return cfg.contains(key) ? cfg.get_positive_ms(key) : fallback;
  };
  o.max_message_bytes = size("ws.max_message_bytes", o.max_message_bytes);
  o.send_queue_messages = size("ws.send_queue_messages", o.send_queue_messages);
  o.write_timeout = ms("ws.write_timeout_ms", o.write_timeout);
  o.idle_timeout = ms("ws.idle_timeout_ms", o.idle_timeout);
  o.close_timeout = ms("ws.close_timeout_ms", o.close_timeout);
  return o;
}

namespace {

using ws::opcode;

// SHA-1 (FIPS 180-4), for Sec-WebSocket-Accept only.
std::array<std::uint8_t, 20> sha1(std::string_view data)
{
  std::uint32_t h[5] = {0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0};
  std::string m(data);
  std::uint64_t bits = static_cast<std::uint64_t>(data.size()) * 8;
  m.push_back(static_cast<char>(0x80));
  while (m.size() % 64 != 56)
    m.push_back('\0');
  for (int i = 7; i >= 0; --i)
    m.push_back(static_cast<char>(bits >> (i * 8)));
  auto rotl = [](std::uint32_t x, int n) { return (x << n) | (x >> (32 - n)); };
  for (std::size_t chunk = 0; chunk < m.size(); chunk += 64) {
    std::uint32_t w[80];
    for (int i = 0; i < 16; ++i) {
      auto* p = reinterpret_cast<const std::uint8_t*>(m.data() + chunk + i * 4);
      w[i] = std::uint32_t{p[0]} << 24 | std::uint32_t{p[1]} << 16 | std::uint32_t{p[2]} << 8 | p[3];
    }
    for (int i = 16; i < 80; ++i)
      w[i] = rotl(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
    std::uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
    for (int i = 0; i < 80; ++i) {
      std::uint32_t f, k;
      if (i < 20) {
        f = (b & c) | (~b & d);
        k = 0x5A827999;
      } else if (i < 40) {
        f = b ^ c ^ d;
        k = 0x6ED9EBA1;
      } else if (i < 60) {
        f = (b & c) | (b & d) | (c & d);
        k = 0x8F1BBCDC;
      } else {
        f = b ^ c ^ d;
        k = 0xCA62C1D6;
      }
      std::uint32_t t = rotl(a, 5) + f + e + k + w[i];
      e = d;
      d = c;
      c = rotl(b, 30);
      b = a;
      a = t;
    }
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
    h[4] += e;
  }
  std::array<std::uint8_t, 20> out;
  for (int i = 0; i < 5; ++i)
    for (int j = 0; j < 4; ++j)
      out[i * 4 + j] = static_cast<std::uint8_t>(h[i] >> (24 - j * 8));
  return out;
}

constexpr char base64_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

std::string base64(const std::uint8_t* data, std::size_t size)
{
  std::string out;
  for (std::size_t i = 0; i < size; i += 3) {
    std::uint32_t v = std::uint32_t{data[i]} << 16;
    if (i + 1 < size)
      v |= std::uint32_t{data[i + 1]} << 8;
    if (i + 2 < size)
      v |= data[i + 2];
    out.push_back(base64_alphabet[(v >> 18) & 63]);
    out.push_back(base64_alphabet[(v >> 12) & 63]);
    out.push_back(i + 1 < size ? base64_alphabet[(v >> 6) & 63] : '=');
    out.push_back(i + 2 < size ? base64_alphabet[v & 63] : '=');
  }
  return out;
}

// How many bytes a canonical base64 text decodes to; std::nullopt when it
// is not base64.
std::optional<std::size_t> base64_decoded_size(std::string_view text)
{
  if (text.empty() || text.size() % 4 != 0)
    return std::nullopt;
  std::size_t padding = 0;
  for (std::size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '=') {
      if (i < text.size() - 2)
        return std::nullopt;
      ++padding;
    } else if (padding || !std::strchr(base64_alphabet, c) || c == '\0') {
      return std::nullopt;
    }
  }
  return text.size() / 4 * 3 - padding;
}

// Whether a comma-separated header value lists `token` (case-insensitive).
bool has_token(std::string_view value, std::string_view token)
{
  for (auto item : list_items(value))
    if (iequals(item, token))
      return true;
  return false;
}

// A server frame: never masked.
std::string frame(std::uint8_t op, std::string_view payload)
{
  std::string f;
  f.reserve(payload.size() + 10);
  f.push_back(static_cast<char>(0x80 | op));
  if (payload.size() < 126) {
    f.push_back(static_cast<char>(payload.size()));
  } else if (payload.size() <= 0xFFFF) {
    f.push_back(static_cast<char>(126));
    f.push_back(static_cast<char>(payload.size() >> 8));
    f.push_back(static_cast<char>(payload.size()));
  } else {
    f.push_back(static_cast<char>(127));
    for (int i = 7; i >= 0; --i)
      f.push_back(static_cast<char>(static_cast<std::uint64_t>(payload.size()) >> (i * 8)));
  }
  f.append(payload);
  return f;
}

std::string close_frame(std::uint16_t code, std::string_view reason)
{
  if (code == close_code::no_status)
    return frame(opcode::close, {});
  std::string payload;
  payload.push_back(static_cast<char>(code >> 8));
  payload.push_back(static_cast<char>(code & 0xFF));
  // A control frame carries at most 125 bytes; do not cut a character.
  reason = reason.substr(0, 123);
  while (!valid_utf8(reason))
    reason.remove_suffix(1);
  payload.append(reason);
  return frame(opcode::close, payload);
}


} // namespace

struct websocket::state {
  state(upgraded& u, websocket_options o)
    : stream(u.stream), rt(u.rt), options(o), reader(o.max_message_bytes, true), out(o.send_queue_messages)
  {
    stream.set_write_timeout(options.write_timeout);
    in.resize(std::max<std::size_t>(u.buffered.size(), 1024));
    std::memcpy(in.data(), u.buffered.data(), u.buffered.size());
    tail = u.buffered.size();
    last_read = clock::now();
  }

  net::stream& stream;
  runtime& rt;
  websocket_options options;

  // Received bytes not yet parsed: in[head, tail).
  std::vector<char> in;
  std::size_t head = 0;
  std::size_t tail = 0;
  ws::frame_reader reader;

  channel<std::string> out; // frames for the writer; closed once a close frame is queued
  channel<std::monostate> writer_done;
  channel<std::monostate> ended;      // closed when the session and the writer are done
  channel<std::monostate> watch_done; // closed when stop_watch() returns

  // The read deadline: a ping at half the idle time, the end at the full
  // idle time, or at the close deadline once our close frame is queued.
  clock::time_point last_read;
  clock::time_point close_deadline{};
  bool pinged = false;
  bool timed_out = false;

  bool close_sent = false;
  bool close_received = false;
  bool failed = false; // we failed the connection: no more reading
  bool broken = false; // the socket failed
  std::uint16_t code = close_code::abnormal;
  std::string reason;

  // Queues a frame if there is room and the queue is open.
  bool offer(std::string f)
  {
    try {
      return out.try_send(f);
    } catch (const std::system_error&) {
      return false; // closed: the close frame is queued, or the socket failed
    }
  }

  void break_connection()
  {
    broken = true;
    stream.shut_down();
  }

  void queue_close(std::uint16_t c, std::string_view why)
  {
    if (close_sent)
      return;
    close_sent = true;
    code = c;
    reason = std::string(why);
    if (!offer(close_frame(c, why)))
      break_connection(); // the peer reads nothing: no room even for the close frame
    out.close();
    close_deadline = clock::now() + options.close_timeout;
    set_read_deadline();
  }

  void set_read_deadline()
  {
    auto half = options.idle_timeout / 2;
    stream.set_read_deadline(close_sent ? close_deadline : last_read + (pinged ? options.idle_timeout : half));
  }

  // The read deadline passed: ping a quiet peer at half the idle time, give
  // up on it at the full time. False when the connection is to end.
  bool on_read_deadline()
  {
    if (close_sent || pinged) {
      if (!close_sent)
        queue_close(close_code::going_away, "idle timeout");
      timed_out = true;
      return false;
    }
    pinged = true;
    offer(frame(opcode::ping, {}));
    set_read_deadline();
    return true;
  }

  // Makes at least `n` unparsed bytes available; false when the connection
  // ended or timed out first.
  task<bool> fill(std::size_t n)
  {
    while (tail - head < n) {
      if (timed_out || broken)
        co_return false;
      if (in.size() - head < n || head == tail) {
        std::memmove(in.data(), in.data() + head, tail - head);
        tail -= head;
        head = 0;
      }
      if (in.size() < n)
        in.resize(std::max(n, in.size() * 2));
      auto [ec, got] = co_await stream.read_some(asio::buffer(in.data() + tail, in.size() - tail));
      if (ec == net::timed_out) {
        if (!on_read_deadline())
          co_return false;
        continue;
      }
      if (ec) {
        broken = true;
        co_return false;
      }
      tail += got;
      last_read = clock::now();
      pinged = false;
      if (!close_sent)
        set_read_deadline(); // later than before: costs no timer work
    }
    co_return true;
  }

  void fail(std::uint16_t c, std::string_view why)
  {
    spdlog::debug("websocket: {} ({})", why, c);
    failed = true;
    queue_close(c, why);
  }

  // After a big message, give the memory back.
  void shrink()
  {
    if (in.size() > 64 * 1024 && tail - head < 1024) {
      std::memmove(in.data(), in.data() + head, tail - head);
      tail -= head;
      head = 0;
      in.resize(1024);
      in.shrink_to_fit();
    }
    reader.shrink();
  }

  task<std::optional<websocket_message>> receive()
  {
    for (;;) {
      if (close_received || failed || broken || timed_out)
        co_return std::nullopt;
      auto r = reader.next({in.data() + head, tail - head});
      if (r.kind == ws::frame_reader::result::need_more) {
        if (!co_await fill(r.needed))
          co_return std::nullopt;
        continue;
      }
      head += r.used;
      if (head == tail)
        head = tail = 0;
      switch (r.kind) {
      case ws::frame_reader::result::failure:
        fail(r.code, r.why);
        continue;
      case ws::frame_reader::result::ping:
        if (!close_sent)
          offer(frame(ws::opcode::pong, r.payload)); // a peer that reads nothing gets no pong
        continue;
      case ws::frame_reader::result::close:
        on_close(r.code, r.payload);
        co_return std::nullopt;
      case ws::frame_reader::result::message:
        if (close_sent) {
          reader.take_message(); // closing: data after our close frame is dropped
          continue;
        }
        break;
      default: // a pong, or a fragment of a message
        continue;
      }
      websocket_message m{reader.take_message(), reader.binary()};
      shrink();
      co_return m;
    }
  }

  // The peer's close frame (its code and reason already checked).
  void on_close(std::uint16_t got, std::string_view why)
  {
    close_received = true;
    if (close_sent)
      return; // the answer to ours: keep our code
    queue_close(got == close_code::no_status ? close_code::normal : got, {});
    code = got;
    reason = std::string(why);
  }

  // Drains the send queue into the socket, batching what is queued into one
  // write. Ends when the queue closes (after the close frame) or the socket
  // fails.
  task<void> writer()
  {
    std::string batch;
    while (auto f = co_await out.receive()) {
      batch = std::move(*f);
      while (batch.size() < 64 * 1024) {
        auto more = out.try_receive();
        if (!more)
          break;
        batch.append(*more);
      }
      if (broken)
        continue; // drain: the queue must not block senders
      auto ec = co_await stream.write(asio::buffer(batch));
      if (ec == net::timed_out)
        spdlog::debug("websocket: peer reads nothing for {} ms, dropped", options.write_timeout.count());
      if (ec) {
        break_connection();
        out.close();
      }
      if (batch.capacity() > 64 * 1024)
        std::string{}.swap(batch);
    }
    writer_done.close();
  }

  // Closes the connection with 1001 when the runtime stops before the
  // session ends.
  task<void> stop_watch()
  {
    co_await select(rt.done().on_receive(), ended.on_receive());
    if (!ended.closed())
      queue_close(close_code::going_away, "server shutting down");
    watch_done.close();
  }

};

websocket::websocket(upgraded& connection, websocket_options options)
  : state_(std::make_shared<state>(connection, options))
{
}

websocket::~websocket() = default;

task<std::optional<websocket_message>> websocket::receive()
{
  return state_->receive();
}

task<void> websocket::send(websocket_message message)
{
  co_await state_->out.send(frame(message.binary ? opcode::binary : opcode::text, message.data));
}

bool websocket::try_send(websocket_message message)
{
  return state_->offer(frame(message.binary ? opcode::binary : opcode::text, message.data));
}

void websocket::close(std::uint16_t code, std::string_view reason)
{
  state_->queue_close(code, reason);
}

bool websocket::closing() const noexcept
{
  return state_->close_sent || state_->close_received || state_->broken;
}

std::uint16_t websocket::close_code() const noexcept
{
  return state_->code;
}

const std::string& websocket::close_reason() const noexcept
{
  return state_->reason;
}

task<void> websocket::run(upgraded& connection, websocket_options options,
  std::function<task<void>(websocket&)> session)
{
  websocket ws{connection, options};
  auto s = ws.state_;
  s->set_read_deadline();
  spawn([](std::shared_ptr<state> s) -> task<void> { co_await s->writer(); }(s));
  spawn([](std::shared_ptr<state> s) -> task<void> { co_await s->stop_watch(); }(s));

  try {
    co_await session(ws);
  } catch (const std::exception& e) {
    spdlog::error("websocket session failed: {}", e.what());
    s->queue_close(close_code::internal_error, "internal error");
  }
  s->queue_close(close_code::normal, {});
  // Wait for the peer's close frame (dropping late messages), unless the
  // connection already failed.
  while (co_await s->receive()) {
  }
  co_await s->writer_done.receive();
  s->ended.close();
  co_await s->watch_done.receive();
  // The server closes the stream (TLS: with close_notify) when this returns.
}

response websocket_handshake(const request& req)
{
  auto refuse = [](status st, std::string_view why) {
    auto r = response::text(st, std::string(why) + "\n");
    if (st == status::upgrade_required)
      r.headers.add("Upgrade", "websocket");
    return r;
  };
  auto upgrade = req.header("Upgrade");
  if (!upgrade || !has_token(*upgrade, "websocket"))
    return refuse(status::upgrade_required, "this resource speaks WebSocket: send Upgrade: websocket");
  if (req.method != "GET" || req.version_major != 1 || req.version_minor < 1)
    return refuse(status::bad_request, "a WebSocket handshake is an HTTP/1.1 GET");
  auto connection = req.header("Connection");
  if (!connection || !has_token(*connection, "upgrade"))
    return refuse(status::bad_request, "a WebSocket handshake needs Connection: Upgrade");
  auto version = req.header("Sec-WebSocket-Version");
  if (!version || trim_blanks(*version) != "13") {
    auto r = refuse(status::upgrade_required, "unsupported Sec-WebSocket-Version: this server speaks 13");
    r.headers.add("Sec-WebSocket-Version", "13");
    return r;
  }
  auto key = req.header("Sec-WebSocket-Key");
  if (!key || base64_decoded_size(trim_blanks(*key)) != std::size_t{16})
    return refuse(status::bad_request, "Sec-WebSocket-Key must be 16 bytes in base64");
  auto digest = sha1(std::string(trim_blanks(*key)) + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
  response r;
  r.status = status::switching_protocols;
  r.headers.add("Upgrade", "websocket");
  r.headers.add("Sec-WebSocket-Accept", base64(digest.data(), digest.size()));
  return r;
}

namespace {

task<response> upgrade_route(request& req, const websocket_options& options, const websocket_session& session)
{
  auto r = websocket_handshake(req);
  if (r.status == status::switching_protocols)
    r.upgrade = [options, session](upgraded& u) { return websocket::run(u, options, session); };
  co_return r;
}

} // namespace

handler accept_websocket(websocket_options options, websocket_session session)
{
  return [options, session = std::move(session)](request& req) { return upgrade_route(req, options, session); };
}

} // namespace coronet::http
