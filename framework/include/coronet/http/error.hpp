#pragma once
// Thrown by a handler to answer with a status: the server turns
// `throw http::error{http::status::not_found, "no such user"}` into a 404
// whose body is the message. Any other exception becomes a 500 and one log
// line (a timeout, 504): answer_failure() below, the one place that decides it.
#include <coronet/http/status.hpp>

#include <exception>
#include <stdexcept>
#include <string>
#include <string_view>

namespace coronet::http {

struct request;
struct response;

class error : public std::runtime_error {
public:
  error(http::status s, const std::string& message) : std::runtime_error(message), status_(s) {}
  http::status status() const noexcept { return status_; }

private:
  http::status status_;
};

// The answer the server gives for its own refusals on either protocol (a
// malformed request, a limit, a timeout, no such route): the status, with
// its reason phrase as the body.
response status_response(http::status s);

// Whether `e` is a cancellation (operation_aborted): the client went away,
// its HTTP/2 stream was reset, or the server is stopping.
bool is_cancellation(std::exception_ptr e) noexcept;

// What the client is told when handling `req` threw `e`, and what is logged;
// the router, both protocols and the test kit all answer through it:
// - http::error: its status, its message as the body;
// - coronet::timeout_error (the request's deadline passed while its handler
//   ran, or the handler let a with_timeout's through): 504, counted in
//   coronet_http_requests_timed_out_total, logged at debug;
// - a cancellation: counted in coronet_http_requests_cancelled_total and
//   logged at debug (the 500 it gets has nobody to read it);
// - anything else: 500 and one error line naming the request and `stage`
//   ("handler", "middleware").
response answer_failure(std::exception_ptr e, const request& req, std::string_view stage = "handler");

} // namespace coronet::http
