#include "http1/connection.hpp"

#include <coronet/net/tcp_server.hpp>

#include <coronet/http/error.hpp>
#include <coronet/detail/memory.hpp>

#include <coronet/http/upgrade.hpp>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <ctime>
#include <span>

namespace coronet::http::detail {

using namespace std::chrono_literals;
using namespace std::string_view_literals;

namespace {

// The status line and headers of `r`, then its body unless it is streamed
// or answers a HEAD. A streamed body is chunked, or close-delimited when the
// client cannot take chunks (`close` is then already true).
void serialize(const response& r, bool head, bool close, bool chunked, std::string& out)
{
  char number[16];
  auto code_end = std::to_chars(number, number + sizeof number, code(r.status)).ptr;
  out.append("HTTP/1.1 "sv).append(number, code_end).append(" "sv).append(reason(r.status)).append("\r\n"sv);
  for (auto& [name, value] : r.headers) {
    if (server_owned_header(name))
      continue; // the server owns the framing
    out.append(name).append(": "sv).append(value).append("\r\n"sv);
  }
  bool body = response_has_body(r.status);
  if (body && r.stream) {
    if (chunked)
      out.append("Transfer-Encoding: chunked\r\n"sv);
  } else if (body) {
    auto len_end = std::to_chars(number, number + sizeof number, r.body.size()).ptr;
    out.append("Content-Length: "sv).append(number, len_end).append("\r\n"sv);
  }
  out.append("Date: "sv).append(http_date_now()).append("\r\nServer: coronet\r\n"sv);
  if (r.upgrade && r.status == status::switching_protocols)
    out.append("Connection: Upgrade\r\n"sv);
  else if (close)
    out.append("Connection: close\r\n"sv);
  out.append("\r\n"sv);
  if (!head && body && !r.stream)
    out.append(r.body);
}

// The answer to a request the server refuses itself (400, 408, 413...),
// after which the connection closes. Not inlined into a coroutine, so its
// temporaries take no room in the frame.
[[gnu::noinline]] void serialize_error(status s, std::string& out)
{
  serialize(status_response(s), false, true, true, out);
}

// Bytes are read into the worker's scratch (coronet/detail/memory.hpp) and
// parsed at once. The parser copies what it keeps, so only the bytes after a
// complete request are saved, and only before the handler might suspend.
using coronet::detail::read_scratch;

// The request parsers (with the request each fills, about 700 bytes) of
// the worker's connections that wait for their next request: an idle
// connection holds none. A few hundred are kept, enough for the requests a
// worker has in flight at once; past that, a parser is freed.
using spare_parsers = coronet::detail::spares<request_parser, 256>;

// Writes a streamed body to the stream, chunked unless the client is
// HTTP/1.0; each write under the write timeout.
class stream_writer final : public body_writer {
public:
  stream_writer(net::stream& s, bool chunked, http::headers& trailers)
    : body_writer(trailers), stream_(s), chunked_(chunked)
  {
  }

  task<void> write(std::string_view data) override
  {
    if (data.empty())
      co_return; // an empty chunk would end the body
    char size[24];
    std::size_t size_len = 0;
    if (chunked_) {
      auto end = std::to_chars(size, size + sizeof size - 2, data.size(), 16).ptr;
      *end++ = '\r';
      *end++ = '\n';
      size_len = static_cast<std::size_t>(end - size);
    }
    std::array<asio::const_buffer, 3> buffers{asio::buffer(size, size_len), asio::buffer(data),
      asio::buffer("\r\n", chunked_ ? 2 : 0)};
    if (auto ec = co_await stream_.write(buffers))
      throw std::system_error(ec, "writing the response body");
  }

  // The last chunk, with the trailers.
  task<void> finish()
  {
    if (!chunked_)
      co_return;
    if (trailers().empty()) {
      if (auto ec = co_await stream_.write(asio::buffer("0\r\n\r\n", 5)))
        throw std::system_error(ec, "writing the response body");
      co_return;
    }
    std::string last = "0\r\n";
    for (auto& [name, value] : trailers())
      if (!trailer_excluded(name))
        last.append(name).append(": "sv).append(value).append("\r\n"sv);
    last.append("\r\n"sv);
    if (auto ec = co_await stream_.write(asio::buffer(last)))
      throw std::system_error(ec, "writing the response body");
  }

private:
  net::stream& stream_;
  bool chunked_;
};

} // namespace

http1_connection::http1_connection(net::stream& s, const connection_settings& settings)
  : stream_(s),
    settings_(settings),
    peer_(peer_of(s, settings.options))
{
  stream_.set_write_timeout(settings.options.write_timeout);
}

http1_connection::~http1_connection()
{
  release_parser();
}

// GCC 12 misreads the coroutine frames' class-specific operator new/delete
// pair (Asio's recycling allocator) in these functions as mismatched.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

// Answer what has arrived, send it, read more; until either side ends the
// connection. The common path suspends only to dispatch and to wait for the
// next request: what the socket takes or has at once is written and read
// without waiting.
task<void> http1_connection::serve()
{
  bool going = true;
  while (going) {
    going = co_await answer_buffered();
    if (!going)
      break;
    expect_continue();
    if (must_flush() && !flush_now())
      going = co_await flush();
    if (!going || close_)
      break;
    auto in = receive_now();
    if (in == input::wait) {
      if (!partial_)
        release_parser();
      // Waiting for the next request: the only suspension of an idle
      // connection, one frame deep and with no buffer (what arrives is read
      // into the worker's scratch buffer once this task runs), so an idle
      // connection stays small.
      auto scratch = read_scratch();
      auto r = co_await stream_.wait_read_now(asio::buffer(scratch.data(), scratch.size()));
      in = received(r);
    }
    if (in == input::slow_headers)
      co_await answer_slow_headers();
    if (in != input::got)
      break;
  }
  if (!h2_)
    stream_.close();
}

// The first bytes of a plain connection: HTTP/1 or the h2c preface (then
// h2_ is set and the bytes kept for the HTTP/2 connection). `maybe`: too few
// bytes to tell, kept; read on.
http1_connection::preface http1_connection::sniff_preface()
{
  if (!settings_.options.http2.enabled || stream_.is_tls())
    return preface::no;
  if (!kept_.empty()) { // the start of a preface, kept from the last read
    kept_.append(data_);
    data_ = kept_;
    data_in_scratch_ = false;
  }
  auto p = looks_like_http2();
  if (p == preface::maybe) {
    if (kept_.empty())
      kept_.assign(data_);
    data_ = {};
  } else if (p == preface::yes) {
    keep_unparsed();
    h2_ = true;
  }
  return p;
}

// Feeds the parser what was received: the request it finished, or nullptr
// when it needs more bytes or the bytes are malformed (then the error
// response is in out_ and close_ is set).
request* http1_connection::next_request()
{
  std::size_t used = 0;
  auto r = parser().feed(data_, used);
  data_.remove_prefix(used);
  partial_ = used > 0 || partial_;
  if (r == request_parser::result::error) {
    spdlog::debug("bad request: {}", parser_->error_message());
    serialize_error(parser_->error_status(), out_);
    close_ = true;
    return nullptr;
  }
  if (r == request_parser::result::need_more)
    return nullptr; // the parser took every byte
  partial_ = false;
  sent_continue_ = false;
  phase_ = phase::between;
  keep_unparsed();
  request& req = parser_->finished();
  set_peer(req, peer_, settings_.options);
  return &req;
}

// Every complete request received is answered in order; the responses
// gather in out_, so a pipelined batch goes out in one write. False when
// the connection was handed over or cut short.
task<bool> http1_connection::answer_buffered()
{
  if (first_ && !data_.empty()) {
    auto p = sniff_preface();
    if (p != preface::no)
      co_return p == preface::maybe;
    first_ = false;
  }
  while (!data_.empty()) {
    request* req = next_request();
    if (!req && close_)
      co_return true;
    if (!req)
      break;
    response resp;
    if (!take_deadline(*req, settings_.options)) {
      resp = expired_response();
    } else if (admission_ticket ticket{settings_, *req}; ticket.admitted() || co_await ticket.wait()) {
      // A client that goes away while its request is handled cancels the
      // handler (unless more requests are already buffered: it is there).
      const bool watch = data_.empty();
      if (watch)
        stream_.watch_peer();
      try {
        resp = co_await settings_.routes.dispatch(*req);
      } catch (...) {
        resp = answer_failure(std::current_exception(), *req);
      }
      if (watch)
        stream_.unwatch_peer();
    } else {
      resp = shed_response();
    }
    auto next = respond(*req, resp);
    if (next == after::nothing)
      coronet::detail::give_string(std::move(resp.body)); // serialized: the next body may use it
    else if (!co_await send_rest(resp, next))
      co_return false;
    if (close_)
      co_return true;
  }
  release_kept();
  co_return true;
}

// What respond() left: a streamed body, or the protocol switched to (after
// which the connection is the upgrade handler's: false).
task<bool> http1_connection::send_rest(response& resp, after next)
{
  if (next != after::upgrade)
    co_return co_await stream_body(resp, next == after::stream_chunked);
  co_await switch_protocols(resp);
  co_return false;
}

// Serializes the response into out_, and says what is left to do: its
// streamed body, or the protocol it switches to.
http1_connection::after http1_connection::respond(const request& req, const response& resp)
{
  // Decided after the handler: a request in flight when the server began
  // to stop gets Connection: close, once this worker's acceptor is closed
  // (net::accepting_here: until then the client may still reconnect here).
  bool keep = req.keep_alive && (!settings_.rt.stop_requested() || net::accepting_here());
  bool is_head = req.method == "HEAD";
  if (resp.upgrade && resp.status == status::switching_protocols)
    return after::upgrade;
  if (resp.stream && !is_head && response_has_body(resp.status)) {
    // HTTP/1.0 cannot take chunks: the body ends when the connection does.
    bool chunked = req.version_major > 1 || req.version_minor >= 1;
    keep = keep && chunked;
    serialize(resp, false, !keep, chunked, out_);
    close_ = !keep;
    return chunked ? after::stream_chunked : after::stream_to_close;
  }
  if (out_.empty() && !coronet::detail::holds_memory(out_)) // take the worker's spare
    out_ = coronet::detail::take_string(resp.body.size() + 256);
  if (out_.capacity() < 4096)
    out_.reserve(!data_.empty() ? 4096 : resp.body.size() + 256); // grow once, not by doubling
  serialize(resp, is_head, !keep, true, out_);
  close_ = !keep;
  return after::nothing;
}

// Sends what out_ holds (this response's headers after any earlier
// pipelined responses), then the streamed body. False when the connection
// cannot go on: the client went away, or the producer failed after the
// headers were out, so the body is cut short and the client must see the
// connection close.
task<bool> http1_connection::stream_body(response& resp, bool chunked)
{
  stream_writer writer{stream_, chunked, resp.trailers};
  try {
    auto ec = co_await stream_.write(asio::buffer(out_));
    out_.clear();
    if (ec)
      co_return false;
    co_await resp.stream(writer);
    co_await writer.finish();
    co_return true;
  } catch (const std::system_error& e) {
    spdlog::debug("streamed response cut short: {}", e.what());
  } catch (const std::exception& e) {
    spdlog::error("streamed response failed: {}", e.what());
  }
  co_return false;
}

// Sends the 101 response (after any earlier pipelined responses) and hands
// the stream to the upgrade handler, with the bytes already received after
// the request. The connection closes when the handler returns.
task<void> http1_connection::switch_protocols(const response& resp)
{
  serialize(resp, false, false, true, out_);
  auto ec = co_await stream_.write(asio::buffer(out_));
  std::string{}.swap(out_);
  if (ec)
    co_return;
  // The HTTP deadlines end here: the new protocol sets its own.
  stream_.set_read_deadline(net::stream::no_deadline);
  stream_.set_write_timeout(clock::duration{0});
  upgraded u{stream_, std::string(data_), settings_.rt};
  data_ = {};
  try {
    co_await resp.upgrade(u);
  } catch (const std::exception& e) {
    spdlog::error("upgraded connection failed: {}", e.what());
  }
}

// The client speaks HTTP/2 with prior knowledge: its first line is that of
// the connection preface (RFC 9113 3.4), which no HTTP/1.x request starts
// with. The rest of the preface is HTTP/2's to check: a client that gets it
// wrong is answered GOAWAY PROTOCOL_ERROR.
http1_connection::preface http1_connection::looks_like_http2() const noexcept
{
  constexpr std::string_view first_line = "PRI * HTTP/2.0\r\n";
  auto n = std::min(first_line.size(), data_.size());
  if (data_.substr(0, n) != first_line.substr(0, n))
    return preface::no;
  return n == first_line.size() ? preface::yes : preface::maybe;
}

void http1_connection::expect_continue()
{
  if (close_ || !partial_ || !parser_->headers_complete() || sent_continue_)
    return;
  auto expect = parser_->pending().header("Expect");
  if (expect && iequals(*expect, "100-continue")) {
    out_.append("HTTP/1.1 100 Continue\r\n\r\n");
    sent_continue_ = true;
  }
}

// Responses wait while more requests may be in the socket (a pipelined
// batch bigger than one read): the whole batch goes out in one write.
bool http1_connection::must_flush() const noexcept
{
  return !out_.empty() && (socket_empty_ || close_);
}

// Writes out_ if the socket takes all of it now. False when some is left
// for flush() to wait for (or the write failed, which flush() reports).
bool http1_connection::flush_now()
{
  auto r = stream_.write_now(asio::buffer(out_));
  if (r.ec || r.bytes < out_.size()) {
    out_.erase(0, r.bytes);
    return false;
  }
  // Going to wait for the next request: an idle connection keeps no output
  // buffer; the worker keeps it for the next connection that writes.
  coronet::detail::give_string(std::move(out_));
  return true;
}

task<bool> http1_connection::flush()
{
  auto ec = co_await stream_.write(asio::buffer(out_));
  coronet::detail::give_string(std::move(out_));
  co_return !ec;
}

// Takes what has already arrived into data_, without waiting: a read that
// filled its buffer may have left more in the socket, taken at once into the
// worker's scratch buffer (pipelined batches, big requests, parsed before
// anything can suspend).
http1_connection::input http1_connection::receive_now()
{
  enter(!partial_ ? phase::idle : parser_->headers_complete() ? phase::body : phase::headers);
  if (socket_empty_)
    return input::wait;
  auto scratch = read_scratch();
  auto r = stream_.read_now(asio::buffer(scratch.data(), scratch.size()));
  if (r.ec == asio::error::would_block) {
    socket_empty_ = true;
    // Nothing more now: send what is ready (answer_buffered finds no data),
    // then wait.
    return out_.empty() ? input::wait : input::got;
  }
  if (r.ec || r.bytes == 0)
    return input::ended; // EOF, reset
  socket_empty_ = r.bytes < scratch.size();
  data_ = std::string_view{scratch.data(), r.bytes};
  data_in_scratch_ = true;
  return input::got;
}

// Takes what a wait brought into the worker's scratch buffer: one system
// call per request. Anything but input::got ends the connection: the client
// left, or a deadline passed.
http1_connection::input http1_connection::received(net::io_result r)
{
  auto scratch = read_scratch();
  if (r.ec == net::timed_out && draining_ && phase_ == phase::idle) {
    // Stopping while idle. A request may have arrived just as the wait
    // ended: serve it (with Connection: close) rather than reset a client
    // that sent it in good faith.
    r = stream_.read_now(asio::buffer(scratch.data(), scratch.size()));
  }
  if (r.ec == net::timed_out && phase_ == phase::headers)
    return input::slow_headers;
  if (r.ec || r.bytes == 0)
    return input::ended; // EOF, reset, idle or body timeout
  socket_empty_ = r.bytes < scratch.size();
  data_ = std::string_view{scratch.data(), r.bytes};
  data_in_scratch_ = true;
  return input::got;
}

// Headers that did not arrive within http.header_timeout_ms: 408, then close.
task<void> http1_connection::answer_slow_headers()
{
  serialize_error(status::request_timeout, out_);
  co_await stream_.write(asio::buffer(out_));
}

// Each phase of a request has its own time, counted from when it begins:
// a client that sends a header a byte at a time still has only
// http.header_timeout_ms for all of them.
void http1_connection::enter(phase p) noexcept
{
  if (p == phase_)
    return;
  phase_ = p;
  const auto& o = settings_.options;
  auto now = clock::now();
  switch (p) {
  case phase::idle:
    idle_since_ = now;
    stream_.set_read_deadline(now + (draining_ || settings_.rt.stop_requested() ? drain_idle_grace : o.idle_timeout));
    break;
  case phase::headers: stream_.set_read_deadline(now + o.header_timeout); break;
  case phase::body: stream_.set_read_deadline(now + o.body_timeout); break;
  case phase::between: break;
  }
}

void http1_connection::drain() noexcept
{
  draining_ = true;
  if (phase_ == phase::idle) {
    auto now = clock::now();
    stream_.set_read_deadline(std::max(idle_since_ + drain_idle_grace, now + drain_idle_floor));
  }
}

// The scratch buffer is shared by the worker's connections: keep the rest
// of a pipelined batch before the handler may suspend.
void http1_connection::keep_unparsed()
{
  if (data_.empty() || !data_in_scratch_)
    return;
  kept_.assign(data_);
  data_ = kept_;
  data_in_scratch_ = false;
}

request_parser& http1_connection::parser()
{
  if (!parser_) {
    const auto& o = settings_.options;
    parse_limits limits{o.max_request_line_bytes, o.max_header_bytes, o.max_headers, o.max_body_bytes};
    parser_ = spare_parsers::take();
    if (parser_)
      parser_->reset(limits);
    else
      parser_ = std::make_unique<request_parser>(limits);
  }
  return *parser_;
}

// Called only between requests (or at the end): a half-parsed request
// stays with its connection.
void http1_connection::release_parser()
{
  if (!parser_)
    return;
  spare_parsers::give(std::move(parser_));
}

void http1_connection::release_kept()
{
  if (kept_.empty())
    return;
  kept_.clear();
  if (kept_.capacity() > 16 * 1024)
    kept_.shrink_to_fit();
}

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

} // namespace coronet::http::detail
