#pragma once
// Calling gRPC services over coronet's HTTP/2 client: its pooled,
// multiplexed connections, deadlines, metrics and TLS. Stubs are generated
// from .proto files (protoc-gen-coronet); a stub calls through a channel:
//
//   http::client c{rt, client_opts};   // client.h2c_targets = "http://users:9000" for h2c
//   grpc::channel users{c, "http://users:9000"};
//   hello::GreeterClient greeter{users};
//   grpc::call_options o;
//   o.timeout = 200ms;                  // sent as grpc-timeout
//   auto reply = co_await greeter.SayHello(request, std::move(o));
//
// A status other than OK throws grpc::error with the server's code and
// message; a peer that cannot be reached is UNAVAILABLE, a call past its
// deadline DEADLINE_EXCEEDED, a call cancelled by its caller CANCELLED.
// A streaming method returns its call once the stream is open; messages are
// written and read as they go, both at once:
//
//   auto call = co_await routes.RouteChat(o);       // bidirectional
//   co_await call.write(note);                      // false: the call has ended
//   while (auto in = co_await call.read()) use(*in); // std::nullopt: the end, with OK
//   call.writes_done();                             // the client's half-close
//
// read() throws grpc::error when the call ends with another status;
// cancel() ends it at once (RST_STREAM) and the server's method sees it, as
// does dropping the call before its end.
#include <coronet/client/client.hpp>
#include <coronet/grpc/server.hpp>
#include <coronet/grpc/status.hpp>
#include <coronet/http/headers.hpp>
#include <coronet/task.hpp>
#include <coronet/time.hpp>

#include <chrono>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace coronet::grpc {

struct call_options {
  call_options() {} // not an aggregate: see request_options
  http::headers metadata;                    // sent as request fields (lower-case names; "-bin" base64)
  std::chrono::milliseconds timeout{0};      // 0: none (but `deadline`)
  std::optional<clock::time_point> deadline; // the call's, whatever `timeout` says: a handler passes req.deadline
  // gRPC's retry policy, for unary calls (a streaming call is never sent
  // twice). `retryable`: the method is safe to send again, so the client
  // retries it within its budget (client.retry_budget_*, client.max_retries,
  // a jittered backoff, never past the deadline, another replica when there
  // is one) when its connection failed before the answer or its status is
  // one of `retry_on`. `hedge_after` (retryable methods only, on a target
  // of several replicas): no answer by then, the call also goes
  // to a second replica, the first answer not in `retry_on` winning (the
  // client's hedging; request_options::hedge_at_p95 for the target's p95).
  bool retryable = false;
  std::vector<code> retry_on{code::unavailable};
  std::chrono::milliseconds hedge_after{0};
};

template <message T>
std::string serialize(const T& m)
{
  std::string out;
  m.SerializeToString(&out);
  return out;
}

template <message T>
std::vector<std::string> serialize_all(const std::vector<T>& ms)
{
  std::vector<std::string> out;
  out.reserve(ms.size());
  for (auto& m : ms)
    out.push_back(serialize(m));
  return out;
}

// A streaming call in progress, its messages serialized (client_call<Req,
// Resp> is the typed face generated stubs return).
class raw_call {
public:
  raw_call(http::client_stream s, options o) : stream_(std::move(s)), options_(o) {}

  // Sends one message; false when the call has already ended (read() or
  // finish() then says how). Waits while the server's window is full.
  task<bool> write(std::string message);
  // The client has sent all its messages (the stream's half-close).
  void writes_done() { stream_.close_write(); }
  // The next message; std::nullopt once the call has ended with OK. Throws
  // grpc::error for any other end.
  task<std::optional<std::string>> read();
  // Reads to the end, dropping what is left; throws grpc::error unless OK.
  task<void> finish();
  void cancel() noexcept;
  // The server's initial metadata (once read() has returned), and its trailing metadata (at the end).
  const http::headers& metadata() const noexcept { return stream_.response().headers; }
  const http::headers& trailing_metadata() const noexcept { return stream_.trailers(); }

private:
  task<void> begin();
  task<bool> fill();
  std::optional<std::string> take();

  http::client_stream stream_;
  options options_;
  std::string in_;        // received, not yet taken
  std::size_t in_at_ = 0; // where the next message starts in in_
  bool started_ = false;  // the response's head was read and checked
  bool ended_ = false;    // the response ended with OK
  bool gzip_ = false;     // the response's grpc-encoding
};

template <message Req, message Resp>
class client_call {
public:
  explicit client_call(raw_call c) : raw_(std::move(c)) {}

  task<bool> write(const Req& m) { return raw_.write(serialize(m)); }
  void writes_done() { raw_.writes_done(); }
  task<std::optional<Resp>> read()
  {
    auto bytes = co_await raw_.read();
    if (!bytes)
      co_return std::nullopt;
    Resp m;
    if (!m.ParseFromString(*bytes))
      throw error(code::internal, "a response message could not be parsed");
    co_return m;
  }
  // A client-streaming call's one answer: what read() gives, and the end.
  task<Resp> response()
  {
    auto m = co_await read();
    if (!m)
      throw error(code::unimplemented, "the call ended with no response message");
    co_await raw_.finish();
    co_return std::move(*m);
  }
  task<void> finish() { return raw_.finish(); }
  void cancel() noexcept { raw_.cancel(); }
  const http::headers& metadata() const noexcept { return raw_.metadata(); }
  const http::headers& trailing_metadata() const noexcept { return raw_.trailing_metadata(); }

private:
  raw_call raw_;
};

// What a call answered besides its messages.
struct call_result {
  std::vector<std::string> messages;
  http::headers metadata; // the answer's fields: initial and trailing metadata, grpc-status among them
};

class channel {
public:
  // `target`: "http://host:port" (h2c: the client must call it over HTTP/2,
  // by client.h2c_targets or client.http2 = "prior_knowledge") or
  // "https://host:port" (h2 by ALPN). Throws std::invalid_argument for
  // another scheme.
  channel(http::client& c, std::string target, options o = {});

  // Sends `requests` (each one message) on `path` ("/package.Service/Method")
  // and returns what came back; throws grpc::error for a status but OK.
  task<call_result> call(std::string path, std::vector<std::string> requests, call_options o);

  template <message Resp>
  task<Resp> unary(std::string path, std::string request, call_options o)
  {
    std::vector<std::string> one;
    one.push_back(std::move(request));
    auto r = co_await call(std::move(path), std::move(one), std::move(o));
    co_return single<Resp>(r);
  }

  // Opens a streaming call on `path` (its stream open, nothing sent yet).
  // Its deadline is the options'; none when they name none. Not retried
  // once open.
  task<raw_call> open(std::string path, call_options o);

  template <message Req, message Resp>
  task<client_call<Req, Resp>> open(std::string path, call_options o)
  {
    auto raw = co_await open(std::move(path), std::move(o));
    co_return client_call<Req, Resp>(std::move(raw));
  }

  // A server-streaming call: `request` sent, the client's side closed.
  template <message Req, message Resp>
  task<client_call<Req, Resp>> open_with(std::string path, const Req& request, call_options o)
  {
    auto raw = co_await open(std::move(path), std::move(o));
    auto first = raw.write(serialize(request)); // named: GCC 12 and temporaries in co_await
    co_await std::move(first);                  // false: the call ended; read() says how
    raw.writes_done();
    co_return client_call<Req, Resp>(std::move(raw));
  }

  const std::string& target() const noexcept { return target_; }

private:
  template <message Resp>
  static Resp single(const call_result& r)
  {
    if (r.messages.size() != 1)
      throw error(code::unimplemented, "a unary answer with " + std::to_string(r.messages.size()) + " messages");
    Resp m;
    if (!m.ParseFromString(r.messages[0]))
      throw error(code::internal, "the response message could not be parsed");
    return m;
  }

  http::client& client_;
  std::string target_;
  options options_;
};

} // namespace coronet::grpc
