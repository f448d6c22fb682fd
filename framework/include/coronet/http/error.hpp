#pragma once
// Thrown by a handler to answer with a status: the server turns
// `throw http::error{http::status::not_found, "no such user"}` into a 404
// whose body is the message. Any other exception becomes a 500 and one log
// line.
#include <coronet/http/status.hpp>

#include <stdexcept>
#include <string>

namespace coronet::http {

class error : public std::runtime_error {
public:
  error(http::status s, const std::string& message) : std::runtime_error(message), status_(s) {}
  http::status status() const noexcept { return status_; }

private:
  http::status status_;
};

} // namespace coronet::http
