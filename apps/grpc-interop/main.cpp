// coronet-grpc-interop: grpc.testing.TestService as gRPC's interop test
// descriptions ask of a server, on coronet's HTTP/2 server: what the
// official clients are run against (tests/integration/grpc_test.py drives
// python3-grpcio's), and the gRPC load test's server (loadtest/run.sh grpc).
#include <coronet/app/app.hpp>
#include <coronet/grpc/health.hpp>
#include <coronet/grpc/server.hpp>
#include <coronet/runtime.hpp>
#include <coronet/server/server.hpp>
#include <coronet/time.hpp>

#include "test.coronet.hpp"

#include <chrono>
#include <string>

namespace http = coronet::http;
namespace rpc = coronet::grpc;
namespace t = ::grpc::testing;

namespace {

// The metadata a client asks to have echoed (the custom_metadata case).
void echo_metadata(rpc::server_context& ctx)
{
  if (auto v = ctx.metadata("x-grpc-test-echo-initial"))
    ctx.initial_metadata().add("x-grpc-test-echo-initial", std::string(*v));
  if (auto v = ctx.metadata("x-grpc-test-echo-trailing-bin"))
    ctx.trailing_metadata().add("x-grpc-test-echo-trailing-bin", std::string(*v));
}

void fail_as_asked(const t::EchoStatus& s)
{
  if (s.code() != 0)
    throw rpc::error(static_cast<rpc::code>(s.code()), s.message());
}

t::Payload zeros(int size)
{
  t::Payload p;
  p.set_body(std::string(static_cast<std::size_t>(size < 0 ? 0 : size), '\0'));
  return p;
}

// Writes the responses one request asks for, each after its interval.
coronet::task<void> answer(const t::StreamingOutputCallRequest& q, rpc::writer<t::StreamingOutputCallResponse>& out)
{
  for (auto& p : q.response_parameters()) {
    if (p.interval_us() > 0)
      co_await coronet::sleep_for(std::chrono::microseconds(p.interval_us()));
    t::StreamingOutputCallResponse r;
    *r.mutable_payload() = zeros(p.size());
    co_await out.write(r);
  }
}

class test_service final : public t::TestServiceServer {
public:
  coronet::task<t::Empty> EmptyCall(rpc::server_context& ctx, const t::Empty&) override
  {
    echo_metadata(ctx);
    co_return t::Empty{};
  }

  coronet::task<t::SimpleResponse> UnaryCall(rpc::server_context& ctx, const t::SimpleRequest& q) override
  {
    echo_metadata(ctx);
    fail_as_asked(q.response_status());
    t::SimpleResponse r;
    *r.mutable_payload() = zeros(q.response_size());
    co_return r;
  }

  coronet::task<void> StreamingOutputCall(rpc::server_context& ctx, const t::StreamingOutputCallRequest& q,
    rpc::writer<t::StreamingOutputCallResponse>& out) override
  {
    echo_metadata(ctx);
    co_await answer(q, out);
    fail_as_asked(q.response_status());
  }

  coronet::task<t::StreamingInputCallResponse> StreamingInputCall(rpc::server_context& ctx,
    rpc::reader<t::StreamingInputCallRequest>& in) override
  {
    echo_metadata(ctx);
    int total = 0;
    while (auto q = co_await in.read())
      total += static_cast<int>(q->payload().body().size());
    t::StreamingInputCallResponse r;
    r.set_aggregated_payload_size(total);
    co_return r;
  }

  coronet::task<void> FullDuplexCall(rpc::server_context& ctx, rpc::reader<t::StreamingOutputCallRequest>& in,
    rpc::writer<t::StreamingOutputCallResponse>& out) override
  {
    echo_metadata(ctx);
    while (auto q = co_await in.read()) {
      co_await answer(*q, out);
      fail_as_asked(q->response_status());
    }
  }

  coronet::task<void> HalfDuplexCall(rpc::server_context& ctx, rpc::reader<t::StreamingOutputCallRequest>& in,
    rpc::writer<t::StreamingOutputCallResponse>& out) override
  {
    echo_metadata(ctx);
    std::vector<t::StreamingOutputCallRequest> all;
    while (auto q = co_await in.read())
      all.push_back(std::move(*q));
    for (auto& q : all)
      co_await answer(q, out);
  }
};

} // namespace

int main(int argc, char** argv)
{
  auto config = coronet::load_config(argc, argv, "grpc-interop");
  coronet::runtime rt{config};
  http::router router;
  auto options = rpc::options::from(config);
  test_service service;
  service.mount(router, options);
  rpc::health health{rt, {std::string(test_service::service_name)}};
  health.mount(router, options);
  return rt.run_until_signal(http::serve(rt, config, std::move(router)));
}
