#pragma once
// Incremental HTTP/1.1 response parser on llhttp in strict mode, for the
// client. One response per exchange (the client does not pipeline); 1xx
// interim responses are skipped; a body is read by Content-Length, chunked,
// or until the connection closes (finish()).
#include <coronet/http/headers.hpp>

#include <llhttp.h>

#include <cstddef>
#include <string>
#include <string_view>

namespace coronet::http::detail {

struct parsed_response {
  int status = 0;
  http::headers headers;
  std::string body;
  bool keep_alive = false;
};

class response_parser final {
public:
  enum class result { need_more, complete, error };

  response_parser(std::size_t max_header_bytes, std::size_t max_body_bytes, bool head_request);
  response_parser(const response_parser&) = delete;
  response_parser& operator=(const response_parser&) = delete;

  result feed(std::string_view data);
  // The connection closed: completes a close-delimited body, else an error.
  result finish();

  bool started() const noexcept { return started_; } // any byte of a response seen
  parsed_response& response() noexcept { return current_; }
  const std::string& error_message() const noexcept { return error_; }
  bool too_large() const noexcept { return too_large_; }

private:
  static int on_message_begin(llhttp_t* p);
  static int on_status(llhttp_t* p, const char* at, std::size_t n);
  static int on_header_field(llhttp_t* p, const char* at, std::size_t n);
  static int on_header_value(llhttp_t* p, const char* at, std::size_t n);
  static int on_header_value_complete(llhttp_t* p);
  static int on_headers_complete(llhttp_t* p);
  static int on_body(llhttp_t* p, const char* at, std::size_t n);
  static int on_message_complete(llhttp_t* p);
  static const llhttp_settings_t& settings();
  int fail(std::string message, bool too_large);
  result check(llhttp_errno_t err);

  std::size_t max_header_bytes_, max_body_bytes_;
  bool head_;
  llhttp_t parser_;
  parsed_response current_;
  std::string field_, value_;
  std::size_t header_bytes_ = 0;
  bool started_ = false;
  bool complete_ = false;
  bool failed_by_us_ = false;
  bool too_large_ = false;
  std::string error_;
};

} // namespace coronet::http::detail
