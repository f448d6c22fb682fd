#include "http2/connection.hpp"

#include "http2/common.hpp"
#include "http2/grpc.hpp"
#include "http1/request_parser.hpp"

#include <coronet/detail/memory.hpp>
#include <coronet/http/error.hpp>
#include <coronet/net/tcp_server.hpp>

#include <nghttp2/nghttp2.h>
#include <spdlog/spdlog.h>

#include <asio/bind_cancellation_slot.hpp>
#include <asio/co_spawn.hpp>
#include <asio/redirect_error.hpp>

#include <algorithm>
#include <array>
#include <charconv>
#include <cstring>
#include <optional>
#include <span>

namespace coronet::http::detail {

using namespace std::chrono_literals;
using namespace std::string_view_literals;

namespace {

// A streamed body's producer waits once this much is buffered for the peer.
constexpr std::size_t stream_high_water = 64 * 1024;
// How long, and how much, a closing connection reads and drops.
constexpr auto linger_time = 1s;
constexpr std::size_t linger_bytes = 4 << 20;

using coronet::detail::read_scratch; // the worker's, shared with HTTP/1

// Points a stream's waiter slot at a task's wakeup while it waits; however
// the wait ends (a throw on cancellation too), the stream forgets it.
struct waiter_registration {
  waiter_registration(wakeup*& slot, wakeup& w) : slot_(slot) { slot_ = &w; }
  ~waiter_registration() { slot_ = nullptr; }
  waiter_registration(const waiter_registration&) = delete;
  waiter_registration& operator=(const waiter_registration&) = delete;
  wakeup*& slot_;
};

nghttp2_nv field(std::string_view name, std::string_view value)
{
  return {reinterpret_cast<std::uint8_t*>(const_cast<char*>(name.data())),
    reinterpret_cast<std::uint8_t*>(const_cast<char*>(value.data())), name.size(), value.size(),
    NGHTTP2_NV_FLAG_NONE};
}

// The fields of `from` that keep(name) accepts, appended to `fields` with
// their names lower-cased into `names` (reserved first: the fields point
// into it, so it must not grow after).
template <class Keep>
void lower_fields(const headers& from, Keep keep, std::string& names, std::vector<nghttp2_nv>& fields)
{
  std::size_t size = 0;
  for (auto& [name, value] : from)
    size += name.size();
  names.clear();
  names.reserve(size);
  for (auto& [name, value] : from)
    if (keep(name))
      append_lower(names, name);
  std::size_t at = 0;
  for (auto& [name, value] : from) {
    if (!keep(name))
      continue;
    fields.push_back(field({names.data() + at, name.size()}, value));
    at += name.size();
  }
}

} // namespace

bool token_bucket::take() noexcept
{
  auto now = clock::now();
  std::chrono::duration<double> passed = now - last;
  last = now;
  tokens = std::min(capacity, tokens + passed.count() * per_second);
  if (tokens < 1)
    return false;
  tokens -= 1;
  return true;
}

// A gRPC call's request body, read as it arrives (see body_reader).
class h2_body_reader final : public body_reader {
public:
  explicit h2_body_reader(http2_connection::h2_stream& s) : s_(s) {}
  task<bool> read(std::string& out) override;

private:
  http2_connection::h2_stream& s_;
};

struct http2_connection::h2_stream {
  h2_stream(http2_connection& c, std::int32_t stream_id) : conn(c), id(stream_id), reader(*this) {}

  http2_connection& conn;
  std::int32_t id;
  request req;
  std::string cookie;             // cookie fields, joined (RFC 9113 8.2.3)
  std::size_t header_bytes = 0;
  std::size_t header_count = 0;
  status refusal = status::ok;    // set: the server answers it (431, 413, 400, 408)
  bool request_complete = false;  // END_STREAM received
  bool answered = false;          // a response was submitted
  bool sent_end = false;          // END_STREAM sent
  bool closed = false;            // closed in nghttp2 (ended, or reset by either side)
  bool handler_running = false;
  bool queued = false;            // in ready_
  clock::time_point deadline = clock::time_point::max(); // body to arrive by
  clock::time_point stalled_since{};                    // a response blocked by the peer's window
  // The response.
  response resp;
  std::string_view body;          // what is left of a buffered body
  bool streamed = false;
  std::string chunks;             // a streamed body, written, not yet framed
  std::size_t chunks_sent = 0;
  bool producer_done = false;
  bool deferred = false;          // nghttp2 waits for resume_data
  wakeup* producer_wait = nullptr; // a streamed body's writer, waiting for the peer's window
  asio::cancellation_signal cancel;
  // A gRPC call: dispatched at its headers, its body read as it arrives
  // (the peer's window given back as the handler reads it), its response
  // headers held until its first message (or sent with the trailers).
  bool grpc = false;
  std::string inbox;               // body received, not read yet
  wakeup* body_wait = nullptr;     // the handler, waiting for more of it
  h2_body_reader reader;
  bool headers_pending = false;

  h2_stream* prev_ = nullptr;
  h2_stream* next_ = nullptr;
  bool linked_ = false;
};

// A streamed response body, framed as DATA: write() returns once the bytes
// are buffered, and waits while more than stream_high_water is (the peer's
// flow-control window holds it back), up to http.write_timeout_ms.
class h2_body_writer final : public body_writer {
public:
  explicit h2_body_writer(http2_connection::h2_stream& s)
    : body_writer(s.resp.trailers, s.headers_pending ? &s.resp.headers : nullptr), s_(s)
  {
  }

  task<void> write(std::string_view data) override
  {
    if (s_.closed)
      throw std::system_error(asio::error::connection_reset, "stream reset by the client");
    auto& c = s_.conn;
    if (s_.headers_pending) {
      s_.headers_pending = false;
      unsent_headers_ = nullptr;
      if (!c.submit(s_, true))
        throw std::system_error(asio::error::connection_reset, "stream reset by the client");
    }
    s_.chunks.append(data);
    if (s_.deferred) {
      s_.deferred = false;
      nghttp2_session_resume_data(c.session_, s_.id);
    }
    c.notify();
    if (s_.chunks.size() - s_.chunks_sent <= stream_high_water)
      co_return;
    wakeup taken{co_await asio::this_coro::executor};
    // read_body wakes it once the peer has taken enough.
    waiter_registration registered{s_.producer_wait, taken};
    while (!s_.closed && s_.chunks.size() - s_.chunks_sent > stream_high_water) {
      if (!co_await taken.wait_until(clock::now() + c.settings_.options.write_timeout))
        throw std::system_error(net::timed_out, "the client took no body for http.write_timeout_ms");
    }
    if (s_.closed)
      throw std::system_error(asio::error::connection_reset, "stream reset by the client");
  }

private:
  http2_connection::h2_stream& s_;
};

// nghttp2's callbacks, forwarding to the connection.
struct http2_connection::callbacks {
  static http2_connection& conn(void* user_data) { return *static_cast<http2_connection*>(user_data); }
  static h2_stream* stream(nghttp2_session* session, std::int32_t id)
  {
    return static_cast<h2_stream*>(nghttp2_session_get_stream_user_data(session, id));
  }

  // Any frame but a CONTINUATION ends a header block (nghttp2 has checked
  // the order; a block it refused never reaches on_frame_recv).
  static int on_begin_frame(nghttp2_session*, const nghttp2_frame_hd* hd, void* user_data)
  {
    if (hd->type != NGHTTP2_CONTINUATION)
      conn(user_data).header_block_ = 0;
    return 0;
  }

  static int on_begin_headers(nghttp2_session*, const nghttp2_frame* frame, void* user_data)
  {
    auto& c = conn(user_data);
    c.header_block_ = frame->hd.stream_id;
    c.header_block_deadline_ = clock::now() + c.settings_.options.header_timeout;
    if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_REQUEST)
      c.begin_stream(frame->hd.stream_id);
    return 0;
  }

  static int on_header(nghttp2_session* session, const nghttp2_frame* frame, const std::uint8_t* name,
    std::size_t namelen, const std::uint8_t* value, std::size_t valuelen, std::uint8_t, void*)
  {
    auto* s = stream(session, frame->hd.stream_id);
    if (!s)
      return 0;
    auto& limits = s->conn.settings_.options;
    // Counted as SETTINGS_MAX_HEADER_LIST_SIZE counts, decoded: a small
    // block that decodes huge (an HPACK bomb) is refused, not stored.
    s->header_bytes += namelen + valuelen + 32;
    ++s->header_count;
    if (s->header_bytes > limits.http2.max_header_list_bytes || s->header_count > limits.max_headers + 4)
      s->refusal = status::request_header_fields_too_large;
    if (s->refusal != status::ok || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
      return 0; // trailers are counted, not kept
    std::string_view n{reinterpret_cast<const char*>(name), namelen};
    std::string_view v{reinterpret_cast<const char*>(value), valuelen};
    auto& req = s->req;
    if (n.front() == ':') {
      if (n == ":method"sv)
        req.method.assign(v);
      else if (n == ":path"sv)
        req.target.assign(v);
      else if (n == ":authority"sv && !req.headers.contains("host"))
        req.headers.add("host", std::string(v));
      return 0;
    }
    if (n == "cookie"sv) {
      if (!s->cookie.empty())
        s->cookie.append("; "sv);
      s->cookie.append(v);
      return 0;
    }
    if (n == "host"sv && req.headers.contains("host"))
      return 0; // :authority said it
    req.headers.add(std::string(n), std::string(v));
    return 0;
  }

  static int on_frame_recv(nghttp2_session* session, const nghttp2_frame* frame, void* user_data)
  {
    auto& c = conn(user_data);
    auto id = frame->hd.stream_id;
    c.frame_received(frame->hd.type, frame->hd.flags, id, frame->hd.length);
    auto* s = id ? stream(session, id) : nullptr;
    bool end_stream = (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
    switch (frame->hd.type) {
    case NGHTTP2_HEADERS:
      c.header_block_ = 0;
      if (s && frame->headers.cat == NGHTTP2_HCAT_REQUEST)
        c.headers_done(*s, end_stream);
      else if (s && end_stream)
        c.request_done(*s); // after trailers
      break;
    case NGHTTP2_DATA:
      if (s && end_stream)
        c.request_done(*s);
      break;
    case NGHTTP2_RST_STREAM:
      count_h2_stream(h2_side::server, h2_event::reset_by_peer);
      // Rapid Reset (CVE-2023-44487): a stream reset before its response
      // was sent cost us work for nothing (or was refused, for want of room).
      if ((!s || !s->sent_end) && !c.resets_.take())
        c.calm_down("streams reset faster than they are served (Rapid Reset)");
      break;
    case NGHTTP2_GOAWAY: count_h2_goaway(h2_side::server, false, frame->goaway.error_code); break;
    default: break;
    }
    return 0;
  }

  static int on_data_chunk(nghttp2_session* session, std::uint8_t, std::int32_t id, const std::uint8_t* data,
    std::size_t len, void*)
  {
    auto* s = stream(session, id);
    if (s && s->grpc && (s->queued || s->handler_running)) {
      s->inbox.append(reinterpret_cast<const char*>(data), len); // the window is given back as it is read
      if (s->body_wait)
        s->body_wait->wake();
      return 0;
    }
    nghttp2_session_consume(session, id, len);
    if (!s || s->refusal != status::ok || s->answered)
      return 0;
    auto& body = s->req.body;
    auto max = s->conn.settings_.options.max_body_bytes;
    if (body.size() + len > max) {
      std::string{}.swap(body);
      s->conn.answer(*s, status::payload_too_large);
      return 0;
    }
    body.append(reinterpret_cast<const char*>(data), len);
    return 0;
  }

  static int on_stream_close(nghttp2_session* session, std::int32_t id, std::uint32_t code, void*)
  {
    if (auto* s = stream(session, id))
      s->conn.stream_closed(*s, code);
    return 0;
  }

  static int on_frame_send(nghttp2_session* session, const nghttp2_frame* frame, void* user_data)
  {
    auto& c = conn(user_data);
    auto id = frame->hd.stream_id;
    switch (frame->hd.type) {
    case NGHTTP2_HEADERS:
    case NGHTTP2_DATA:
      if (frame->hd.type == NGHTTP2_DATA) {
        // A client may answer each DATA frame with two WINDOW_UPDATEs (its
        // stream's and the connection's): a long download is no flood.
        c.control_.give();
        c.control_.give();
      }
      if (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) {
        auto* s = stream(session, id);
        if (s) {
          s->sent_end = true;
          s->stalled_since = {};
          // Answered before the request ended (413, 408...): the rest of
          // it is not wanted (RFC 9113 8.1).
          if (!s->request_complete)
            nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, id, NGHTTP2_NO_ERROR);
        }
      }
      break;
    case NGHTTP2_RST_STREAM:
      count_h2_stream(h2_side::server,
        frame->rst_stream.error_code == NGHTTP2_REFUSED_STREAM ? h2_event::refused : h2_event::reset);
      break;
    case NGHTTP2_GOAWAY: count_h2_goaway(h2_side::server, true, frame->goaway.error_code); break;
    default: break;
    }
    return 0;
  }

  static ssize_t read_body(nghttp2_session*, std::int32_t, std::uint8_t* buf, std::size_t length,
    std::uint32_t* flags, nghttp2_data_source* source, void*)
  {
    auto& s = *static_cast<h2_stream*>(source->ptr);
    if (!s.streamed) {
      auto n = std::min(length, s.body.size());
      std::memcpy(buf, s.body.data(), n);
      s.body.remove_prefix(n);
      if (s.body.empty())
        end_body(s, flags);
      return static_cast<ssize_t>(n);
    }
    auto left = s.chunks.size() - s.chunks_sent;
    if (left == 0) {
      if (s.producer_done) {
        end_body(s, flags);
        return 0;
      }
      s.deferred = true;
      return NGHTTP2_ERR_DEFERRED;
    }
    auto n = std::min(length, left);
    std::memcpy(buf, s.chunks.data() + s.chunks_sent, n);
    s.chunks_sent += n;
    if (s.chunks_sent == s.chunks.size()) {
      s.chunks.clear();
      s.chunks_sent = 0;
    }
    if (s.producer_wait && s.chunks.size() - s.chunks_sent <= stream_high_water)
      s.producer_wait->wake();
    if (s.producer_done && s.chunks.size() == s.chunks_sent)
      end_body(s, flags);
    return static_cast<ssize_t>(n);
  }

  // The body's last DATA frame: it ends the stream, unless trailers follow
  // in a HEADERS frame of their own.
  static void end_body(h2_stream& s, std::uint32_t* flags)
  {
    *flags |= NGHTTP2_DATA_FLAG_EOF;
    if (s.conn.submit_trailers(s))
      *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
  }

  static nghttp2_session_callbacks* make()
  {
    nghttp2_session_callbacks* cb = nullptr;
    if (nghttp2_session_callbacks_new(&cb) != 0)
      throw std::bad_alloc();
    nghttp2_session_callbacks_set_on_begin_frame_callback(cb, on_begin_frame);
    nghttp2_session_callbacks_set_on_begin_headers_callback(cb, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data_chunk);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_stream_close);
    nghttp2_session_callbacks_set_on_frame_send_callback(cb, on_frame_send);
    return cb;
  }
};

http2_connection::http2_connection(net::stream& s, const connection_settings& settings, std::string_view received)
  : stream_(s),
    settings_(settings),
    peer_(peer_of(s, settings.options)),
    received_(received),
    writer_(s),
    idle_since_(clock::now())
{
  auto streams = static_cast<double>(settings.options.http2.max_concurrent_streams);
  // A stream reset before its response costs a handler: twice the
  // concurrency at once, then as many per second (a browser that cancels
  // navigations never comes near).
  resets_ = {std::max(2 * streams, 100.0), std::max(2 * streams, 100.0), std::max(streams, 50.0)};
  // PING, SETTINGS, PRIORITY, WINDOW_UPDATE, empty DATA: a thousand at once,
  // a hundred a second, and two more for each DATA frame we send.
  control_ = {1000, 1000, 100};
  stream_.set_write_timeout(settings.options.write_timeout);
}

http2_connection::~http2_connection()
{
  while (auto* s = streams_.pop_front())
    delete s;
  if (session_)
    nghttp2_session_del(session_);
}

bool http2_connection::start()
{
  static nghttp2_session_callbacks* const cb = callbacks::make();
  nghttp2_option* option = nullptr;
  if (nghttp2_option_new(&option) != 0)
    return false;
  // Our own Rapid Reset budget answers first, with ENHANCE_YOUR_CALM.
  nghttp2_option_set_stream_reset_rate_limit(option, 100000, 10000);
  nghttp2_option_set_max_continuations(option, 8); // CONTINUATION flood (CVE-2024-27316 class)
  nghttp2_option_set_max_outbound_ack(option, 1000);
  nghttp2_option_set_max_settings(option, 32);
  // The window is given back as bodies are taken: at once when buffered,
  // as the handler reads for a gRPC call.
  nghttp2_option_set_no_auto_window_update(option, 1);
  int rv = nghttp2_session_server_new2(&session_, cb, this, option);
  nghttp2_option_del(option);
  if (rv != 0)
    return false;
  const auto& h2 = settings_.options.http2;
  nghttp2_settings_entry settings[] = {
    {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, h2.max_concurrent_streams},
    {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, h2.initial_window_bytes},
    {NGHTTP2_SETTINGS_MAX_FRAME_SIZE, h2.max_frame_bytes},
    {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, h2.max_header_list_bytes},
  };
  if (nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, settings, std::size(settings)) != 0)
    return false;
  if (h2.connection_window_bytes > NGHTTP2_INITIAL_CONNECTION_WINDOW_SIZE)
    nghttp2_session_set_local_window_size(session_, NGHTTP2_FLAG_NONE, 0,
      static_cast<std::int32_t>(h2.connection_window_bytes));
  if (draining_)
    nghttp2_submit_goaway(session_, NGHTTP2_FLAG_NONE, 0, NGHTTP2_NO_ERROR, nullptr, 0);
  return true;
}

// GCC 12 misreads the coroutine frames' class-specific operator new/delete
// pair (Asio's recycling allocator) in these functions as mismatched.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

// Writes what nghttp2 has to send whenever the reader or a handler woke it;
// until the session has nothing more to do or the stream fails. Then stops
// the reader, cancels the handlers still running and waits for them all.
task<void> http2_connection::serve()
{
  bool started = start();
  if (started && !received_.empty()) {
    started = receive(received_.data(), received_.size());
    std::string{}.swap(received_);
  }
  if (started) {
    reader_running_ = true;
    asio::co_spawn(stream_.get_executor(), read_loop(),
      asio::bind_cancellation_slot(stop_reader_.slot(), [this](std::exception_ptr) {
        reader_running_ = false;
        notify();
      }));
  }
  while (fatal_ < 0 && reader_running_) {
    if (!co_await writer_.flush(session_))
      break;
    if (!nghttp2_session_want_read(session_) && !nghttp2_session_want_write(session_))
      break;
    note_stalls();
    arm_read_deadline();
    co_await writer_.wait();
  }
  if (fatal_ >= 0)
    co_await send_fatal_goaway();
  bool peer_sending = reader_running_ || fatal_ >= 0;
  if (reader_running_)
    stop_reader_.emit(asio::cancellation_type::terminal);
  for (auto* s = streams_.front(); s; s = s->next_)
    if (s->handler_running)
      s->cancel.emit(asio::cancellation_type::terminal);
  while (reader_running_ || handlers_ > 0)
    co_await writer_.wait();
  if (peer_sending)
    co_await linger();
  stream_.close();
}

// Closing a socket with unread bytes in it makes the kernel send a reset,
// and a reset makes the peer's kernel drop what it has not read yet: our
// GOAWAY, which says why. So the write side is closed first, and what the
// peer still sends is read and dropped for a while (nginx's lingering close).
task<void> http2_connection::linger()
{
  if (!stream_.is_tls()) {
    std::error_code ignored;
    stream_.lowest_layer().shutdown(asio::socket_base::shutdown_send, ignored);
  }
  stream_.set_read_deadline(clock::now() + linger_time);
  std::size_t dropped = 0;
  while (dropped < linger_bytes) {
    // Into the shared scratch buffer: the bytes are not looked at.
    auto scratch = read_scratch();
    auto r = co_await stream_.read_some(asio::buffer(scratch.data(), scratch.size()));
    if (r.ec || r.bytes == 0)
      break;
    dropped += r.bytes;
  }
}

// Reads what has arrived (into the worker's scratch buffer, fed to nghttp2
// at once) or waits for more, holding no buffer while it waits.
task<void> http2_connection::read_loop()
{
  for (;;) {
    auto scratch = read_scratch();
    const char* data = scratch.data();
    auto r = stream_.read_now(asio::buffer(scratch.data(), scratch.size()));
    if (r.ec == asio::error::would_block) {
      arm_read_deadline();
      r = co_await stream_.wait_read_now(asio::buffer(scratch.data(), scratch.size()));
    }
    if (r.ec == net::timed_out) {
      on_timeouts();
      notify();
      continue;
    }
    if (r.ec || r.bytes == 0)
      break; // EOF, reset, shut down
    if (!receive(data, r.bytes))
      break;
  }
}

// Feeds bytes to nghttp2; the requests they complete start afterwards. False
// when the session failed beyond repair (a bad preface, a flood nghttp2
// caught itself): a GOAWAY goes out by hand, then the connection closes.
bool http2_connection::receive(const char* data, std::size_t size)
{
  auto rv = nghttp2_session_mem_recv(session_, reinterpret_cast<const std::uint8_t*>(data), size);
  if (rv < 0) {
    spdlog::debug("http2: {}", nghttp2_strerror(static_cast<int>(rv)));
    fatal_ = rv == NGHTTP2_ERR_BAD_CLIENT_MAGIC ? NGHTTP2_PROTOCOL_ERROR
      : rv == NGHTTP2_ERR_FLOODED || rv == NGHTTP2_ERR_TOO_MANY_CONTINUATIONS
        ? NGHTTP2_ENHANCE_YOUR_CALM
        : NGHTTP2_PROTOCOL_ERROR;
    notify();
    return false;
  }
  dispatch_ready();
  notify();
  return true;
}

void http2_connection::dispatch_ready()
{
  for (auto* s : ready_) {
    s->queued = false;
    if (s->closed) {
      release(s);
      continue;
    }
    s->handler_running = true;
    ++handlers_;
    asio::co_spawn(stream_.get_executor(), handle(*s),
      asio::bind_cancellation_slot(s->cancel.slot(), [this, s](std::exception_ptr) {
        s->handler_running = false;
        --handlers_;
        drop_inbox(*s); // a body nobody will read: its window goes back
        if (s->closed)
          release(s);
        notify();
      }));
  }
  ready_.clear();
}

task<void> http2_connection::handle(h2_stream& s)
{
  response resp;
  set_peer(s.req, peer_, settings_.options);
  // A gRPC call's is held until its response ends: its stream is the
  // method still running.
  std::optional<admission_ticket> ticket;
  if (!take_deadline(s.req, settings_.options)) {
    resp = expired_response();
  } else {
    ticket.emplace(settings_, s.req);
    bool admitted = ticket->admitted();
    if (!admitted)
      admitted = co_await ticket->wait();
    if (!admitted) {
      resp = shed_response();
    } else {
      try {
        resp = co_await settings_.routes.dispatch(s.req);
      } catch (...) {
        if (s.closed)
          co_return; // reset by the client: nobody to answer
        resp = answer_failure(std::current_exception(), s.req);
      }
    }
  }
  if (s.closed)
    co_return;
  if (s.grpc)
    answer_as_grpc(resp);
  else
    ticket.reset(); // as on HTTP/1.1: a streamed body is not a handler running
  co_await respond(s, std::move(resp));
}

task<void> http2_connection::respond(h2_stream& s, response resp)
{
  if (resp.upgrade || resp.status == status::switching_protocols) {
    // No protocol switch on HTTP/2 (a WebSocket opens over HTTP/1.1).
    nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, s.id, NGHTTP2_HTTP_1_1_REQUIRED);
    notify();
    co_return;
  }
  s.resp = std::move(resp);
  bool body = response_has_body(s.resp.status) && s.req.method != "HEAD"sv;
  s.streamed = body && static_cast<bool>(s.resp.stream);
  s.body = s.resp.body;
  if (s.grpc && s.streamed) {
    s.headers_pending = true; // until the first message
  } else {
    bool submitted = submit(s, body && (s.streamed || !s.body.empty() || !s.resp.trailers.empty()));
    notify();
    if (!submitted || !s.streamed)
      co_return;
  }
  h2_body_writer writer{s};
  try {
    co_await s.resp.stream(writer);
    s.producer_done = true;
  } catch (const std::system_error& e) {
    spdlog::debug("streamed response cut short: {}", e.what());
  } catch (const std::exception& e) {
    spdlog::error("streamed response failed: {}", e.what());
  }
  if (!s.closed) {
    if (!s.producer_done)
      nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, s.id, NGHTTP2_INTERNAL_ERROR);
    else if (s.headers_pending)
      answer_trailers_only(s);
    else if (s.deferred) {
      s.deferred = false;
      nghttp2_session_resume_data(session_, s.id);
    }
    notify();
  }
}

// A gRPC call that ended before its first message: its trailers go in the
// one HEADERS frame, with the status.
void http2_connection::answer_trailers_only(h2_stream& s)
{
  s.headers_pending = false;
  for (auto& [name, value] : s.resp.trailers)
    s.resp.headers.add(name, value);
  s.resp.trailers.clear();
  s.streamed = false;
  submit(s, false);
}

// Submits s.resp's status and headers (and its body, through read_body).
bool http2_connection::submit(h2_stream& s, bool with_body)
{
  const auto& r = s.resp;
  thread_local std::string names;
  thread_local std::vector<nghttp2_nv> fields;
  names.clear();
  fields.clear();
  char status_text[8];
  auto status_end = std::to_chars(status_text, status_text + sizeof status_text, code(r.status)).ptr;
  fields.push_back(field(":status"sv, {status_text, static_cast<std::size_t>(status_end - status_text)}));
  lower_fields(r.headers, [](std::string_view name) { return !server_owned_header(name) && !h2_connection_header(name); },
    names, fields);
  char length_text[24];
  if (response_has_body(r.status) && !s.streamed && !r.stream) {
    auto end = std::to_chars(length_text, length_text + sizeof length_text, r.body.size()).ptr;
    fields.push_back(field("content-length"sv, {length_text, static_cast<std::size_t>(end - length_text)}));
  }
  fields.push_back(field("date"sv, http_date_now()));
  fields.push_back(field("server"sv, "coronet"sv));
  nghttp2_data_provider provider{};
  provider.source.ptr = &s;
  provider.read_callback = callbacks::read_body;
  s.answered = true;
  int rv = nghttp2_submit_response(session_, s.id, fields.data(), fields.size(), with_body ? &provider : nullptr);
  if (rv != 0)
    spdlog::debug("http2: stream {}: cannot submit the response: {}", s.id, nghttp2_strerror(rv));
  return rv == 0;
}

// s.resp's trailers, once its body is out (false: it has none to send).
bool http2_connection::submit_trailers(h2_stream& s)
{
  std::string names;
  std::vector<nghttp2_nv> fields;
  lower_fields(s.resp.trailers, [](std::string_view name) { return !trailer_excluded(name) && !h2_connection_header(name); },
    names, fields);
  if (fields.empty())
    return false;
  int rv = nghttp2_submit_trailer(session_, s.id, fields.data(), fields.size());
  if (rv != 0)
    spdlog::debug("http2: stream {}: cannot submit the trailers: {}", s.id, nghttp2_strerror(rv));
  return rv == 0;
}

// The server's own answer to a request it refuses (431, 413, 400, 408).
void http2_connection::answer(h2_stream& s, status code)
{
  s.refusal = code;
  s.deadline = clock::time_point::max();
  s.resp = status_response(code);
  if (s.grpc)
    answer_as_grpc(s.resp);
  s.body = s.resp.body;
  submit(s, !s.body.empty());
  notify();
}

void http2_connection::drop_inbox(h2_stream& s) noexcept
{
  if (s.inbox.empty())
    return;
  give_back(s, s.inbox.size());
  std::string{}.swap(s.inbox);
}

// `n` bytes of a gRPC body taken: the peer may send them again (WINDOW_UPDATE).
void http2_connection::give_back(h2_stream& s, std::size_t n) noexcept
{
  nghttp2_session_consume(session_, s.id, n);
  notify();
}

task<bool> h2_body_reader::read(std::string& out)
{
  auto& s = s_;
  auto& c = s.conn;
  while (s.inbox.empty() && !s.request_complete) {
    if (s.closed)
      throw std::system_error(asio::error::connection_reset, "stream reset by the client");
    wakeup arrived{co_await asio::this_coro::executor};
    waiter_registration registered{s.body_wait, arrived};
    co_await arrived.wait_until(clock::time_point::max());
  }
  if (s.inbox.empty())
    co_return false;
  auto n = s.inbox.size();
  if (out.empty())
    out.swap(s.inbox); // the common case, a whole message in hand: no copy
  else
    out.append(s.inbox);
  s.inbox.clear();
  c.give_back(s, n);
  co_return true;
}

void http2_connection::release(h2_stream* s) noexcept
{
  if (s->queued || s->handler_running)
    return;
  streams_.remove(s);
  --live_;
  delete s;
}

// nghttp2 cannot go on (a bad preface, a flood it caught itself): the GOAWAY
// is written by hand.
task<void> http2_connection::send_fatal_goaway()
{
  auto last = static_cast<std::uint32_t>(nghttp2_session_get_last_proc_stream_id(session_));
  auto code = static_cast<std::uint32_t>(fatal_);
  std::array<std::uint8_t, 17> frame{0, 0, 8, NGHTTP2_GOAWAY, 0, 0, 0, 0, 0,
    static_cast<std::uint8_t>(last >> 24), static_cast<std::uint8_t>(last >> 16),
    static_cast<std::uint8_t>(last >> 8), static_cast<std::uint8_t>(last),
    static_cast<std::uint8_t>(code >> 24), static_cast<std::uint8_t>(code >> 16),
    static_cast<std::uint8_t>(code >> 8), static_cast<std::uint8_t>(code)};
  count_h2_goaway(h2_side::server, true, code);
  co_await stream_.write(asio::buffer(frame));
}

void http2_connection::drain() noexcept
{
  if (draining_)
    return;
  draining_ = true;
  if (!session_)
    return; // start() sends it
  nghttp2_submit_goaway(session_, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(session_),
    NGHTTP2_NO_ERROR, nullptr, 0);
  notify();
}

// The connection's one read deadline is the nearest of: the idle timeout
// (no stream open), the header timeout of a header block begun, each
// stream's body timeout, and the write timeout of a response stalled by
// the peer's flow-control window.
void http2_connection::arm_read_deadline()
{
  const auto& o = settings_.options;
  auto at = clock::time_point::max();
  if (open_ == 0 && handlers_ == 0)
    at = idle_since_ + (draining_ ? std::chrono::duration_cast<clock::duration>(drain_idle_grace) : o.idle_timeout);
  if (header_block_)
    at = std::min(at, header_block_deadline_);
  for (auto* s = streams_.front(); s; s = s->next_) {
    at = std::min(at, s->deadline);
    if (s->stalled_since != clock::time_point{})
      at = std::min(at, s->stalled_since + o.write_timeout);
  }
  stream_.set_read_deadline(at);
}

// A response whose data waits for the peer's window is stalled from when it
// was first seen waiting.
void http2_connection::note_stalls()
{
  if (live_ == 0)
    return;
  bool connection_blocked = nghttp2_session_get_remote_window_size(session_) <= 0;
  for (auto* s = streams_.front(); s; s = s->next_) {
    bool pending = s->answered && !s->sent_end && !s->closed && !s->deferred;
    bool blocked = pending && (connection_blocked || nghttp2_session_get_stream_remote_window_size(session_, s->id) <= 0);
    if (!blocked)
      s->stalled_since = {};
    else if (s->stalled_since == clock::time_point{})
      s->stalled_since = clock::now();
  }
}

void http2_connection::on_timeouts()
{
  const auto& o = settings_.options;
  auto now = clock::now();
  if (header_block_ && now >= header_block_deadline_) {
    // A header block never finished blocks the whole connection.
    spdlog::debug("http2: header block not complete in http.header_timeout_ms");
    header_block_ = 0;
    nghttp2_session_terminate_session(session_, NGHTTP2_ENHANCE_YOUR_CALM);
    return;
  }
  if (open_ == 0 && handlers_ == 0 &&
      now >= idle_since_ + (draining_ ? std::chrono::duration_cast<clock::duration>(drain_idle_grace) : o.idle_timeout)) {
    nghttp2_session_terminate_session(session_, NGHTTP2_NO_ERROR);
    return;
  }
  for (auto* s = streams_.front(); s; s = s->next_) {
    if (now >= s->deadline) {
      s->deadline = clock::time_point::max();
      if (!s->answered)
        answer(*s, status::request_timeout); // the body never came (Slowloris, per stream)
    }
    if (s->stalled_since != clock::time_point{} && now >= s->stalled_since + o.write_timeout) {
      // The peer's window stayed shut: the response is dropped, not kept.
      s->stalled_since = {};
      nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_CANCEL);
    }
  }
}

void http2_connection::calm_down(const char* why)
{
  if (calmed_)
    return;
  calmed_ = true;
  spdlog::warn("http2: {} from {}: GOAWAY ENHANCE_YOUR_CALM", why, net::to_string(stream_.remote_endpoint()));
  nghttp2_session_terminate_session(session_, NGHTTP2_ENHANCE_YOUR_CALM);
}

http2_connection::h2_stream* http2_connection::begin_stream(std::int32_t id)
{
  // Streams whose handlers still run after a reset count too: a client
  // cannot have more handlers at once than it has streams.
  if (live_ >= settings_.options.http2.max_concurrent_streams || draining_) {
    nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, id, NGHTTP2_REFUSED_STREAM);
    return nullptr;
  }
  auto* s = new h2_stream(*this, id);
  streams_.push_back(s);
  ++live_;
  ++open_;
  nghttp2_session_set_stream_user_data(session_, id, s);
  count_h2_stream(h2_side::server, h2_event::opened);
  return s;
}

void http2_connection::headers_done(h2_stream& s, bool end_stream)
{
  auto& req = s.req;
  if (!s.cookie.empty())
    req.headers.add("cookie", std::move(s.cookie));
  req.version_major = 2;
  req.version_minor = 0;
  if (auto type = req.header("content-type"))
    s.grpc = grpc_content_type(*type);
  if (s.refusal != status::ok)
    return answer(s, s.refusal);
  if (!split_target(req))
    return answer(s, status::bad_request);
  if (auto length = req.header("content-length")) {
    std::size_t n = 0;
    auto [end, ec] = std::from_chars(length->data(), length->data() + length->size(), n);
    if (ec == std::errc{} && end == length->data() + length->size() && n > settings_.options.max_body_bytes)
      return answer(s, status::payload_too_large); // refused before a byte of it is read
  }
  if (s.grpc) {
    // Its handler reads the body as it comes, under the call's deadline.
    req.body_stream = &s.reader;
    s.request_complete = end_stream;
    s.queued = true;
    ready_.push_back(&s);
  } else if (end_stream) {
    request_done(s);
  } else {
    s.deadline = clock::now() + settings_.options.body_timeout;
  }
}

void http2_connection::request_done(h2_stream& s)
{
  s.request_complete = true;
  s.deadline = clock::time_point::max();
  if (s.body_wait)
    s.body_wait->wake();
  if (s.answered || s.queued || s.grpc)
    return;
  s.queued = true;
  ready_.push_back(&s);
}

void http2_connection::stream_closed(h2_stream& s, std::uint32_t)
{
  s.closed = true;
  s.deadline = clock::time_point::max();
  s.stalled_since = {};
  if (--open_ == 0)
    idle_since_ = clock::now();
  drop_inbox(s);
  if (s.handler_running) {
    if (s.body_wait)
      s.body_wait->wake();
    if (s.producer_wait)
      s.producer_wait->wake();
    s.cancel.emit(asio::cancellation_type::terminal); // and its client calls
  }
  release(&s);
}

// Frames that carry no request but ask work of us (an ACK, a window
// update, a stream's bookkeeping) come out of one budget; a flood of them
// (CVE-2019-9512/9515/9518 class) ends in ENHANCE_YOUR_CALM.
void http2_connection::frame_received(std::uint8_t type, std::uint8_t flags, std::int32_t, std::size_t length)
{
  bool costly = false;
  switch (type) {
  case NGHTTP2_SETTINGS:
  case NGHTTP2_PING: costly = (flags & NGHTTP2_FLAG_ACK) == 0; break;
  case NGHTTP2_PRIORITY:
  case NGHTTP2_WINDOW_UPDATE: costly = true; break;
  case NGHTTP2_DATA: costly = length == 0 && (flags & NGHTTP2_FLAG_END_STREAM) == 0; break;
  default: break;
  }
  if (costly && !control_.take())
    calm_down(type == NGHTTP2_PING ? "PING flood"
      : type == NGHTTP2_SETTINGS   ? "SETTINGS flood"
      : type == NGHTTP2_DATA       ? "empty DATA flood"
      : type == NGHTTP2_PRIORITY   ? "PRIORITY flood"
                                   : "WINDOW_UPDATE flood");
}

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

} // namespace coronet::http::detail
