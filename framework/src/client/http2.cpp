#include "client/http2.hpp"

#include "http2/common.hpp"

#include <nghttp2/nghttp2.h>
#include <spdlog/spdlog.h>

#include <asio/bind_cancellation_slot.hpp>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/redirect_error.hpp>
#include <asio/ssl/error.hpp>
#include <fmt/format.h>

#include <array>
#include <charconv>
#include <cstring>
#include <optional>
#include <vector>

namespace coronet::http::detail {

using namespace std::string_view_literals;

namespace {

// Windows sized for throughput: what a response may send before we read it.
constexpr std::int32_t stream_window = 1 << 20;
constexpr std::int32_t connection_window = 16 << 20;
// A streamed call's writer waits while this much of its body is unsent.
constexpr std::size_t stream_write_buffer = 64 * 1024;

nghttp2_nv field(std::string_view name, std::string_view value)
{
  return {reinterpret_cast<std::uint8_t*>(const_cast<char*>(name.data())),
    reinterpret_cast<std::uint8_t*>(const_cast<char*>(value.data())), name.size(), value.size(),
    NGHTTP2_NV_FLAG_NONE};
}

} // namespace

// A call in flight: shared by the waiting caller and the connection, so
// either may go first (a caller that timed out leaves it to the stream's
// close).
struct h2_client_connection::pending_call {
  std::int32_t id = 0;
  std::string body;        // the request body, sent from here
  std::size_t body_sent = 0;
  client_response response; // a streamed call's body is its inbox: arrived, not yet read
  std::size_t header_bytes = 0;
  bool done = false;
  std::exception_ptr error;
  std::optional<wakeup> answered; // the caller's wait, woken by finish()

  // A streamed call: the body is written as it comes and ends with
  // close_write(); fields after the response's head are its trailers.
  bool streaming = false;
  bool body_closed = false;
  bool deferred = false;  // the body's data source waits for more (NGHTTP2_ERR_DEFERRED)
  bool head_done = false; // the final response's HEADERS arrived
  http::headers trailers;
  std::optional<wakeup> readable, writable; // a reader's and a writer's waits
};

struct h2_client_connection::callbacks {
  static h2_client_connection& conn(void* user_data) { return *static_cast<h2_client_connection*>(user_data); }
  static pending_call* call(nghttp2_session* session, std::int32_t id)
  {
    return static_cast<pending_call*>(nghttp2_session_get_stream_user_data(session, id));
  }

  static void fail(h2_client_connection& c, pending_call& p, client_errc kind, std::string message)
  {
    if (p.done)
      return;
    p.error = std::make_exception_ptr(client_error(kind, std::move(message)));
    nghttp2_submit_rst_stream(c.session_, NGHTTP2_FLAG_NONE, p.id, NGHTTP2_CANCEL);
    c.finish(p);
  }

  static int on_header(nghttp2_session* session, const nghttp2_frame* frame, const std::uint8_t* name,
    std::size_t namelen, const std::uint8_t* value, std::size_t valuelen, std::uint8_t, void* user_data)
  {
    auto* p = call(session, frame->hd.stream_id);
    if (!p || p->done)
      return 0;
    auto& c = conn(user_data);
    p->header_bytes += namelen + valuelen + 32;
    if (p->header_bytes > c.settings_.max_response_header_bytes) {
      fail(c, *p, client_errc::response_too_large, "response headers over the client's limit");
      return 0;
    }
    std::string_view n{reinterpret_cast<const char*>(name), namelen};
    std::string_view v{reinterpret_cast<const char*>(value), valuelen};
    if (n == ":status"sv) {
      int status = 0;
      std::from_chars(v.data(), v.data() + v.size(), status);
      p->response.status = status;
      p->response.headers.clear(); // an informational response's fields are not the final one's
      return 0;
    }
    if (!n.empty() && n.front() != ':')
      (p->head_done ? p->trailers : p->response.headers).add(std::string(n), std::string(v));
    return 0;
  }

  static int on_data_chunk(nghttp2_session* session, std::uint8_t, std::int32_t id, const std::uint8_t* data,
    std::size_t len, void* user_data)
  {
    auto* p = call(session, id);
    // The window is given back at once, but for a streamed call, as it is read.
    if (!p || p->done || !p->streaming)
      nghttp2_session_consume(session, id, len);
    if (!p || p->done)
      return 0;
    auto& c = conn(user_data);
    if (p->response.body.size() + len > c.settings_.max_response_body_bytes) {
      if (p->streaming)
        nghttp2_session_consume(session, id, len);
      fail(c, *p, client_errc::response_too_large,
        fmt::format("response body over {} bytes", c.settings_.max_response_body_bytes));
      return 0;
    }
    p->response.body.append(reinterpret_cast<const char*>(data), len);
    if (p->readable)
      p->readable->wake();
    return 0;
  }

  // A streamed call's response head, and its end: a request body still
  // being sent ends with it (RST_STREAM NO_ERROR: the server has answered).
  static void streamed(h2_client_connection& c, nghttp2_session* session, const nghttp2_frame* frame, pending_call& p)
  {
    if (p.done || p.response.status < 200)
      return;
    if (frame->hd.type == NGHTTP2_HEADERS && !p.head_done) {
      p.head_done = true;
      if (p.readable)
        p.readable->wake();
    }
    if (!(frame->hd.flags & NGHTTP2_FLAG_END_STREAM))
      return;
    if (!nghttp2_session_get_stream_local_close(session, p.id))
      nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, p.id, NGHTTP2_NO_ERROR);
    c.finish(p);
  }

  static int on_frame_recv(nghttp2_session* session, const nghttp2_frame* frame, void* user_data)
  {
    auto& c = conn(user_data);
    switch (frame->hd.type) {
    case NGHTTP2_HEADERS:
    case NGHTTP2_DATA:
      if (auto* p = call(session, frame->hd.stream_id); p && p->streaming)
        streamed(c, session, frame, *p);
      else if (p && (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) && p->response.status >= 200)
        c.finish(*p);
      break;
    case NGHTTP2_RST_STREAM: count_h2_stream(h2_side::client, h2_event::reset_by_peer); break;
    case NGHTTP2_SETTINGS:
      if (!(frame->hd.flags & NGHTTP2_FLAG_ACK))
        c.settings_seen_ = true;
      break;
    case NGHTTP2_GOAWAY:
      c.goaway_ = true;
      c.goaway_last_ = frame->goaway.last_stream_id;
      count_h2_goaway(h2_side::client, false, frame->goaway.error_code);
      break;
    default: break;
    }
    return 0;
  }

  static int on_frame_send(nghttp2_session*, const nghttp2_frame* frame, void*)
  {
    if (frame->hd.type == NGHTTP2_RST_STREAM)
      count_h2_stream(h2_side::client, h2_event::reset);
    else if (frame->hd.type == NGHTTP2_GOAWAY)
      count_h2_goaway(h2_side::client, true, frame->goaway.error_code);
    return 0;
  }

  static int on_stream_close(nghttp2_session* session, std::int32_t id, std::uint32_t code, void* user_data)
  {
    auto& c = conn(user_data);
    auto it = c.calls_.find(id);
    if (it == c.calls_.end())
      return 0;
    auto p = std::move(it->second);
    c.calls_.erase(it);
    (void)session;
    if (!p->done) {
      if (code == NGHTTP2_REFUSED_STREAM || (c.goaway_ && id > c.goaway_last_))
        p->error = std::make_exception_ptr(h2_not_processed(client_errc::closed, "stream refused by the server"));
      else
        p->error = std::make_exception_ptr(client_error(client_errc::reset,
          fmt::format("stream reset by the server: {}", h2_error_name(code))));
      c.finish(*p);
    }
    if (c.calls_.empty())
      c.idle_since_ = clock::now();
    return 0;
  }

  // What nghttp2 found wrong with what the server sent (it answers with
  // GOAWAY itself): the reason the calls fail.
  static int on_error(nghttp2_session*, int, const char* message, std::size_t length, void* user_data)
  {
    auto& c = conn(user_data);
    if (c.protocol_error_.empty())
      c.protocol_error_.assign(message, length);
    return 0;
  }

  static ssize_t read_body(nghttp2_session*, std::int32_t, std::uint8_t* buf, std::size_t length,
    std::uint32_t* flags, nghttp2_data_source* source, void*)
  {
    auto& p = *static_cast<pending_call*>(source->ptr);
    auto n = std::min(length, p.body.size() - p.body_sent);
    if (n == 0 && p.streaming && !p.body_closed) {
      p.deferred = true; // until write() or close_write() resumes it
      return NGHTTP2_ERR_DEFERRED;
    }
    std::memcpy(buf, p.body.data() + p.body_sent, n);
    p.body_sent += n;
    if (p.body_sent == p.body.size() && (!p.streaming || p.body_closed))
      *flags |= NGHTTP2_DATA_FLAG_EOF;
    if (p.writable)
      p.writable->wake();
    return static_cast<ssize_t>(n);
  }

  static nghttp2_session_callbacks* make()
  {
    nghttp2_session_callbacks* cb = nullptr;
    if (nghttp2_session_callbacks_new(&cb) != 0)
      throw std::bad_alloc();
    nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data_chunk);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
    nghttp2_session_callbacks_set_on_frame_send_callback(cb, on_frame_send);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_stream_close);
    nghttp2_session_callbacks_set_error_callback2(cb, on_error);
    return cb;
  }
};

h2_client_connection::h2_client_connection(std::shared_ptr<void> owner, net::stream& s, const settings& options)
  : owner_(std::move(owner)),
    stream_(s),
    settings_(options),
    writer_(s),
    idle_since_(clock::now())
{
  static nghttp2_session_callbacks* const cb = callbacks::make();
  nghttp2_option* option = nullptr;
  if (nghttp2_option_new(&option) != 0)
    throw std::bad_alloc();
  // The window is given back as bodies are taken: at once for a call, as
  // they are read for a streamed call.
  nghttp2_option_set_no_auto_window_update(option, 1);
  int rv = nghttp2_session_client_new2(&session_, cb, this, option);
  nghttp2_option_del(option);
  if (rv != 0)
    throw std::bad_alloc();
  nghttp2_settings_entry entries[] = {
    {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
    {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, static_cast<std::uint32_t>(stream_window)},
    {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, static_cast<std::uint32_t>(options.max_response_header_bytes)},
  };
  nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, entries, std::size(entries));
  nghttp2_session_set_local_window_size(session_, NGHTTP2_FLAG_NONE, 0, connection_window);
  stream_.set_write_timeout(options.write_timeout);
}

h2_client_connection::~h2_client_connection()
{
  if (session_)
    nghttp2_session_del(session_);
}

std::shared_ptr<h2_client_connection> h2_client_connection::start(std::shared_ptr<void> owner, net::stream& s,
  const settings& options)
{
  auto c = std::make_shared<h2_client_connection>(std::move(owner), s, options);
  asio::co_spawn(s.get_executor(), c->run(), asio::detached);
  return c;
}

bool h2_client_connection::can_take() const noexcept
{
  std::uint32_t limit = nghttp2_session_get_remote_settings(session_, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
  if (!settings_seen_ && stream_limit_hint_ != 0)
    limit = std::min(limit, stream_limit_hint_);
  return !ended_ && !goaway_ && calls_.size() < limit;
}

std::optional<std::uint32_t> h2_client_connection::stream_limit() const noexcept
{
  if (!settings_seen_)
    return std::nullopt;
  return nghttp2_session_get_remote_settings(session_, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
}

namespace {

// A call's header block as nghttp2 takes it: the pseudo-headers, the
// caller's fields with their names lower-cased (pointing into `names`), and
// content-length. Not copied: the fields point into it.
struct h2_request_head {
  h2_request_head(const std::string& method, const h2_target& target, const request_options& o, bool sized = true)
  {
    auto skipped = [](std::string_view name) {
      return iequals(name, "Host") || iequals(name, "Content-Length") || h2_connection_header(name);
    };
    std::size_t size = 0;
    for (auto& [name, value] : o.headers)
      size += name.size();
    names.reserve(size);
    for (auto& [name, value] : o.headers)
      if (!skipped(name))
        append_lower(names, name);
    fields.reserve(o.headers.size() + 6);
    fields.push_back(field(":method"sv, method));
    fields.push_back(field(":scheme"sv, target.tls ? "https"sv : "http"sv));
    fields.push_back(field(":authority"sv, o.headers.get("Host").value_or(target.authority)));
    fields.push_back(field(":path"sv, target.path));
    std::size_t at = 0;
    for (auto& [name, value] : o.headers) {
      if (skipped(name))
        continue;
      fields.push_back(field({names.data() + at, name.size()}, value));
      at += name.size();
    }
    if (sized && (!o.body.empty() || method == "POST" || method == "PUT" || method == "PATCH")) {
      auto end = std::to_chars(length, length + sizeof length, o.body.size()).ptr;
      fields.push_back(field("content-length"sv, {length, static_cast<std::size_t>(end - length)}));
    }
  }
  h2_request_head(const h2_request_head&) = delete;
  h2_request_head& operator=(const h2_request_head&) = delete;

  std::string names;
  char length[24];
  std::vector<nghttp2_nv> fields;
};

} // namespace

// Opens the call's stream (its body, if any, read by callbacks::read_body).
void h2_client_connection::submit(const std::string& method, const h2_target& target, const request_options& o,
  const std::shared_ptr<pending_call>& p)
{
  h2_request_head head{method, target, o, !p->streaming};
  nghttp2_data_provider provider{};
  provider.source.ptr = p.get();
  provider.read_callback = callbacks::read_body;
  auto id = nghttp2_submit_request(session_, nullptr, head.fields.data(), head.fields.size(),
    o.body.empty() && !p->streaming ? nullptr : &provider, p.get());
  if (id < 0)
    throw h2_not_processed(client_errc::closed, fmt::format("cannot open a stream: {}", nghttp2_strerror(id)));
  p->id = id;
  calls_.emplace(id, p);
  count_h2_stream(h2_side::client, h2_event::opened);
  notify();
}

// GCC 12 misreads the coroutine frames' class-specific operator new/delete
// pair (Asio's recycling allocator) in these functions as mismatched.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

task<client_response> h2_client_connection::call(const std::string& method, const h2_target& target,
  const request_options& o, clock::time_point deadline)
{
  if (!can_take())
    throw h2_not_processed(client_errc::closed, "connection going away");
  auto self = shared_from_this();
  auto p = std::make_shared<pending_call>();
  p->body = o.body;
  submit(method, target, o, p);

  bool cancelled = false;
  if (!p->done) {
    p->answered.emplace(stream_.get_executor());
    try {
      co_await p->answered->wait_until(deadline);
    } catch (const std::system_error&) {
      cancelled = true; // the caller went away: its stream is reset below
    }
  }
  if (p->done) {
    if (p->error)
      std::rethrow_exception(p->error);
    co_return std::move(p->response);
  }
  // Out of time, or the caller was cancelled: this stream ends, the
  // connection and its other streams go on.
  p->done = true;
  if (!ended_) {
    nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, p->id, NGHTTP2_CANCEL);
    notify();
  }
  if (!cancelled)
    throw client_error(client_errc::timeout, fmt::format("{} {}{}: no response in time", method, target.key,
      target.path));
  throw std::system_error(asio::error::operation_aborted, "call cancelled");
}

void h2_client_connection::finish(pending_call& p)
{
  p.done = true;
  for (auto* w : {&p.answered, &p.readable, &p.writable})
    if (*w)
      (*w)->wake();
}

std::shared_ptr<h2_client_connection::pending_call> h2_client_connection::open(const std::string& method,
  const h2_target& target, const request_options& o)
{
  if (!can_take())
    throw h2_not_processed(client_errc::closed, "connection going away");
  auto p = std::make_shared<pending_call>();
  p->streaming = true;
  p->readable.emplace(stream_.get_executor());
  p->writable.emplace(stream_.get_executor());
  submit(method, target, o, p);
  return p;
}

// One wait of a streamed call's reader or writer: past the deadline, or
// cancelled, the stream is reset.
task<void> h2_client_connection::wait(pending_call& p, wakeup& w, clock::time_point deadline)
{
  auto self = shared_from_this();
  bool woken = false;
  try {
    woken = co_await w.wait_until(deadline);
  } catch (const std::system_error&) {
    cancel(p);
    throw;
  }
  if (!woken && !p.done && clock::now() >= deadline) {
    cancel(p);
    p.error = std::make_exception_ptr(client_error(client_errc::timeout, "stream: no answer in time"));
  }
}

task<void> h2_client_connection::write(pending_call& p, std::string bytes, clock::time_point deadline)
{
  if (p.body_closed)
    throw std::logic_error("client_stream::write after close_write");
  while (!p.done && p.body.size() - p.body_sent >= stream_write_buffer)
    co_await wait(p, *p.writable, deadline);
  if (p.error)
    std::rethrow_exception(p.error);
  if (p.done || ended_)
    throw client_error(client_errc::closed, "the response has ended: nothing more is sent");
  if (p.body_sent > 0 && p.body_sent >= p.body.size() / 2) { // what was sent goes, without moving much
    p.body.erase(0, p.body_sent);
    p.body_sent = 0;
  }
  if (p.body.empty())
    p.body = std::move(bytes);
  else
    p.body += bytes;
  if (std::exchange(p.deferred, false))
    nghttp2_session_resume_data(session_, p.id);
  notify();
}

void h2_client_connection::close_write(pending_call& p)
{
  if (std::exchange(p.body_closed, true) || p.done || ended_)
    return;
  if (std::exchange(p.deferred, false))
    nghttp2_session_resume_data(session_, p.id);
  notify();
}

task<void> h2_client_connection::read_head(pending_call& p, clock::time_point deadline)
{
  while (!p.head_done && !p.done)
    co_await wait(p, *p.readable, deadline);
  if (!p.head_done && p.error)
    std::rethrow_exception(p.error);
}

task<std::optional<std::string>> h2_client_connection::read(pending_call& p, clock::time_point deadline)
{
  while (p.response.body.empty() && !p.done)
    co_await wait(p, *p.readable, deadline);
  if (p.error) {
    give_back(p, p.response.body.size());
    std::string{}.swap(p.response.body);
    std::rethrow_exception(p.error);
  }
  if (p.response.body.empty())
    co_return std::nullopt;
  give_back(p, p.response.body.size());
  co_return std::exchange(p.response.body, {});
}

void h2_client_connection::cancel(pending_call& p) noexcept
{
  give_back(p, p.response.body.size());
  std::string{}.swap(p.response.body);
  if (p.done)
    return;
  p.error = std::make_exception_ptr(std::system_error(asio::error::operation_aborted, "stream cancelled"));
  finish(p);
  if (!ended_) {
    nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, p.id, NGHTTP2_CANCEL);
    notify();
  }
}

// `n` bytes of a streamed call's body taken: the server may send them again.
void h2_client_connection::give_back(pending_call& p, std::size_t n) noexcept
{
  if (n == 0 || ended_)
    return;
  nghttp2_session_consume(session_, p.id, n);
  notify();
}

const client_response& h2_client_connection::response(const pending_call& p) noexcept
{
  return p.response;
}

const http::headers& h2_client_connection::trailers(const pending_call& p) noexcept
{
  return p.trailers;
}

bool h2_client_connection::ended(const pending_call& p) noexcept
{
  return p.done;
}

// Writes what nghttp2 has to send whenever a call or the reader woke it,
// until the connection fails, the peer sends GOAWAY and the last stream
// ends, or it sat idle for client.idle_timeout_ms.
task<void> h2_client_connection::run()
{
  auto self = shared_from_this();
  reader_running_ = true;
  asio::co_spawn(stream_.get_executor(), read_loop(),
    asio::bind_cancellation_slot(stop_reader_.slot(), [self](std::exception_ptr) {
      self->reader_running_ = false;
      self->notify();
    }));
  while (reader_running_) {
    if (!co_await writer_.flush(session_)) {
      // The peer has closed or reset: what it sent last (a TLS alert that
      // says why) is still read before the calls are failed.
      stream_.set_read_deadline(clock::now() + std::chrono::milliseconds{200});
      while (reader_running_)
        co_await writer_.wait();
      break;
    }
    if (!nghttp2_session_want_read(session_) && !nghttp2_session_want_write(session_))
      break;
    if (goaway_ && calls_.empty())
      break;
    stream_.set_read_deadline(calls_.empty() ? idle_since_ + settings_.idle_timeout : net::stream::no_deadline);
    co_await writer_.wait();
  }
  ended_ = true;
  if (!protocol_error_.empty())
    fail_all(client_errc::malformed_response, fmt::format("not HTTP/2 as the client reads it: {}", protocol_error_));
  else if (read_error_.category() == asio::error::get_ssl_category()) // an alert: a client certificate refused...
    fail_all(client_errc::tls, fmt::format("TLS: {}", net::tls_error_message(read_error_)));
  else if (read_error_ && read_error_ != asio::error::eof)
    fail_all(client_errc::reset, fmt::format("the connection broke: {}", read_error_.message()));
  else
    fail_all(client_errc::closed, "the connection closed before the response");
  if (reader_running_)
    stop_reader_.emit(asio::cancellation_type::terminal);
  while (reader_running_)
    co_await writer_.wait();
  stream_.close();
}

task<void> h2_client_connection::read_loop()
{
  std::array<char, 16 * 1024> buffer;
  for (;;) {
    auto r = co_await stream_.read_some(asio::buffer(buffer));
    if (r.ec == net::timed_out) {
      if (calls_.empty()) { // idle too long: say goodbye (run() sends it, then ends)
        nghttp2_session_terminate_session(session_, NGHTTP2_NO_ERROR);
        ended_ = true;
        stream_.set_read_deadline(net::stream::no_deadline);
        notify();
      }
      continue;
    }
    if (r.ec || r.bytes == 0) {
      read_error_ = r.ec;
      break;
    }
    auto rv = nghttp2_session_mem_recv(session_, reinterpret_cast<const std::uint8_t*>(buffer.data()), r.bytes);
    if (rv < 0) {
      // Not HTTP/2 (an HTTP/1.1 server answering prior knowledge), or broken.
      protocol_error_ = nghttp2_strerror(static_cast<int>(rv));
      break;
    }
    notify();
  }
}

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

void h2_client_connection::fail_all(client_errc kind, const std::string& why)
{
  for (auto& [id, p] : calls_) {
    if (p->done)
      continue;
    p->error = std::make_exception_ptr(client_error(kind, why));
    finish(*p);
  }
  calls_.clear();
}

stream_call::~stream_call()
{
  if (conn && p)
    close();
}

void stream_call::close() noexcept
{
  std::string_view outcome = "cancelled";
  if (p->done && p->error) {
    try {
      std::rethrow_exception(p->error);
    } catch (const client_error& e) {
      outcome = to_string(e.kind());
    } catch (...) {
    }
  }
  const bool open = !p->done;
  conn->cancel(*p);
  if (open || p->error)
    end(outcome);
  else
    end(fmt::format("{}xx", p->response.status / 100));
}

void stream_call::end(std::string_view outcome) noexcept
{
  if (auto f = std::exchange(on_end, nullptr)) {
    try {
      f(outcome);
    } catch (...) { // a metric that could not be counted
    }
  }
}

} // namespace coronet::http::detail

namespace coronet::http {

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

client_stream::client_stream(std::shared_ptr<detail::stream_call> s) noexcept : s_(std::move(s)) {}
client_stream::client_stream(client_stream&&) noexcept = default;
client_stream& client_stream::operator=(client_stream&&) noexcept = default;
client_stream::~client_stream() = default;

task<void> client_stream::write(std::string bytes)
{
  auto s = s_;
  co_await s->conn->write(*s->p, std::move(bytes), s->deadline);
}

void client_stream::close_write()
{
  s_->conn->close_write(*s_->p);
}

task<void> client_stream::read_head()
{
  auto s = s_;
  try {
    co_await s->conn->read_head(*s->p, s->deadline);
  } catch (const client_error& e) {
    s->end(to_string(e.kind()));
    throw;
  }
}

const client_response& client_stream::response() const noexcept
{
  return detail::h2_client_connection::response(*s_->p);
}

task<std::optional<std::string>> client_stream::read()
{
  auto s = s_;
  std::optional<std::string> piece;
  try {
    piece = co_await s->conn->read(*s->p, s->deadline);
  } catch (const client_error& e) {
    s->end(to_string(e.kind()));
    throw;
  }
  if (!piece) // the response has ended: counted by its status class
    s->end(fmt::format("{}xx", detail::h2_client_connection::response(*s->p).status / 100));
  co_return piece;
}

const http::headers& client_stream::trailers() const noexcept
{
  return detail::h2_client_connection::trailers(*s_->p);
}

void client_stream::cancel() noexcept
{
  s_->close();
}

bool client_stream::ended() const noexcept
{
  return detail::h2_client_connection::ended(*s_->p);
}

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

} // namespace coronet::http
