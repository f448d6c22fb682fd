#include <coronet/http/error.hpp>

#include <coronet/http/request.hpp>
#include <coronet/http/response.hpp>
#include <coronet/error.hpp>
#include <coronet/metrics.hpp>

#include <asio/error.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <system_error>

namespace coronet::http {

response status_response(http::status s)
{
  return response::text(s, std::string(reason(s)) + "\n");
}

bool is_cancellation(std::exception_ptr e) noexcept
{
  try {
    std::rethrow_exception(e);
  } catch (const std::system_error& err) {
    return err.code() == asio::error::operation_aborted;
  } catch (...) {
    return false;
  }
}

response answer_failure(std::exception_ptr e, const request& req, std::string_view stage)
{
  try {
    std::rethrow_exception(e);
  } catch (const error& err) {
    return response::text(err.status(), std::string(err.what()) + "\n");
  } catch (const status_error& err) {
    auto s = static_cast<status>(err.http_status());
    if (err.http_status() >= 500)
      spdlog::warn("{} {}: {} failed: {}", req.method, req.target, stage, err.what());
    return response::text(s, fmt::format("{}: {}\n", reason(s), err.client_message()));
  } catch (const timeout_error&) {
    static auto& late = metrics::registry::global().counters("coronet_http_requests_timed_out_total",
      "Requests answered 504: their handler was still running at the request's deadline "
      "(http.request_timeout_ms, X-Request-Timeout-Ms, grpc-timeout), or let a timeout_error through.");
    late.with({}).inc();
    spdlog::debug("{} {}: {} timed out", req.method, req.target, stage);
    return response::text(status::gateway_timeout, "Gateway Timeout: the request's deadline passed before its answer\n");
  } catch (const std::system_error& err) {
    if (err.code() == asio::error::operation_aborted) {
      static auto& cancelled = metrics::registry::global().counters("coronet_http_requests_cancelled_total",
        "Requests whose handler was cancelled: the client went away or reset the stream before the answer.");
      cancelled.with({}).inc();
      spdlog::debug("{} {}: cancelled", req.method, req.target);
    } else {
      spdlog::error("{} {}: {} failed: {}", req.method, req.target, stage, err.what());
    }
  } catch (const std::exception& err) {
    spdlog::error("{} {}: {} failed: {}", req.method, req.target, stage, err.what());
  } catch (...) {
    spdlog::error("{} {}: {} failed with a non-standard exception", req.method, req.target, stage);
  }
  return status_response(status::internal_server_error);
}

} // namespace coronet::http
