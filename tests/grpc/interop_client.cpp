// coronet-grpc-interop-client URL CASE...: gRPC's interop test cases, as
// their descriptions give them, with coronet's client and generated stub
// against a server of another implementation (tests/integration/grpc_test.py
// runs python3-grpcio's). Prints "<case>: ok" per case passed; exits 1 if
// one failed.
#include <coronet/client/client.hpp>
#include <coronet/grpc/client.hpp>
#include <coronet/runtime.hpp>

#include "test.coronet.hpp"

#include <fmt/format.h>

#include <chrono>
#include <functional>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace rpc = coronet::grpc;
namespace t = ::grpc::testing;
using coronet::task;
using namespace std::chrono_literals;

namespace {

void check(bool ok, const std::string& what)
{
  if (!ok)
    throw std::runtime_error(what);
}

t::Payload zeros(int n)
{
  t::Payload p;
  p.set_body(std::string(static_cast<std::size_t>(n), '\0'));
  return p;
}

t::StreamingOutputCallRequest output_request(std::vector<int> sizes, int payload = 0)
{
  t::StreamingOutputCallRequest r;
  for (int s : sizes)
    r.add_response_parameters()->set_size(s);
  *r.mutable_payload() = zeros(payload);
  return r;
}

rpc::call_options within(std::chrono::milliseconds d)
{
  rpc::call_options o;
  o.timeout = d;
  return o;
}

// Runs `call`, which must fail with `want`; returns the error.
task<rpc::error> expect_status(rpc::code want, std::function<task<void>()> call)
{
  try {
    co_await call();
  } catch (const rpc::error& e) {
    check(e.code() == want, fmt::format("status {} ({}), not {}", rpc::name(e.code()), e.message(), rpc::name(want)));
    co_return e;
  }
  throw std::runtime_error(fmt::format("no {}", rpc::name(want)));
}

struct cases {
  t::TestServiceClient& stub;
  rpc::channel& channel;

  task<void> empty_unary()
  {
    auto r = co_await stub.EmptyCall(t::Empty{}, within(10s));
    check(r.ByteSizeLong() == 0, "not empty");
  }

  task<void> large_unary()
  {
    t::SimpleRequest q;
    q.set_response_size(314159);
    *q.mutable_payload() = zeros(271828);
    auto r = co_await stub.UnaryCall(q, within(10s));
    check(r.payload().body() == std::string(314159, '\0'), "payload");
  }

  task<void> client_streaming()
  {
    auto call = co_await stub.StreamingInputCall(within(10s));
    for (int n : {27182, 8, 1828, 45904}) {
      t::StreamingInputCallRequest q;
      *q.mutable_payload() = zeros(n);
      bool sent = co_await call.write(q);
      check(sent, "the call ended while the client was sending");
    }
    call.writes_done();
    auto r = co_await call.response();
    check(r.aggregated_payload_size() == 74922, fmt::format("aggregated {}", r.aggregated_payload_size()));
  }

  task<void> server_streaming()
  {
    std::vector<int> sizes{31415, 9, 2653, 58979};
    auto call = co_await stub.StreamingOutputCall(output_request(sizes), within(10s));
    std::size_t n = 0;
    while (auto r = co_await call.read()) {
      check(n < sizes.size(), "more responses than asked for");
      check(r->payload().body().size() == static_cast<std::size_t>(sizes[n++]), "size");
    }
    check(n == sizes.size(), fmt::format("{} responses", n));
  }

  // Each request answered before the next is sent: the stream interleaves.
  task<void> ping_pong()
  {
    auto call = co_await stub.FullDuplexCall(within(10s));
    for (auto [size, payload] : {std::pair{31415, 27182}, {9, 8}, {2653, 1828}, {58979, 45904}}) {
      auto q = output_request({size}, payload);
      bool sent = co_await call.write(q);
      check(sent, "the call ended while the client was sending");
      auto r = co_await call.read();
      check(r.has_value(), "the call ended before its answer");
      check(r->payload().body().size() == static_cast<std::size_t>(size), "size");
    }
    call.writes_done();
    auto extra = co_await call.read();
    check(!extra, "an answer to no request");
  }

  task<void> empty_stream()
  {
    auto call = co_await stub.FullDuplexCall(within(10s));
    call.writes_done();
    auto none = co_await call.read();
    check(!none, "responses to no request");
  }

  task<void> timeout_on_sleeping_server()
  {
    std::function<task<void>()> run = [this]() -> task<void> {
      auto call = co_await stub.FullDuplexCall(within(1ms));
      auto q = output_request({}, 27182);
      co_await call.write(q);
      co_await call.read();
    };
    co_await expect_status(rpc::code::deadline_exceeded, std::move(run));
  }

  task<void> cancel_after_begin()
  {
    std::function<task<void>()> run = [this]() -> task<void> {
      auto call = co_await stub.StreamingInputCall(within(10s));
      call.cancel();
      co_await call.response();
    };
    co_await expect_status(rpc::code::cancelled, std::move(run));
  }

  task<void> cancel_after_first_response()
  {
    std::function<task<void>()> run = [this]() -> task<void> {
      auto call = co_await stub.FullDuplexCall(within(10s));
      auto q = output_request({31415}, 27182);
      bool sent = co_await call.write(q);
      check(sent, "the call ended while the client was sending");
      auto r = co_await call.read();
      check(r && r->payload().body().size() == 31415, "the first response");
      call.cancel();
      co_await call.read();
    };
    co_await expect_status(rpc::code::cancelled, std::move(run));
  }

  static t::SimpleRequest failing_unary(const std::string& message)
  {
    t::SimpleRequest q;
    q.mutable_response_status()->set_code(2);
    q.mutable_response_status()->set_message(message);
    return q;
  }

  task<void> status_code_and_message()
  {
    const std::string message = "test status message";
    auto q = failing_unary(message);
    std::function<task<void>()> call = [this, q]() -> task<void> {
      co_await stub.UnaryCall(q, within(10s));
    };
    auto e = co_await expect_status(rpc::code::unknown, std::move(call));
    check(e.message() == message, fmt::format("message '{}'", e.message()));
    auto d = output_request({});
    *d.mutable_response_status() = q.response_status();
    call = [this, d]() -> task<void> {
      auto duplex = co_await stub.FullDuplexCall(within(10s));
      co_await duplex.write(d);
      duplex.writes_done();
      co_await duplex.finish();
    };
    e = co_await expect_status(rpc::code::unknown, std::move(call));
    check(e.message() == message, fmt::format("message '{}'", e.message()));
  }

  task<void> special_status_message()
  {
    const std::string message = "\t\ntest with whitespace\r\nand Unicode BMP \u263a and non-BMP \U0001f608\t\n";
    auto q = failing_unary(message);
    std::function<task<void>()> call = [this, q]() -> task<void> {
      co_await stub.UnaryCall(q, within(10s));
    };
    auto e = co_await expect_status(rpc::code::unknown, std::move(call));
    check(e.message() == message, fmt::format("message '{}'", e.message()));
  }

  // The echoed metadata, read from the answer's fields (initial and
  // trailing together).
  task<void> custom_metadata()
  {
    t::SimpleRequest q;
    q.set_response_size(314159);
    *q.mutable_payload() = zeros(271828);
    auto o = within(10s);
    o.metadata.add("x-grpc-test-echo-initial", "test_initial_metadata_value");
    o.metadata.add("x-grpc-test-echo-trailing-bin", "CgsKCwoL"); // \x0a\x0b\x0a\x0b\x0a\x0b
    std::vector<std::string> one{rpc::serialize(q)};
    auto r = co_await channel.call("/grpc.testing.TestService/UnaryCall", one, o);
    check(r.metadata.get("x-grpc-test-echo-initial") == "test_initial_metadata_value", "initial metadata");
    auto trailing = r.metadata.get("x-grpc-test-echo-trailing-bin").value_or("");
    check(trailing.starts_with("CgsKCwoL"), fmt::format("trailing metadata '{}'", trailing));
    check(r.messages.size() == 1, "one answer");
  }

  // Not one of gRPC's cases: the retry policy. The test server fails the
  // first two calls carrying a key with UNAVAILABLE (x-fail-first).
  task<void> retry_on_unavailable()
  {
    auto key = std::to_string(std::chrono::steady_clock::now().time_since_epoch().count());
    auto o = within(10s);
    o.retryable = true;
    o.metadata.add("x-fail-first", "2:" + key);
    co_await stub.UnaryCall(t::SimpleRequest{}, std::move(o)); // the third attempt answers OK
    std::function<task<void>()> once = [this, key]() -> task<void> {
      auto o = within(10s); // not retryable: the first UNAVAILABLE is the call's
      o.metadata.add("x-fail-first", "2:" + key + "-once");
      co_await stub.UnaryCall(t::SimpleRequest{}, std::move(o));
    };
    co_await expect_status(rpc::code::unavailable, std::move(once));
  }

  task<void> unimplemented_method()
  {
    std::function<task<void>()> call = [this]() -> task<void> {
      co_await stub.UnimplementedCall(t::Empty{}, within(10s));
    };
    co_await expect_status(rpc::code::unimplemented, std::move(call));
  }

  task<void> unimplemented_service()
  {
    std::function<task<void>()> call = [this]() -> task<void> {
      t::UnimplementedServiceClient other{channel};
      co_await other.UnimplementedCall(t::Empty{}, within(10s));
    };
    co_await expect_status(rpc::code::unimplemented, std::move(call));
  }
};

task<int> run(coronet::runtime& rt, std::string target, std::vector<std::string> names)
{
  coronet::http::client_options o;
  o.http2 = coronet::http::http2_mode::prior_knowledge;
  coronet::http::client client{rt, o};
  rpc::channel channel{client, target};
  t::TestServiceClient stub{channel};
  cases c{stub, channel};
  std::map<std::string, std::function<task<void>()>> all{{"empty_unary", [&] { return c.empty_unary(); }},
    {"large_unary", [&] { return c.large_unary(); }}, {"client_streaming", [&] { return c.client_streaming(); }},
    {"server_streaming", [&] { return c.server_streaming(); }}, {"ping_pong", [&] { return c.ping_pong(); }},
    {"empty_stream", [&] { return c.empty_stream(); }},
    {"timeout_on_sleeping_server", [&] { return c.timeout_on_sleeping_server(); }},
    {"cancel_after_begin", [&] { return c.cancel_after_begin(); }},
    {"cancel_after_first_response", [&] { return c.cancel_after_first_response(); }},
    {"status_code_and_message", [&] { return c.status_code_and_message(); }},
    {"special_status_message", [&] { return c.special_status_message(); }},
    {"custom_metadata", [&] { return c.custom_metadata(); }},
    {"unimplemented_method", [&] { return c.unimplemented_method(); }},
    {"retry_on_unavailable", [&] { return c.retry_on_unavailable(); }},
    {"unimplemented_service", [&] { return c.unimplemented_service(); }}};
  int failed = 0;
  for (auto& name : names) {
    auto it = all.find(name);
    try {
      if (it == all.end())
        throw std::runtime_error("no such case");
      co_await it->second();
      fmt::print("{}: ok\n", name);
    } catch (const std::exception& e) {
      fmt::print("{}: FAILED: {}\n", name, e.what());
      ++failed;
    }
  }
  co_return failed == 0 ? 0 : 1;
}

} // namespace

int main(int argc, char** argv)
{
  if (argc < 3) {
    fmt::print(stderr, "usage: coronet-grpc-interop-client URL CASE...\n");
    return 2;
  }
  coronet::runtime rt{1};
  return rt.block_on(run(rt, argv[1], std::vector<std::string>(argv + 2, argv + argc)));
}
