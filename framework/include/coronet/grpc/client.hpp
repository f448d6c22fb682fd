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
// deadline DEADLINE_EXCEEDED. Streams are sent whole, then read whole (a
// client stream is sent in one body; a server stream's messages come back
// as a vector once the call ends).
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
  // The method is safe to send again (gRPC's retry policy names it): the
  // client then retries it, within its budget, where it retries an
  // idempotent HTTP call (a connection that failed before the answer).
  bool retryable = false;
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

  template <message Resp>
  task<Resp> client_streaming(std::string path, std::vector<std::string> requests, call_options o)
  {
    auto r = co_await call(std::move(path), std::move(requests), std::move(o));
    co_return single<Resp>(r);
  }

  template <message Resp>
  task<std::vector<Resp>> streaming(std::string path, std::vector<std::string> requests, call_options o)
  {
    auto r = co_await call(std::move(path), std::move(requests), std::move(o));
    std::vector<Resp> out(r.messages.size());
    for (std::size_t i = 0; i < r.messages.size(); ++i)
      if (!out[i].ParseFromString(r.messages[i]))
        throw error(code::internal, "a response message could not be parsed");
    co_return out;
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
