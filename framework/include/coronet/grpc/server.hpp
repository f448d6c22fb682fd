#pragma once
// gRPC services on coronet's own HTTP/2 server: each call is a task on the
// connection's worker, served on the same port and router as HTTP/1.1 and
// HTTP/2 (Content-Type application/grpc picks the gRPC path). Services are
// generated from .proto files by protoc-gen-coronet (coronet_grpc_generate
// in CMake); a generated service is a class with one coroutine per method:
//
//   class greeter final : public hello::GreeterServer {
//     task<hello::Reply> SayHello(grpc::server_context& ctx, const hello::Request& req) override
//     {
//       hello::Reply r;
//       r.set_text("hello " + req.name());
//       co_return r;
//     }
//   };
//   greeter g;              // outlives the server
//   g.mount(routes, grpc::options::from(cfg));
//
// The four shapes: unary (a message in, one out), server streaming (one
// in, a writer), client streaming (a reader, one out), bidirectional (a
// reader and a writer, at once). A method answers OK by returning, another
// status by throwing grpc::error; any other exception is INTERNAL. The
// call's deadline (grpc-timeout, capped by http.request_timeout_ms) bounds
// it: past it, what it awaits is cancelled and the answer is
// DEADLINE_EXCEEDED. A client that cancels cancels the method. Methods a
// service does not implement, and paths no service serves, answer
// UNIMPLEMENTED.
#include <coronet/config.hpp>
#include <coronet/grpc/status.hpp>
#include <coronet/http/request.hpp>
#include <coronet/http/response.hpp>
#include <coronet/http/router.hpp>
#include <coronet/task.hpp>
#include <coronet/time.hpp>

#include <concepts>
#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace coronet::grpc {

// [grpc]
inline constexpr config_key grpc_keys[] = {
  {"grpc.max_receive_bytes", 4194304, "a bigger message from a peer -> RESOURCE_EXHAUSTED", 1, 0x7fffffff},
  {"grpc.max_send_bytes", 4194304, "a bigger message to send -> RESOURCE_EXHAUSTED", 1, 0x7fffffff},
};

struct options {
  std::size_t max_receive_bytes = config_default<std::size_t>(grpc_keys, "grpc.max_receive_bytes");
  std::size_t max_send_bytes = config_default<std::size_t>(grpc_keys, "grpc.max_send_bytes");

  static options from(const config& cfg);
};

// What protobuf's generated messages offer (and what any other message
// type needs to be carried).
template <class T>
concept message = std::default_initializable<T> && requires(T m, const T cm, std::string s) {
  { cm.SerializeToString(&s) } -> std::convertible_to<bool>;
  { m.ParseFromString(s) } -> std::convertible_to<bool>;
};

// One call as its method sees it: the client's metadata, the deadline, the
// metadata to answer with, and the messages as bytes (reader and writer
// below carry typed ones).
class server_context {
public:
  server_context(http::request& req, const options& o);
  server_context(const server_context&) = delete;
  server_context& operator=(const server_context&) = delete;

  // The client's metadata (HTTP/2 fields: lower-case names; "-bin" ones
  // base64 as sent) and the rest of its request.
  std::optional<std::string_view> metadata(std::string_view key) const noexcept { return req_.header(key); }
  const http::request& request() const noexcept { return req_; }
  clock::time_point deadline() const noexcept { return req_.deadline; }
  // Sent before the first message (a unary call's with its answer); what
  // is added after the first message is not sent.
  http::headers& initial_metadata() noexcept { return initial_; }
  // Sent with the status, at the end.
  http::headers& trailing_metadata() noexcept { return trailing_; }

  // The next message; std::nullopt once the client has half-closed. Throws
  // grpc::error: RESOURCE_EXHAUSTED past grpc.max_receive_bytes, INTERNAL
  // for a message cut short or compressed without grpc-encoding.
  task<std::optional<std::string>> read_bytes();
  // Sends one message (server streaming and bidirectional calls).
  task<void> write_bytes(std::string_view message);
  // The same for a message serialized into framing_buffer(), behind the 5
  // bytes it keeps for the prefix.
  std::string& framing_buffer();
  task<void> write_framed(std::string& framed);

  // The framework's side of the call: where its messages go (nullptr for
  // a unary call, answered whole), checked grpc-encoding; a message with
  // its length prefix.
  void begin(http::body_writer* out);
  std::string frame(std::string_view message) const;

private:
  std::string take_message(std::size_t length, bool compressed);

  http::request& req_;
  const options& options_;
  http::headers initial_;
  http::headers trailing_;
  std::string in_;
  std::size_t in_at_ = 0;
  bool in_ended_ = false;
  bool gzip_ = false;
  http::body_writer* out_ = nullptr;
  std::string framed_;
};

// A client's stream of messages: `while (auto m = co_await in.read())`.
template <message T>
class reader {
public:
  explicit reader(server_context& ctx) : ctx_(ctx) {}
  task<std::optional<T>> read()
  {
    auto bytes = co_await ctx_.read_bytes();
    if (!bytes)
      co_return std::nullopt;
    T m;
    if (!m.ParseFromString(*bytes))
      throw error(code::internal, "the request message could not be parsed");
    co_return std::optional<T>{std::move(m)};
  }

private:
  server_context& ctx_;
};

// The stream of messages to the client: `co_await out.write(m)`.
template <message T>
class writer {
public:
  explicit writer(server_context& ctx) : ctx_(ctx) {}
  task<void> write(const T& m)
  {
    // Serialized behind room for the length prefix, into the call's own
    // buffer: no allocation per message once it has grown.
    std::string& framed = ctx_.framing_buffer();
    m.AppendToString(&framed);
    co_await ctx_.write_framed(framed);
  }

private:
  server_context& ctx_;
};

// The shapes, on bytes: what a generated service mounts, each on its
// "/package.Service/Method" path.
using unary_method = std::function<task<std::string>(server_context&, std::string request)>;
using streaming_method = std::function<task<void>(server_context&)>;
http::handler unary_handler(unary_method m, options o);
http::handler streaming_handler(streaming_method m, options o);

// The typed forms a generated service uses.
template <message Req, message Resp, class F>
void add_unary(http::router& r, std::string_view path, F f, const options& o)
{
  r.post(path, unary_handler([f](server_context& ctx, std::string bytes) -> task<std::string> {
    Req q;
    if (!q.ParseFromString(bytes))
      throw error(code::internal, "the request message could not be parsed");
    Resp a = co_await f(ctx, q);
    std::string out;
    a.SerializeToString(&out);
    co_return out;
  }, o));
}

template <message Req, message Resp, class F>
void add_server_streaming(http::router& r, std::string_view path, F f, const options& o)
{
  r.post(path, streaming_handler([f](server_context& ctx) -> task<void> {
    reader<Req> in{ctx};
    auto q = co_await in.read();
    if (!q)
      throw error(code::internal, "the call ended before its request message");
    writer<Resp> out{ctx};
    co_await f(ctx, *q, out);
  }, o));
}

template <message Req, message Resp, class F>
void add_client_streaming(http::router& r, std::string_view path, F f, const options& o)
{
  r.post(path, streaming_handler([f](server_context& ctx) -> task<void> {
    reader<Req> in{ctx};
    Resp a = co_await f(ctx, in);
    writer<Resp> out{ctx};
    co_await out.write(a);
  }, o));
}

template <message Req, message Resp, class F>
void add_bidi_streaming(http::router& r, std::string_view path, F f, const options& o)
{
  r.post(path, streaming_handler([f](server_context& ctx) -> task<void> {
    reader<Req> in{ctx};
    writer<Resp> out{ctx};
    co_await f(ctx, in, out);
  }, o));
}

// What generated services derive from.
class service {
public:
  virtual ~service() = default;
  // Adds a route per method ("/package.Service/Method", POST).
  virtual void mount(http::router& r, const options& o = {}) = 0;
};

} // namespace coronet::grpc
